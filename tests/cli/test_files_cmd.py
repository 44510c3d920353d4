"""``datakeep datasets files list|get|put|delete`` and the source trees users really have."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import Datakeep


def _files(dk: Datakeep, ref: str) -> dict[str, int]:
    listed = dk.ok("datasets", "files", "list", f"--id={ref}", "--recursive", "--json").json()
    return {entry["path"]: entry["size"] for entry in listed}


@pytest.fixture
def draft(dk: Datakeep) -> tuple[str, str]:
    """A dataset and an empty, uncommitted version of it."""
    dataset_id = dk.create_dataset()
    return dataset_id, dk.create_version(dataset_id)


def test_put_key_mapping(dk: Datakeep, draft: tuple[str, str], tmp_path: Path) -> None:
    _, ref = draft
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("aa")
    (folder / "sub" / "b.txt").write_text("bbb")
    single = tmp_path / "single.txt"
    single.write_text("s")
    assert dk.ok("datasets", "files", "list", f"--id={ref}").stdout == "No data found\n"
    put = dk.ok("datasets", "files", "put", f"--id={ref}", f"--source-path={single}")
    assert put.stdout == ""
    dk.ok("datasets", "files", "put", f"--id={ref}", f"--source-path={folder}")
    dk.ok("datasets", "files", "put", f"--id={ref}", f"--source-path={folder}/", "--target-path=/flat")
    assert _files(dk, ref) == {
        "single.txt": 1,
        "d/a.txt": 2,
        "d/sub/b.txt": 3,
        "flat/a.txt": 2,
        "flat/sub/b.txt": 3,
    }
    top = dk.ok("datasets", "files", "list", f"--id={ref}").stdout
    assert top == (
        "+------------+------+\n"
        "| Name       | Size |\n"
        "+------------+------+\n"
        "| d/         |      |\n"
        "| flat/      |      |\n"
        "| single.txt | 1    |\n"
        "+------------+------+\n"
    )
    sub = dk.ok("datasets", "files", "list", f"--id={ref}", "--path=/d", "--json").json()
    assert [(e["path"], e["is_dir"]) for e in sub] == [("a.txt", False), ("sub/", True)]


def test_put_replaces_and_delete_removes(dk: Datakeep, draft: tuple[str, str], tmp_path: Path) -> None:
    _, ref = draft
    (tmp_path / "x.txt").write_text("one")
    dk.ok("datasets", "files", "put", f"--id={ref}", f"--source-path={tmp_path / 'x.txt'}")
    (tmp_path / "x.txt").write_text("three")
    dk.ok("datasets", "files", "put", f"--id={ref}", f"--source-path={tmp_path / 'x.txt'}")
    assert _files(dk, ref) == {"x.txt": 5}
    dk.ok("datasets", "files", "delete", f"--id={ref}", "--path=x.txt")
    assert _files(dk, ref) == {}


def test_delete_without_path_refuses_unless_all(
    dk: Datakeep, draft: tuple[str, str], some_data: Path
) -> None:
    _, ref = draft
    dk.ok("datasets", "files", "put", f"--id={ref}", f"--source-path={some_data}/")
    err = dk.fails("datasets", "files", "delete", f"--id={ref}").stderr
    assert "would delete every file" in err
    assert "--all" in err
    assert _files(dk, ref) == {"hello.txt": 12}
    dk.ok("datasets", "files", "delete", f"--id={ref}", "--all")
    assert _files(dk, ref) == {}


def test_get_everything_and_subsets(dk: Datakeep, tmp_path: Path) -> None:
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    (folder / "sub" / "c.txt").write_text("c")
    dataset_id = dk.create_dataset()
    ref = dk.create_version(dataset_id, f"{folder}/")

    everything = tmp_path / "all"
    got = dk.ok("datasets", "files", "get", f"--id={ref}", f"--target-path={everything}")
    assert got.stdout == ""
    assert "3 files" in got.stderr
    assert sorted(str(p.relative_to(everything)) for p in everything.rglob("*") if p.is_file()) == [
        "a.txt",
        "sub/b.txt",
        "sub/c.txt",
    ]
    assert (everything / "sub" / "c.txt").read_text() == "c"

    some = tmp_path / "some"
    dk.ok(
        "datasets",
        "files",
        "get",
        f"--id={dataset_id}:latest",
        "--source-path=a.txt",
        "--source-path=sub/",
        f"--target-path={some}",
    )
    assert sorted(str(p.relative_to(some)) for p in some.rglob("*") if p.is_file()) == [
        "a.txt",
        "sub/b.txt",
        "sub/c.txt",
    ]
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert (
        "not a directory"
        in dk.fails("datasets", "files", "get", f"--id={ref}", f"--target-path={a_file}").stderr
    )
    result = dk.run("datasets", "files", "get", f"--id={ref}")
    assert result.exit_code == 2
    assert "--target-path" in result.stderr


def test_put_needs_a_source_path(dk: Datakeep, draft: tuple[str, str], tmp_path: Path) -> None:
    _, ref = draft
    result = dk.run("datasets", "files", "put", f"--id={ref}")
    assert result.exit_code == 2
    assert "Missing option '--source-path'" in result.stderr
    err = dk.fails("datasets", "files", "put", f"--id={ref}", f"--source-path={tmp_path / 'nope'}").stderr
    assert "Source path not found" in err


def test_list_unknown_path(dk: Datakeep, some_data: Path) -> None:
    dataset_id = dk.create_dataset()
    ref = dk.create_version(dataset_id, f"{some_data}/")
    assert "not found" in dk.fails("datasets", "files", "list", f"--id={ref}", "--path=nope").stderr


# SOURCE TREES


def test_zero_byte_files_and_empty_directories(dk: Datakeep, tmp_path: Path) -> None:
    """Zero-byte files are kept; empty directories are not (a version holds files, like S3)."""
    folder = tmp_path / "tree"
    (folder / "empty-dir").mkdir(parents=True)
    (folder / "nested" / "also-empty").mkdir(parents=True)
    (folder / "zero.bin").write_bytes(b"")
    (folder / "nested" / "zero2").write_bytes(b"")
    dataset_id = dk.create_dataset()
    ref = dk.create_version(dataset_id, f"{folder}/")
    assert _files(dk, ref) == {"zero.bin": 0, "nested/zero2": 0}
    out = tmp_path / "out"
    dk.ok("datasets", "files", "get", f"--id={ref}", f"--target-path={out}")
    assert (out / "zero.bin").read_bytes() == b""
    assert (out / "nested" / "zero2").is_file()


def test_symlinks_inside_are_followed_outside_refused(dk: Datakeep, tmp_path: Path) -> None:
    folder = tmp_path / "tree"
    (folder / "real").mkdir(parents=True)
    (folder / "real" / "data.txt").write_text("data")
    (folder / "link.txt").symlink_to("real/data.txt")
    (folder / "linkdir").symlink_to("real")
    dataset_id = dk.create_dataset()
    ref = dk.create_version(dataset_id, f"{folder}/")
    assert _files(dk, ref) == {"real/data.txt": 4, "link.txt": 4, "linkdir/data.txt": 4}

    secret = tmp_path / "outside.txt"
    secret.write_text("not yours")
    (folder / "escape.txt").symlink_to(secret)
    err = dk.fails("datasets", "versions", "create", f"--id={dataset_id}", f"--source-path={folder}/").stderr
    assert "points outside the source folder" in err
    (folder / "escape.txt").unlink()
    (folder / "loop").symlink_to(".")
    assert (
        "loop"
        in dk.fails("datasets", "versions", "create", f"--id={dataset_id}", f"--source-path={folder}/").stderr
    )
    assert [
        v["id"] for v in dk.ok("datasets", "versions", "list", f"--id={dataset_id}", "--json").json()
    ] == [ref]


def test_non_utf8_file_names_round_trip(dk: Datakeep, tmp_path: Path) -> None:
    folder = tmp_path / "tree"
    folder.mkdir()
    raw_name = b"caf\xe9.txt"  # Latin-1, not valid UTF-8
    with open(os.path.join(os.fsencode(folder), raw_name), "wb") as f:
        f.write(b"latin")
    (folder / "données.txt").write_text("utf8")
    dataset_id = dk.create_dataset()
    ref = dk.create_version(dataset_id, f"{folder}/")
    table = dk.ok("datasets", "files", "list", f"--id={ref}").stdout
    assert "| caf\\xe9.txt | 5    |" in table
    assert "| données.txt | 4    |" in table
    listed = {os.fsencode(p) for p in _files(dk, ref)}
    assert listed == {raw_name, "données.txt".encode()}
    out = tmp_path / "out"
    dk.ok("datasets", "files", "get", f"--id={ref}", f"--target-path={out}")
    assert sorted(os.listdir(os.fsencode(out))) == sorted([raw_name, "données.txt".encode()])
    with open(os.path.join(os.fsencode(out), raw_name), "rb") as f:
        assert f.read() == b"latin"


def test_a_file_changing_while_read_is_refused(
    dk: Datakeep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file really grows on disk between the scan and the read; only *when* is arranged here
    (by wrapping the engine's read), because a racing writer thread would make the test flaky."""
    from datakeep.storage import content

    folder = tmp_path / "tree"
    folder.mkdir()
    growing = folder / "log.txt"
    growing.write_text("first line\n")
    original = content.ContentStore._read_checked

    def grow_then_read(self: Any, f: Any) -> bytes:
        if os.fspath(f.path).endswith("log.txt"):
            with open(growing, "a") as fh:
                fh.write("appended while datakeep was reading\n")
        return original(self, f)

    monkeypatch.setattr(content.ContentStore, "_read_checked", grow_then_read)
    dataset_id = dk.create_dataset()
    err = dk.fails("datasets", "versions", "create", f"--id={dataset_id}", f"--source-path={folder}/").stderr
    assert "changed while it was being read" in err
    for committed in ("true", "false"):
        args = ("datasets", "versions", "list", f"--id={dataset_id}", f"--isCommitted={committed}")
        assert dk.ok(*args).stdout == "No data found\n"
    monkeypatch.setattr(content.ContentStore, "_read_checked", original)
    ref = dk.create_version(dataset_id, f"{folder}/")
    assert _files(dk, ref) == {"log.txt": growing.stat().st_size}
