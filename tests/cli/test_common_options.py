"""Gradient's shared options (``--apiKey``, ``--optionsFile``, ``--createOptionsFile``), ``--json``
on every read command, and paging only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from datakeep.cli import common
from datakeep.cli.main import cli
from datakeep.client import Client
from datakeep.config import Settings

from .conftest import Datakeep


def test_options_file_supplies_options(dk: Datakeep, tmp_path: Path, some_data: Path) -> None:
    options = tmp_path / "create.yaml"
    options.write_text(yaml.safe_dump({"name": "from-yaml", "description": "kept in a file"}))
    out = dk.ok("datasets", "create", f"--optionsFile={options}").stdout
    dataset_id = out.split(": ")[1].strip()
    details = dk.ok("datasets", "details", f"--id={dataset_id}", "--json").json()
    assert (details["name"], details["description"]) == ("from-yaml", "kept in a file")

    # Keys are option names; a repeatable option takes a list or a single string; the command
    # line wins over the file.
    version_options = tmp_path / "version.yaml"
    version_options.write_text(
        yaml.safe_dump({"id": dataset_id, "source-path": [f"{some_data}/"], "message": "from file"})
    )
    out = dk.ok("datasets", "versions", "create", f"--optionsFile={version_options}", "--message=cli").stdout
    ref = out.splitlines()[0].split(": ")[1]
    version = dk.ok("datasets", "versions", "details", f"--id={ref}", "--json").json()
    assert version["message"] == "cli"
    assert version["is_committed"] is True


def test_options_file_errors(dk: Datakeep, tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.yaml"
    bad_key.write_text("nmae: typo\n")
    result = dk.run("datasets", "create", f"--optionsFile={bad_key}")
    assert result.exit_code == 2
    assert "unknown option 'nmae'" in result.stderr
    not_yaml = tmp_path / "not.yaml"
    not_yaml.write_text("name: [unclosed\n")
    assert dk.run("datasets", "create", f"--optionsFile={not_yaml}").exit_code == 2
    result = dk.run("datasets", "create", f"--optionsFile={tmp_path / 'missing.yaml'}")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_create_options_file_writes_a_template_without_secrets(dk: Datakeep, tmp_path: Path) -> None:
    template = tmp_path / "sp.yaml"
    result = dk.ok(
        "storageProviders",
        "create",
        "s3",
        "--name=b",
        "--bucket=bkt",
        "--secretAccessKey=TOP-SECRET",
        "--apiKey=ALSO-SECRET",
        f"--createOptionsFile={template}",
    )
    assert result.stdout == ""
    text = template.read_text()
    assert "TOP-SECRET" not in text
    assert "ALSO-SECRET" not in text
    data = yaml.safe_load(text)
    assert data["name"] == "b"
    assert data["bucket"] == "bkt"
    assert data["secretAccessKey"] is None
    assert set(data) >= {"accessKey", "endpoint", "region", "signatureVersion", "prefix"}
    # Nothing was created: the command stops after writing the template.
    assert len(dk.ok("storageProviders", "list", "--json").json()) == 1
    # And the template, once filled in, is a valid options file.
    data["secretAccessKey"] = "s"
    data["accessKey"] = "a"
    template.write_text(yaml.safe_dump(data))
    assert dk.ok("storageProviders", "create", "s3", f"--optionsFile={template}").stdout.startswith(
        "Created new storage provider with id: sp"
    )


def test_api_key_option_reaches_the_client_settings(catalog_url: str) -> None:
    ctx = click.Context(click.Command("probe"))
    with ctx:
        ctx.meta["datakeep.api_key"] = "key-from-option"
        try:
            client = common.get_client()
            assert client.settings.api_key == "key-from-option"
        finally:
            common.reset_client()


def test_api_key_is_accepted_everywhere(dk: Datakeep) -> None:
    dk.ok("datasets", "list", "--apiKey=whatever")
    dk.ok("storageProviders", "list", "--apiKey=whatever")


def _read_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += _read_commands(command, (*prefix, name))
        elif name in ("list", "details", "diff"):
            found.append((*prefix, name))
    return found


def test_every_read_command_has_json() -> None:
    reads = [c for c in _read_commands(cli) if c[0] in ("datasets", "storageProviders")]
    assert len(reads) == 9
    for path in reads:
        command: click.Command = cli
        for part in path:
            assert isinstance(command, click.Group)
            sub = command.get_command(click.Context(command), part)
            assert sub is not None
            command = sub
        assert "--json" in [opt for p in command.params for opt in p.opts], path


def test_json_output_of_every_read_command(dk: Datakeep, some_data: Path) -> None:
    dataset_id = dk.create_dataset()
    ref = dk.create_version(dataset_id, f"{some_data}/")
    dk.ok("datasets", "tags", "set", f"--id={ref}", "--name=prod")
    provider_id = dk.ok("storageProviders", "list", "--json").json()[0]["id"]
    for args in (
        ("datasets", "list"),
        ("datasets", "details", f"--id={dataset_id}"),
        ("datasets", "versions", "list", f"--id={dataset_id}"),
        ("datasets", "versions", "details", f"--id={ref}"),
        ("datasets", "versions", "diff", f"--id={ref}", f"--to={dataset_id}:prod"),
        ("datasets", "tags", "list", f"--id={dataset_id}"),
        ("datasets", "files", "list", f"--id={ref}"),
        ("storageProviders", "list"),
        ("storageProviders", "details", f"--id={provider_id}"),
    ):
        json.loads(dk.ok(*args, "--json").stdout)


def test_no_paging_without_a_terminal(dk: Datakeep, hermetic_env: object) -> None:
    client = Client(
        Settings.from_env(
            {"DATAKEEP_HOME": os.environ["DATAKEEP_HOME"], "DATAKEEP_DATABASE_URL": dk.catalog_url}
        )
    )
    for i in range(25):
        client.datasets.create(name=f"set-{i:02d}")
    client.close()
    out = dk.ok("datasets", "list").stdout
    assert "Do you want to continue?" not in out
    assert out.count("| set-") == 25
    assert sum(line.startswith("+") for line in out.splitlines()) == 3  # one table


def _datakeep_script() -> str:
    found = shutil.which("datakeep", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the datakeep console script is not installed in this venv")
    return found


def _pty_run(argv: list[str], answers: list[bytes], env: dict[str, str]) -> tuple[int, str]:
    """Run argv with a real terminal as stdin and stdout, answering each question in turn."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    output = b""
    pending = list(answers)
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 20)
            if not ready:
                raise AssertionError(f"no output from {argv}; so far: {output!r}")
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and output.rstrip().endswith(b"[y/N]:"):
                os.write(leader, pending.pop(0))
    finally:
        os.close(leader)
        code = proc.wait(timeout=60)
    return code, output.decode().replace("\r\n", "\n")


