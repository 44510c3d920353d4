"""Seed 002's commands, with ``gradient`` replaced by ``datakeep``, print what the seed shows.

The seed's page collapsed the tables' padding; ``terminaltables.AsciiTable`` (what Gradient
used) pads every column to its widest cell, which is what is compared here, byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Datakeep


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, some_data: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_seed_story(dk: Datakeep, in_tmp: Path) -> None:
    dataset_id = dk.create_dataset("test")
    provider = dk.ok("storageProviders", "list", "--json").json()[0]
    assert provider["name"] == "default"
    sp = f"default ({provider['id']})"

    created = dk.ok("datasets", "versions", "create", f"--id={dataset_id}", "--source-path=./some-data/")
    version = created.stdout.splitlines()[0].rsplit(":", 1)[1]
    assert created.stdout == (
        f"Created dataset version: {dataset_id}:{version}\n"
        f"Committed dataset version: {dataset_id}:{version}\n"
    )

    sp_col = max(len(sp), len("Storage Provider"))
    border = f"+------+-----------------+-{'-' * sp_col}-+"
    assert dk.ok("datasets", "list").stdout == (
        f"{border}\n"
        f"| Name | ID              | {'Storage Provider'.ljust(sp_col)} |\n"
        f"{border}\n"
        f"| test | {dataset_id} | {sp.ljust(sp_col)} |\n"
        f"{border}\n"
    )

    width = max(len(sp), len(dataset_id))
    border = f"+-----------------+-{'-' * width}-+"
    assert dk.ok("datasets", "details", f"--id={dataset_id}").stdout == (
        f"{border}\n"
        f"| Name            | {'test'.ljust(width)} |\n"
        f"{border}\n"
        f"| ID              | {dataset_id.ljust(width)} |\n"
        f"| Description     | {''.ljust(width)} |\n"
        f"| StorageProvider | {sp.ljust(width)} |\n"
        f"{border}\n"
    )

    assert dk.ok("datasets", "files", "list", f"--id={dataset_id}:{version}").stdout == (
        "+-----------+------+\n"
        "| Name      | Size |\n"
        "+-----------+------+\n"
        "| hello.txt | 12   |\n"
        "+-----------+------+\n"
    )


def test_seed_refs_latest_and_tag_list_the_same_files(dk: Datakeep, in_tmp: Path) -> None:
    dataset_id = dk.create_dataset("test")
    ref = dk.create_version(dataset_id, "./some-data/")
    dk.ok("datasets", "tags", "set", f"--id={ref}", "--name=prod")
    expected = dk.ok("datasets", "files", "list", f"--id={ref}").stdout
    for other in (f"{dataset_id}:latest", f"{dataset_id}:prod"):
        assert dk.ok("datasets", "files", "list", f"--id={other}").stdout == expected
