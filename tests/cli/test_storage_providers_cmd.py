"""``datakeep storageProviders``: s3 and local, secrets never printed."""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import Datakeep

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


def _created(out: str) -> str:
    match = re.fullmatch(r"Created new storage provider with id: (sp[0-9a-z]{13})\n", out)
    assert match, out
    return match.group(1)


def _create_s3(dk: Datakeep, *extra: str) -> str:
    return _created(
        dk.ok(
            "storageProviders",
            "create",
            "s3",
            "--name=bucket1",
            "--bucket=my-bucket",
            "--accessKey=AKIAEXAMPLE",
            f"--secretAccessKey={SECRET}",
            *extra,
        ).stdout
    )


def test_default_provider_exists_with_no_configuration(dk: Datakeep, tmp_path: Path) -> None:
    providers = dk.ok("storageProviders", "list", "--json").json()
    assert [(p["name"], p["type"], p["is_default"]) for p in providers] == [("default", "local", True)]
    assert providers[0]["config"]["path"].startswith(str(tmp_path))


def test_s3_create_list_details_mask_the_secret(dk: Datakeep) -> None:
    provider_id = _create_s3(
        dk, "--endpoint=http://127.0.0.1:9000", "--region=us-east-1", "--signatureVersion=v4"
    )
    listed = dk.ok("storageProviders", "list").stdout
    details = dk.ok("storageProviders", "details", f"--id={provider_id}").stdout
    as_json = dk.ok("storageProviders", "details", f"--id={provider_id}", "--json").stdout
    listed_json = dk.ok("storageProviders", "list", "--json").stdout
    for out in (listed, details, as_json, listed_json):
        assert SECRET not in out
        assert "********" in out
    # Config: sorted "key: value" lines, at most 5 in the list then "...", all in details.
    assert "| bucket1 | " + provider_id + " | s3    | accessKey: AKIAEXAMPLE" in listed
    assert "|         |                 |       | ...  " in listed
    assert "region: us-east-1" in listed
    assert "signatureVersion" not in listed
    config_lines = [line.split("|")[2].strip() for line in details.splitlines() if line.startswith("|")][3:]
    assert config_lines == [
        "accessKey: AKIAEXAMPLE",
        "bucket: my-bucket",
        "endpoint: http://127.0.0.1:9000",
        "region: us-east-1",
        "secretAccessKey: ********",
        "signatureVersion: v4",
    ]


def test_s3_update_changes_only_what_is_given(dk: Datakeep) -> None:
    provider_id = _create_s3(dk, "--region=eu-west-1", "--prefix=team-a")
    out = dk.ok(
        "storageProviders", "update", "s3", f"--id={provider_id}", "--name=renamed", "--region="
    ).stdout
    assert out == "Updated storage provider\n"
    details = dk.ok("storageProviders", "details", f"--id={provider_id}", "--json").json()
    assert details["name"] == "renamed"
    assert "region" not in details["config"]  # "" clears an optional key
    assert details["config"]["bucket"] == "my-bucket"
    assert details["config"]["prefix"] == "team-a"
    assert details["config"]["secretAccessKey"] == "********"
    dk.ok("storageProviders", "update", "s3", f"--id={provider_id}", "--bucket=", "--accessKey=NEWKEY")
    details = dk.ok("storageProviders", "details", f"--id={provider_id}", "--json").json()
    assert details["config"]["bucket"] == "my-bucket"  # an empty bucket means "unchanged", as in Gradient
    assert details["config"]["accessKey"] == "NEWKEY"


def test_local_create_update_and_type_mismatch(dk: Datakeep, tmp_path: Path) -> None:
    provider_id = _created(
        dk.ok("storageProviders", "create", "local", "--name=disk", f"--path={tmp_path}/a").stdout
    )
    assert (tmp_path / "a").is_dir()
    dk.ok("storageProviders", "update", "local", f"--id={provider_id}", f"--path={tmp_path}/b")
    assert dk.ok("storageProviders", "details", f"--id={provider_id}", "--json").json()["config"] == {
        "path": f"{tmp_path}/b"
    }
    err = dk.fails("storageProviders", "update", "s3", f"--id={provider_id}", "--bucket=x").stderr
    assert "is of type local, not s3" in err
    assert "storageProviders update local" in err
    s3_id = _create_s3(dk)
    assert (
        "is of type s3, not local" in dk.fails("storageProviders", "update", "local", f"--id={s3_id}").stderr
    )


