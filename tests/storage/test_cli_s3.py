"""The storage engine through the real CLI on an S3 provider (moto over HTTP): create a version,
create another that shares most content, get a subset, diff, then fsck."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from datakeep.cli.main import main

from .conftest import read_tree, write_tree


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_versions_on_s3_through_the_cli(
    s3: Any, make_bucket: Any, s3_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = make_bucket("cli-data")
    out = run(
        capsys,
        "storageProviders", "create", "s3", "--name", "minio", "--bucket", bucket,
        "--accessKey", s3.access_key, "--secretAccessKey", s3.secret_key,
        "--endpoint", s3.endpoint_url, "--region", s3.region, "--prefix", "team-a",
    )  # fmt: skip
    provider_id = re.search(r"(sp[a-z0-9]{13})", out).group(1)  # type: ignore[union-attr]
    out = run(capsys, "datasets", "create", "--name", "images", "--storageProviderId", provider_id)
    dataset_id = re.search(r"(ds[a-z0-9]{13})", out).group(1)  # type: ignore[union-attr]
    src = write_tree(tmp_path / "data", {f"train/{i:03d}.bin": os.urandom(2000) for i in range(50)})
    write_tree(src, {"labels.csv": b"a,b\n"})
    out = run(capsys, "datasets", "versions", "create", f"--id={dataset_id}", f"--source-path={src}/")
    first = re.search(r"Committed dataset version: (\S+)", out).group(1)  # type: ignore[union-attr]
    keys_after_first = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert all(k.startswith("team-a/") for k in keys_after_first)
    assert len(keys_after_first) <= 4  # one pack, one tree pack, one version record: not 51 objects

    (src / "train/007.bin").write_bytes(b"changed")
    out = run(capsys, "datasets", "versions", "create", f"--id={dataset_id}", f"--source-path={src}/")
    second = re.search(r"Committed dataset version: (\S+)", out).group(1)  # type: ignore[union-attr]
    new_keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]} - keys_after_first
    new_packs = [k for k in new_keys if k.startswith("team-a/packs/")]
    assert len(new_packs) == 1
    assert s3_client.head_object(Bucket=bucket, Key=new_packs[0])["ContentLength"] < 1000  # 7 bytes + index

    run(capsys, "datasets", "files", "get", f"--id={second}", "--source-path=train/007.bin",
        f"--target-path={tmp_path / 'out'}")  # fmt: skip
    assert read_tree(tmp_path / "out") == {"train/007.bin": b"changed"}

    out = run(capsys, "datasets", "versions", "diff", f"--id={first}", f"--to={second}", "--json")
    assert "train/007.bin" in out
    assert "modified" in out

    out = run(capsys, "admin", "fsck", "--storageProviderId", provider_id, "--json")
    report = json.loads(out)
    assert report["ok"] is True
    assert report["versions"] == 2
