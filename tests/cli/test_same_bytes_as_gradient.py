"""datakeep prints what the original ``gradient`` 2.99.3 CLI prints, byte for byte.

Both CLIs talk to the same datakeep server (datakeep in remote mode), so they see the same
datasets, versions, tags, files and providers; every read command and every success line is
compared. The server and the Gradient CLI come from the server tests' helpers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from datakeep.cli.common import reset_client
from fixtures.s3 import MakeBucket, S3Server
from server.conftest import Gradient, RunningServer, gradient_bin, start_server, stop_server

from .conftest import Datakeep


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("dk-server"))
    try:
        yield running
    finally:
        stop_server(running)


@pytest.fixture
def both(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Gradient, Datakeep]]:
    key = server.new_key()
    home = tmp_path / "gradient-home"
    home.mkdir()
    gradient = Gradient(gradient_bin("2.99.3"), server.url, key, home, tmp_path)
    monkeypatch.setenv("DATAKEEP_API_URL", server.url)
    monkeypatch.setenv("DATAKEEP_API_KEY", key)
    reset_client()
    yield gradient, Datakeep(server.database_url)
    reset_client()


#: Gradient's "Waiting for data..." spinner frames (halo writes them even into a pipe).
SPINNER = re.compile(r"^[\u2800-\u28ff] .*$\n?", re.M)


def _without_spinner(text: str) -> str:
    """Gradient's output minus its spinner and the blank lines around it; the tables stay as they are."""
    return SPINNER.sub("", text).strip("\n") + "\n"


def _same(gradient: Gradient, dk: Datakeep, *args: str) -> str:
    theirs = _without_spinner(gradient.run(*args).stdout)
    ours = dk.ok(*args).stdout
    assert ours == theirs, f"datakeep {' '.join(args)} differs from gradient:\n{ours}\n---\n{theirs}"
    return ours


def _ids(text: str) -> str:
    return re.sub(r"\bds[0-9a-z]{13}\b", "DS", re.sub(r"\bsp[0-9a-z]{13}\b", "SP", text))


def test_read_commands_print_the_same(
    both: tuple[Gradient, Datakeep], s3: S3Server, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    gradient, dk = both
    bucket = make_bucket(f"same-{os.urandom(3).hex()}")
    out = dk.ok(
        "storageProviders",
        "create",
        "s3",
        "--name=moto",
        f"--bucket={bucket}",
        f"--endpoint={s3.endpoint_url}",
        f"--accessKey={s3.access_key}",
        f"--secretAccessKey={s3.secret_key}",
        f"--region={s3.region}",
    ).stdout
    sp = out.rsplit(" ", 1)[1].strip()
    data = tmp_path / "some-data"
    (data / "sub").mkdir(parents=True)
    (data / "hello.txt").write_text("hello world\n")
    (data / "sub" / "b.csv").write_text("x,y\n1,2\n")
    (data / "empty.txt").write_bytes(b"")
    ds = dk.create_dataset("test", f"--storageProviderId={sp}", "--description=seed")
    ref = dk.create_version(ds, f"{data}/", message="first")
    dk.ok("datasets", "tags", "set", f"--id={ref}", "--name=prod")
    draft = dk.create_version(ds, message="draft")

    _same(gradient, dk, "storageProviders", "list")
    _same(gradient, dk, "storageProviders", "details", "--id", sp)
    _same(gradient, dk, "datasets", "list")
    _same(gradient, dk, "datasets", "details", "--id", ds)
    _same(gradient, dk, "datasets", "versions", "list", "--id", ds)
    _same(gradient, dk, "datasets", "versions", "list", "--id", ds, "--isCommitted", "false")
    _same(gradient, dk, "datasets", "versions", "details", "--id", ref)
    _same(gradient, dk, "datasets", "versions", "details", "--id", draft)
    _same(gradient, dk, "datasets", "tags", "list", "--id", ds)
    _same(gradient, dk, "datasets", "files", "list", "--id", ref)
    _same(gradient, dk, "datasets", "files", "list", "--id", ref, "--path", "/sub")
    _same(gradient, dk, "datasets", "files", "list", "--id", ref, "--recursive", "true")
    empty = dk.create_dataset("empty")
    _same(gradient, dk, "datasets", "tags", "list", "--id", empty)  # No data found


def test_success_lines_are_the_same(both: tuple[Gradient, Datakeep], tmp_path: Path) -> None:
    gradient, dk = both
    lines: dict[str, list[str]] = {}
    for name, run in (
        ("gradient", lambda *a: _without_spinner(gradient.run(*a).stdout)),
        ("datakeep", lambda *a: dk.ok(*a).stdout),
    ):
        out: list[str] = []
        created = run("datasets", "create", "--name", f"{name}-set", "--storageProviderId", _default_sp(dk))
        ds = created.split(": ")[1].strip()
        out.append(created)
        out.append(run("datasets", "update", "--id", ds, "--description", "d"))
        version_out = run("datasets", "versions", "create", "--id", ds, "--message", "m")
        ver = version_out.split(": ")[1].strip()
        out.append(version_out)
        out.append(run("datasets", "versions", "update", "--id", ver, "--message", "m2"))
        out.append(run("datasets", "versions", "commit", "--id", ver))
        out.append(run("datasets", "versions", "commit", "--id", ver))
        out.append(run("datasets", "tags", "set", "--id", ver, "--name", "prod"))
        out.append(run("datasets", "tags", "delete", "--id", f"{ds}:prod"))
        out.append(run("datasets", "versions", "delete", "--id", ver))
        out.append(run("datasets", "delete", "--id", ds))
        lines[name] = [re.sub(r":[0-9a-z]{7}\b", ":VER", _ids(text)) for text in out]
    assert lines["datakeep"] == lines["gradient"]
    assert lines["datakeep"][0] == "Created dataset: DS\n"


def _default_sp(dk: Datakeep) -> str:
    providers = dk.ok("storageProviders", "list", "--json").json()
    return str(providers[0]["id"])
