"""The installed ``datakeep`` script in real processes: exit codes, one-line errors, tracebacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from datakeep import __version__


def _script() -> str:
    found = shutil.which("datakeep", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the datakeep console script is not installed in this venv")
    return found


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_script(), *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


def test_version_and_help() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout == f"datakeep, version {__version__}\n"
    done = _run("datasets", "--help")
    assert done.returncode == 0
    for group in ("versions", "tags", "files"):
        assert group in done.stdout


def test_story_in_separate_processes(tmp_path: Path) -> None:
    (tmp_path / "some-data").mkdir()
    (tmp_path / "some-data" / "hello.txt").write_text("hello world\n")
    created = _run("datasets", "create", "--name=test")
    assert created.returncode == 0, created.stderr
    dataset_id = created.stdout.split(": ")[1].strip()
    version = _run(
        "datasets", "versions", "create", f"--id={dataset_id}", f"--source-path={tmp_path}/some-data/"
    )
    assert version.returncode == 0, version.stderr
    ref = version.stdout.splitlines()[1].split(": ")[1]
    listed = _run("datasets", "files", "list", f"--id={ref}")
    assert "| hello.txt | 12   |" in listed.stdout


def test_errors_are_one_line_and_non_zero() -> None:
    done = _run("datasets", "details", "--id=dsaaaaaaaaaaaaa")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        "Error: Dataset not found: dsaaaaaaaaaaaaa. List datasets with: datakeep datasets list\n"
    )
    usage = _run("datasets", "create")
    assert usage.returncode == 2
    assert "Missing option '--name'" in usage.stderr


def test_debug_shows_the_traceback() -> None:
    done = _run("datasets", "details", "--id=dsaaaaaaaaaaaaa", DATAKEEP_DEBUG="1")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "DatasetNotFound" in done.stderr
    assert done.stderr.rstrip().endswith("List datasets with: datakeep datasets list")


def test_with_no_configuration_everything_is_under_home_dot_datakeep(tmp_path: Path) -> None:
    """Issue 2's embedded default: no DATAKEEP_* variable at all, a new machine's HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAKEEP_")}
    env["HOME"] = str(tmp_path / "fresh-user")
    (tmp_path / "some-data").mkdir()
    (tmp_path / "some-data" / "hello.txt").write_text("hello world\n")

    def run(*args: str) -> str:
        done = subprocess.run([_script(), *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    dataset_id = run("datasets", "create", "--name=mnist").split(": ")[1].strip()
    run("datasets", "versions", "create", f"--id={dataset_id}", f"--source-path={tmp_path}/some-data/")
    home = tmp_path / "fresh-user" / ".datakeep"
    assert (home / "catalog.db").is_file()
    stored = [p for p in (home / "storage").rglob("*") if p.is_file()]
    assert stored, "the default provider's bytes are not under ~/.datakeep/storage"
