"""``datakeep datasets versions list|details|create|update|commit|delete|diff``."""

from __future__ import annotations

from pathlib import Path

from .conftest import Datakeep


def test_empty_version_lifecycle(dk: Datakeep) -> None:
    dataset_id = dk.create_dataset()
    ref = dk.create_version(dataset_id, message="first try")
    created = dk.ok("datasets", "versions", "create", f"--id={dataset_id}")
    assert created.stdout.count("\n") == 1  # no "Committed" line without --source-path

    # Uncommitted versions are listed only with --isCommitted false.
    assert dk.ok("datasets", "versions", "list", f"--id={dataset_id}").stdout == "No data found\n"
    listed = dk.ok(
        "datasets", "versions", "list", f"--id={dataset_id}", "--isCommitted=false", "--json"
    ).json()
    assert ref in [v["id"] for v in listed]

    out = dk.ok("datasets", "versions", "update", f"--id={ref}", "--message=better").stdout
    assert out == f"Updated dataset version: {ref}\n"
    details = dk.ok("datasets", "versions", "details", f"--id={ref}").stdout
    assert details.splitlines()[1] == f"| ID        | {ref} |"
    assert "| Message   | better " in details
    assert "| Committed | false " in details

    assert (
        dk.ok("datasets", "versions", "commit", f"--id={ref}").stdout == f"Committed dataset version: {ref}\n"
    )
    assert (
        dk.ok("datasets", "versions", "commit", f"--id={ref}").stdout == "Dataset version already committed\n"
    )
    assert "| Committed | true " in dk.ok("datasets", "versions", "details", f"--id={ref}").stdout
    table = dk.ok("datasets", "versions", "list", f"--id={dataset_id}").stdout
    assert table.splitlines()[1].split("|")[1:4] == [" ID                      ", " Message ", " Tags "]
    assert f"| {ref} | better  |      |" in table

    bare_flag = dk.ok("datasets", "versions", "list", f"--id={dataset_id}", "--isCommitted", "--json").json()
    assert [v["id"] for v in bare_flag] == [ref]
    assert (
        dk.ok("datasets", "versions", "delete", f"--id={ref}").stdout == f"Deleted dataset version: {ref}\n"
    )
    assert "No version or tag" in dk.fails("datasets", "versions", "details", f"--id={ref}").stderr


def test_committed_version_is_immutable(dk: Datakeep, some_data: Path, tmp_path: Path) -> None:
    dataset_id = dk.create_dataset()
    ref = dk.create_version(dataset_id, some_data, message="v1")
    before = dk.ok("datasets", "versions", "details", f"--id={ref}", "--json").json()
    other = tmp_path / "other.txt"
    other.write_text("more")
    for args in (
        ("datasets", "versions", "update", f"--id={ref}", "--message=changed"),
        ("datasets", "files", "put", f"--id={ref}", f"--source-path={other}"),
        ("datasets", "files", "delete", f"--id={ref}", "--path=some-data/hello.txt"),
        ("datasets", "files", "delete", f"--id={ref}", "--all"),
    ):
        err = dk.fails(*args).stderr
        assert "is committed and cannot be changed" in err, args
        assert "versions create" in err
    assert dk.ok("datasets", "versions", "details", f"--id={ref}", "--json").json() == before
    assert "some-data/hello.txt" in dk.ok("datasets", "files", "list", f"--id={ref}", "--recursive").stdout


def test_latest_tags_and_version_ids(dk: Datakeep, some_data: Path) -> None:
    dataset_id = dk.create_dataset()
    err = dk.fails("datasets", "versions", "details", f"--id={dataset_id}:latest").stderr
    assert "no committed version yet" in err
    first = dk.create_version(dataset_id, some_data, message="one")
    (some_data / "hello.txt").write_text("changed!\n")
    second = dk.create_version(dataset_id, some_data, message="two")
    dk.create_version(dataset_id, message="uncommitted, so never latest")
    latest = dk.ok("datasets", "versions", "details", f"--id={dataset_id}:latest", "--json").json()
    assert latest["id"] == second
    assert latest["parent"] == first.split(":")[1]
    dk.ok("datasets", "tags", "set", f"--id={first}", "--name=prod")
    assert dk.ok("datasets", "versions", "details", f"--id={dataset_id}:prod", "--json").json()["id"] == first
    listed = [v["id"] for v in dk.ok("datasets", "versions", "list", f"--id={dataset_id}", "--json").json()]
    assert listed == [second, first]  # newest first
    table = dk.ok("datasets", "versions", "list", f"--id={dataset_id}").stdout
    assert f"| {second} | two     |      |" in table
    assert f"| {first} | one     | prod |" in table
    missing = dk.fails("datasets", "versions", "details", f"--id={dataset_id}:nosuch").stderr
    assert "No version or tag 'nosuch'" in missing


def test_create_from_missing_source_path_creates_nothing(dk: Datakeep, tmp_path: Path) -> None:
    dataset_id = dk.create_dataset()
    missing = tmp_path / "nope"
    err = dk.fails("datasets", "versions", "create", f"--id={dataset_id}", f"--source-path={missing}").stderr
    assert f"Source path not found: {missing}" in err
    for committed in ("true", "false"):
        args = ("datasets", "versions", "list", f"--id={dataset_id}", f"--isCommitted={committed}")
        assert dk.ok(*args).stdout == "No data found\n"


def test_create_wants_a_bare_dataset_id(dk: Datakeep, some_data: Path) -> None:
    dataset_id = dk.create_dataset()
    err = dk.fails("datasets", "versions", "create", f"--id={dataset_id}:abcdefg").stderr
    assert "should not have a version/tag" in err


def test_create_from_several_sources_and_a_file(dk: Datakeep, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("x")
    (tmp_path / "single.bin").write_bytes(b"\0\1\2")
    dataset_id = dk.create_dataset()
    ref = dk.create_version(dataset_id, tmp_path / "a", tmp_path / "single.bin")
    files = dk.ok("datasets", "files", "list", f"--id={ref}", "--recursive", "--json").json()
    assert sorted((f["path"], f["size"]) for f in files) == [("a/x.txt", 1), ("single.bin", 3)]


def test_diff(dk: Datakeep, tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "same.txt").write_text("same")
    (data / "gone.txt").write_text("gone")
    (data / "changed.txt").write_text("v1")
    dataset_id = dk.create_dataset()
    old = dk.create_version(dataset_id, f"{data}/")
    (data / "gone.txt").unlink()
    (data / "changed.txt").write_text("version 2")
    (data / "new.txt").write_text("new")
    new = dk.create_version(dataset_id, f"{data}/")
    changes = dk.ok("datasets", "versions", "diff", f"--id={old}", f"--to={new}", "--json").json()
    assert sorted((c["kind"], c["path"]) for c in changes) == [
        ("added", "new.txt"),
        ("modified", "changed.txt"),
        ("removed", "gone.txt"),
    ]
    table = dk.ok("datasets", "versions", "diff", f"--id={old}", f"--to={new}").stdout
    assert "| modified | changed.txt | 2 -> 9 |" in table
    assert dk.ok("datasets", "versions", "diff", f"--id={new}", f"--to={dataset_id}:latest").stdout == (
        "No differences\n"
    )