@pytest.mark.parametrize("answer", [b"n\n", b"y\n"])
def test_paging_on_a_terminal(dk: Datakeep, answer: bytes) -> None:
    script = _datakeep_script()
    env = {**os.environ, "DATAKEEP_DATABASE_URL": dk.catalog_url}
    client = Client(Settings.from_env(env))
    for i in range(25):
        client.datasets.create(name=f"set-{i:02d}")
    client.close()
    code, out = _pty_run([script, "datasets", "list"], [answer], env)
    assert code == 0
    assert "Do you want to continue? [y/N]:" in out
    assert "| set-19 |" in out
    if answer == b"n\n":
        assert "| set-20 |" not in out
    else:
        assert out.count("| set-") == 25
        assert out.count("| Name ") == 2  # two pages, each with its heading


def test_template_round_trip_keeps_types(dk: Datakeep, tmp_path: Path) -> None:
    dataset_id = dk.create_dataset()
    draft = dk.create_version(dataset_id, message="draft")
    template = tmp_path / "list.yaml"
    args = ("datasets", "versions", "list", f"--id={dataset_id}", "--isCommitted", "false", "--json")
    dk.ok(*args, f"--createOptionsFile={template}")
    assert yaml.safe_load(template.read_text()) == {"id": dataset_id, "isCommitted": False}
    listed = dk.ok("datasets", "versions", "list", f"--optionsFile={template}", "--json").json()
    assert [v["id"] for v in listed] == [draft]
    bare = tmp_path / "files.yaml"
    dk.ok("datasets", "files", "list", f"--id={draft}", "--recursive", f"--createOptionsFile={bare}")
    assert yaml.safe_load(bare.read_text()) == {"id": draft, "path": "/", "recursive": True}
