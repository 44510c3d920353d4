"""``datakeep datasets list|details|create|update|delete`` and reference checking."""

from __future__ import annotations

import pytest

from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.catalog.store import Catalog
from fixtures.env import HermeticEnv

from .conftest import Datakeep

UNKNOWN_DATASET = "dsaaaaaaaaaaaaa"


def test_list_is_empty_then_sorted_by_name(dk: Datakeep) -> None:
    assert dk.ok("datasets", "list").stdout == "No data found\n"
    assert dk.ok("datasets", "list", "--json").json() == []
    b = dk.create_dataset("beta")
    a = dk.create_dataset("alpha")
    rows = [line.split("|")[1:3] for line in dk.ok("datasets", "list").stdout.splitlines()[3:-1]]
    assert [(n.strip(), i.strip()) for n, i in rows] == [("alpha", a), ("beta", b)]


def test_create_update_delete_strings(dk: Datakeep) -> None:
    dataset_id = dk.create_dataset("mnist", "--description", "digits")
    details = dk.ok("datasets", "details", f"--id={dataset_id}", "--json").json()
    assert details["name"] == "mnist"
    assert details["description"] == "digits"
    assert details["storage_provider"]["name"] == "default"

    out = dk.ok("datasets", "update", f"--id={dataset_id}", "--name=mnist2", "--description=new").stdout
    assert out == f"Updated dataset: {dataset_id}\n"
    table = dk.ok("datasets", "details", f"--id={dataset_id}").stdout
    assert "| Name            | mnist2" in table
    assert "| Description     | new" in table

    assert dk.ok("datasets", "delete", f"--id={dataset_id}").stdout == f"Deleted dataset: {dataset_id}\n"
    assert dk.ok("datasets", "list").stdout == "No data found\n"
    err = dk.fails("datasets", "details", f"--id={dataset_id}").stderr
    assert f"Dataset not found: {dataset_id}" in err


def test_create_on_a_named_provider(dk: Datakeep, tmp_path: object) -> None:
    out = dk.ok("storageProviders", "create", "local", "--name=nfs", f"--path={tmp_path}/nfs").stdout
    provider_id = out.rsplit(" ", 1)[1].strip()
    dataset_id = dk.create_dataset("on-nfs", f"--storageProviderId={provider_id}")
    assert f"nfs ({provider_id})" in dk.ok("datasets", "details", f"--id={dataset_id}").stdout


def test_the_catalog_is_the_database_url_names(dk: Datakeep, hermetic_env: HermeticEnv) -> None:
    """Without this, a DATAKEEP_DATABASE_URL ignored by the CLI would run every "PostgreSQL" case
    on the SQLite file under the data home, and they would all pass."""
    dataset_id = dk.create_dataset("where")
    catalog = Catalog(dk.catalog_url)
    try:
        assert [d.id for d in catalog.list_datasets(LOCAL_TEAM_ID)] == [dataset_id]
    finally:
        catalog.close()
    assert not (hermetic_env.home / "catalog.db").exists()


def test_duplicate_names_are_refused(dk: Datakeep) -> None:
    first = dk.create_dataset("same")
    err = dk.fails("datasets", "create", "--name=same").stderr
    assert "already exists" in err
    assert "--name" in err
    other = dk.create_dataset("other")
    assert "already exists" in dk.fails("datasets", "update", f"--id={other}", "--name=same").stderr
    ids = [d["id"] for d in dk.ok("datasets", "list", "--json").json()]
    assert sorted(ids) == sorted([first, other])


def test_unknown_ids(dk: Datakeep) -> None:
    for args in (
        ("datasets", "details"),
        ("datasets", "update", "--name=x"),
        ("datasets", "delete"),
        ("datasets", "versions", "list"),
        ("datasets", "versions", "create"),
        ("datasets", "tags", "list"),
    ):
        err = dk.fails(*args, f"--id={UNKNOWN_DATASET}").stderr
        assert f"Dataset not found: {UNKNOWN_DATASET}" in err, args
        assert "datakeep datasets list" in err
    err = dk.fails("datasets", "create", "--name=x", "--storageProviderId=spaaaaaaaaaaaaa").stderr
    assert "Storage provider not found" in err


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("", "missing the dataset ID"),
        ("ds:", "not a dataset ID"),
        (":v", "missing the dataset ID"),
        ("a:b:c", "more than one ':'"),
        ("dsaaaaaaaaaaaaa:b:c", "more than one ':'"),
        ("dsaaaaaaa aaaaa", "white space"),
        (" dsaaaaaaaaaaaaa", "white space"),
        ("dsäaaaaaaaaaaaa", "non-ASCII"),
        ("dsaaaaaaaaaaaaa:vérsion", "non-ASCII"),
        ("DSAAAAAAAAAAAAA", "not a dataset ID"),
        ("dsaaaaaaaaaaaaa:", "missing the version"),
    ],
)
def test_malformed_references_need_a_version(dk: Datakeep, ref: str, message: str) -> None:
    err = dk.fails("datasets", "versions", "details", f"--id={ref}").stderr
    assert message in err
    assert err.startswith("Error: ")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("dsaaaaaaaaaaaaa:klfoyy9", "should not have a version/tag"),
        ("dsaaaaaaaaaaaaa:latest", "should not have a version/tag"),
        ("ds:", "not a dataset ID"),
        ("a:b:c", "more than one ':'"),
        ("dsaaaaaaaaaaaaa:a b", "white space"),
    ],
)
def test_malformed_bare_ids(dk: Datakeep, ref: str, message: str) -> None:
    for command in (("datasets", "details"), ("datasets", "delete"), ("datasets", "versions", "list")):
        assert message in dk.fails(*command, f"--id={ref}").stderr


def test_missing_required_options_are_usage_errors(dk: Datakeep) -> None:
    result = dk.run("datasets", "create")
    assert result.exit_code == 2
    assert "Missing option '--name'" in result.stderr
    result = dk.run("datasets", "details")
    assert result.exit_code == 2
    assert "Missing option '--id'" in result.stderr


def test_empty_name_is_refused(dk: Datakeep) -> None:
    assert "needs a name" in dk.fails("datasets", "create", "--name=  ").stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [("x" * 201, "at most 200 characters"), ("two\nlines", "control characters"), ("tab\there", "control")],
)
def test_names_every_catalog_stores_alike(dk: Datakeep, name: str, message: str) -> None:
    """PostgreSQL would reject a 201-character name that SQLite stores: both refuse it up front."""
    assert message in dk.fails("datasets", "create", f"--name={name}").stderr
    dataset_id = dk.create_dataset("x" * 200)
    assert message in dk.fails("datasets", "update", f"--id={dataset_id}", f"--name={name}").stderr
    assert (
        message in dk.fails("storageProviders", "create", "local", f"--name={name}", "--path=/tmp/p").stderr
    )
    unicode_name = dk.create_dataset("données-日本")
    assert dk.ok("datasets", "details", f"--id={unicode_name}", "--json").json()["name"] == "données-日本"
