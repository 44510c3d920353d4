"""``dk``: run ``datakeep`` commands in this process, on SQLite and on PostgreSQL.

Each call goes through :func:`datakeep.cli.main.main` (the real entry point, with its error
handling and exit codes) inside click's stream isolation, and forgets the cached client
before and after, as a new process would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from datakeep.cli.common import reset_client
from datakeep.cli.main import main


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Datakeep:
    """A ``datakeep`` command line bound to one data home and one catalog database."""

    def __init__(self, catalog_url: str) -> None:
        self.catalog_url = catalog_url
        self._runner = CliRunner()

    def run(self, *args: str, input: str | None = None) -> Run:
        reset_client()
        try:
            with self._runner.isolation(input=input, env={"DATAKEEP_DATABASE_URL": self.catalog_url}) as (
                out,
                err,
                _,
            ):
                code = main(list(args))
                stdout = out.getvalue().decode("utf-8", "replace")
                stderr = err.getvalue().decode("utf-8", "replace")
        finally:
            reset_client()
        return Run(code, stdout, stderr)

    def ok(self, *args: str, input: str | None = None) -> Run:
        """Run a command that must succeed."""
        result = self.run(*args, input=input)
        assert result.exit_code == 0, f"datakeep {' '.join(args)} failed:\n{result.stderr}{result.stdout}"
        return result

    def fails(self, *args: str, input: str | None = None) -> Run:
        """Run a command that must fail with exactly one line on stderr and nothing on stdout."""
        result = self.run(*args, input=input)
        assert result.exit_code != 0, f"datakeep {' '.join(args)} succeeded:\n{result.stdout}"
        assert result.stdout == "", result.stdout
        lines = result.stderr.strip("\n").splitlines()
        assert len(lines) == 1 or lines[0].startswith("Usage:"), result.stderr
        return result

    def create_dataset(self, name: str = "test", *extra: str) -> str:
        out = self.ok("datasets", "create", "--name", name, *extra).stdout
        match = re.fullmatch(r"Created dataset: (ds[0-9a-z]{13})\n", out)
        assert match, out
        return match.group(1)

    def create_version(self, dataset_id: str, *sources: Path | str, message: str | None = None) -> str:
        args = ["datasets", "versions", "create", f"--id={dataset_id}"]
        args += [f"--source-path={s}" for s in sources]
        if message is not None:
            args.append(f"--message={message}")
        out = self.ok(*args).stdout
        match = re.match(rf"Created dataset version: ({dataset_id}:[0-9a-z]{{7}})\n", out)
        assert match, out
        return match.group(1)


@pytest.fixture
def dk(catalog_url: str) -> Iterator[Datakeep]:
    yield Datakeep(catalog_url)
    reset_client()


@pytest.fixture
def some_data(tmp_path: Path) -> Path:
    """The seed's folder: one 12-byte ``hello.txt``."""
    folder = tmp_path / "some-data"
    folder.mkdir()
    (folder / "hello.txt").write_text("hello world\n")
    return folder
