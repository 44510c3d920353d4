"""``datakeep datasets tags list|set|delete``: movable names, ``latest`` reserved, versions win."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Datakeep


@pytest.fixture
def two_versions(dk: Datakeep, some_data: Path) -> tuple[str, str, str]:
    dataset_id = dk.create_dataset()
    first = dk.create_version(dataset_id, some_data, message="one")
    (some_data / "hello.txt").write_text("second\n")
    second = dk.create_version(dataset_id, some_data, message="two")
    return dataset_id, first, second


def test_set_list_move_delete(dk: Datakeep, two_versions: tuple[str, str, str]) -> None:
    dataset_id, first, second = two_versions
    assert dk.ok("datasets", "tags", "list", f"--id={dataset_id}").stdout == "No data found\n"
    out = dk.ok("datasets", "tags", "set", f"--id={first}", "--name=prod").stdout
    assert out == f"Set dataset tag: {dataset_id}:prod\n"
    assert dk.ok("datasets", "tags", "list", f"--id={dataset_id}").stdout == (
        "+-------------------------+------+\n"
        "| ID                      | Name |\n"
        "+-------------------------+------+\n"
        f"| {first} | prod |\n"
        "+-------------------------+------+\n"
    )
    # Setting again moves it (idempotent PUT in Gradient), also through another tag or latest.
    dk.ok("datasets", "tags", "set", f"--id={dataset_id}:latest", "--name=prod")
    tags = dk.ok("datasets", "tags", "list", f"--id={dataset_id}", "--json").json()
    assert [(t["name"], t["version"]) for t in tags] == [("prod", second.split(":")[1])]
    dk.ok("datasets", "tags", "set", f"--id={dataset_id}:prod", "--name=Stable-1.0")
    names = [t["name"] for t in dk.ok("datasets", "tags", "list", f"--id={dataset_id}", "--json").json()]
    assert names == ["Stable-1.0", "prod"]

    out = dk.ok("datasets", "tags", "delete", f"--id={dataset_id}:prod").stdout
    assert out == f"Deleted dataset tag: {dataset_id}:prod\n"
    err = dk.fails("datasets", "tags", "delete", f"--id={dataset_id}:prod").stderr
    assert f"Tag not found: {dataset_id}:prod" in err
    # The version the tag pointed at is still there.
    dk.ok("datasets", "versions", "details", f"--id={second}")


def test_latest_is_reserved(dk: Datakeep, two_versions: tuple[str, str, str]) -> None:
    dataset_id, first, _ = two_versions
    err = dk.fails("datasets", "tags", "set", f"--id={first}", "--name=latest").stderr
    assert "'latest' is reserved" in err
    assert dk.ok("datasets", "tags", "list", f"--id={dataset_id}").stdout == "No data found\n"


def test_a_tag_that_looks_like_a_version_is_refused(dk: Datakeep, two_versions: tuple[str, str, str]) -> None:
    dataset_id, first, second = two_versions
    second_version = second.split(":")[1]
    for name in (second_version, "abcdefg", "1234567"):
        err = dk.fails("datasets", "tags", "set", f"--id={first}", f"--name={name}").stderr
        assert "could be read as a version ID" in err
    # So ds:<version> always means the version.
    details = dk.ok("datasets", "versions", "details", f"--id={second}", "--json").json()
    assert details["id"] == second


# "prod\n": a regex ending in $ also matches before a final newline, and stored such a tag.
@pytest.mark.parametrize("name", ["a b", "-lead", "ünï", "x" * 65, "a/b", "a:b", "prod\n", "\nprod"])
def test_invalid_tag_names(dk: Datakeep, two_versions: tuple[str, str, str], name: str) -> None:
    _, first, _ = two_versions
    assert "Invalid tag name" in dk.fails("datasets", "tags", "set", f"--id={first}", f"--name={name}").stderr


def test_set_needs_a_name_and_a_version(dk: Datakeep, two_versions: tuple[str, str, str]) -> None:
    dataset_id, first, _ = two_versions
    assert "No tag name given" in dk.fails("datasets", "tags", "set", f"--id={first}").stderr
    assert (
        "missing the version" in dk.fails("datasets", "tags", "set", f"--id={dataset_id}", "--name=x").stderr
    )
    err = dk.fails("datasets", "tags", "set", f"--id={dataset_id}:zzzzzzz", "--name=x").stderr
    assert "No version or tag 'zzzzzzz'" in err
    assert "missing the version" in dk.fails("datasets", "tags", "delete", f"--id={dataset_id}").stderr


def test_deleting_a_version_deletes_its_tags(dk: Datakeep, two_versions: tuple[str, str, str]) -> None:
    dataset_id, first, _ = two_versions
    dk.ok("datasets", "tags", "set", f"--id={first}", "--name=old")
    dk.ok("datasets", "versions", "delete", f"--id={first}")
    assert dk.ok("datasets", "tags", "list", f"--id={dataset_id}").stdout == "No data found\n"


def test_deleting_through_a_tag_names_the_real_version(
    dk: Datakeep, two_versions: tuple[str, str, str]
) -> None:
    """docs/versions.md: a tag in --id deletes the version behind it, and the line says which."""
    dataset_id, first, second = two_versions
    dk.ok("datasets", "tags", "set", f"--id={first}", "--name=old")
    out = dk.ok("datasets", "versions", "delete", f"--id={dataset_id}:old").stdout
    assert out == f"Deleted dataset version: {first}\n"
    listed = dk.ok("datasets", "versions", "list", f"--id={dataset_id}", "--json").json()
    assert [v["id"] for v in listed] == [second]