def test_create_errors(dk: Datakeep) -> None:
    result = dk.run("storageProviders", "create", "s3", "--name=x")
    assert result.exit_code == 2
    assert "--bucket" in result.stderr
    err = dk.fails("storageProviders", "create", "s3", "--name=x", "--bucket=b", "--accessKey=AK").stderr
    assert "--secretAccessKey" in err
    assert "--name" in dk.fails("storageProviders", "create", "local", "--name= ", "--path=/tmp/x").stderr


def test_delete(dk: Datakeep, tmp_path: Path) -> None:
    provider_id = _created(
        dk.ok("storageProviders", "create", "local", "--name=disk", f"--path={tmp_path}/a").stdout
    )
    dataset_id = dk.create_dataset("uses-it", f"--storageProviderId={provider_id}")
    err = dk.fails("storageProviders", "delete", f"--id={provider_id}").stderr
    assert "still holds 1 dataset" in err
    dk.ok("datasets", "delete", f"--id={dataset_id}")
    assert dk.ok("storageProviders", "delete", f"--id={provider_id}").stdout == (
        f"Deleted storage provider: {provider_id}\n"
    )
    err = dk.fails("storageProviders", "details", f"--id={provider_id}").stderr
    assert f"Storage provider not found: {provider_id}" in err


def test_malformed_and_unknown_ids(dk: Datakeep) -> None:
    for bad in ("sp", "ds123", "spÄaaaaaaaaaaaa", "spaaaaaaaaaaaaa:x", "spaaaaaaaaaaaaa\n"):
        assert "is not a storage provider ID" in dk.fails("storageProviders", "details", f"--id={bad}").stderr
    err = dk.fails("datasets", "create", "--name=x", "--storageProviderId=spaaaaaaaaaaaaa\n").stderr
    assert "is not a storage provider ID" in err
    assert "not found" in dk.fails("storageProviders", "delete", "--id=spaaaaaaaaaaaaa").stderr
    assert "not found" in dk.fails("storageProviders", "update", "s3", "--id=spaaaaaaaaaaaaa").stderr


def test_secret_from_stdin(dk: Datakeep) -> None:
    import os

    from datakeep.client import Client
    from datakeep.config import Settings

    def stored_secret(provider_id: str) -> str:
        client = Client(Settings.from_env({**os.environ, "DATAKEEP_DATABASE_URL": dk.catalog_url}))
        try:
            return str(client.ctx.revealed_provider(provider_id).config["secretAccessKey"])
        finally:
            client.close()

    out = dk.ok(
        "storageProviders",
        "create",
        "s3",
        "--name=b",
        "--bucket=b",
        "--accessKey=AK",
        "--secretAccessKey=-",
        input=f"{SECRET}\n",
    ).stdout
    provider_id = _created(out)
    assert stored_secret(provider_id) == SECRET
    dk.ok(
        "storageProviders", "update", "s3", f"--id={provider_id}", "--secretAccessKey", "-", input="rotated\n"
    )
    assert stored_secret(provider_id) == "rotated"


def test_config_column_counts_only_the_values_it_shows() -> None:
    """Gradient's Config cell: scalar values sorted by key, at most five, then '...'."""
    from datakeep.cli.output import format_config

    config = {"a": 1, "b": {"nested": True}, "c": "x", "d": 2.5, "e": False, "f": "six"}
    assert format_config(config, limit=5) == "a: 1\nc: x\nd: 2.5\ne: False\nf: six"
    assert format_config({**config, "g": "seven"}, limit=5).splitlines()[-2:] == ["f: six", "..."]
    assert format_config(config) == "a: 1\nc: x\nd: 2.5\ne: False\nf: six"
