"""The original ``gradient`` 2.99.3 CLI, unchanged, against ``datakeep server`` and a real S3 server.

Each command is the one a Gradient user typed; the outputs checked are Gradient's own strings.
"""

from __future__ import annotations

import filecmp
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from fixtures.s3 import MakeBucket, S3Server

from .conftest import Gradient

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BIG = 16 * 1000 * 1000 + 123  # over Gradient's 15 MB multipart threshold: two parts


def _id(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in {text!r}"
    return found.group(1)


def _make_provider(gradient: Gradient, s3: S3Server, bucket: str) -> str:
    out = gradient.run(
        "storageProviders", "create", "s3",
        "--name", "moto",
        "--bucket", bucket,
        "--accessKey", s3.access_key,
        "--secretAccessKey", s3.secret_key,
        "--endpoint", s3.endpoint_url,
        "--region", s3.region,
        "--signatureVersion", "v4",
    ).stdout  # fmt: skip
    return _id(r"Created new storage provider with id: (sp[0-9a-z]{13})", out)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _all_keys(s3_client: S3Client, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def test_storage_providers(gradient: Gradient, s3: S3Server, make_bucket: MakeBucket) -> None:
    sp = _make_provider(gradient, s3, make_bucket("sp-bucket"))

    listed = gradient.run("storageProviders", "list").stdout
    assert re.search(rf"\| moto +\| {sp} \| s3 +\|", listed), listed
    assert "secretAccessKey: ********" in listed
    assert s3.secret_key not in listed

    details = gradient.run("storageProviders", "details", "--id", sp).stdout
    assert "bucket: sp-bucket" in details
    assert "secretAccessKey: ********" in details
    assert s3.secret_key not in details

    gradient.run("storageProviders", "update", "s3", "--id", sp, "--name", "renamed")
    assert "renamed" in gradient.run("storageProviders", "details", "--id", sp).stdout

    assert f"Deleted storage provider: {sp}" in gradient.run("storageProviders", "delete", "--id", sp).stdout
    missing = gradient.run("storageProviders", "details", "--id", sp, check=False)
    assert "not found" in missing.stderr.lower()


def test_datasets_versions_tags_files(
    gradient_pg: Gradient, s3: S3Server, make_bucket: MakeBucket, s3_client: S3Client, tmp_path: Path
) -> None:
    """The whole story, on the production configuration (catalog on PostgreSQL, data on S3)."""
    gradient = gradient_pg
    bucket = make_bucket("data-bucket")
    sp = _make_provider(gradient, s3, bucket)

    # DATASETS
    out = gradient.run("datasets", "create", "--name", "mnist", "--storageProviderId", sp).stdout
    ds = _id(r"Created dataset: (ds[0-9a-z]{13})", out)
    listed = gradient.run("datasets", "list").stdout
    assert re.search(rf"\| mnist +\| {ds} \| moto \({sp}\) +\|", listed), listed
    gradient.run("datasets", "update", "--id", ds, "--description", "handwritten digits")
    details = gradient.run("datasets", "details", "--id", ds).stdout
    assert "handwritten digits" in details
    assert f"moto ({sp})" in details

    # A VERSION FROM A FOLDER: small, empty, nested and multipart-sized files
    data = tmp_path / "some-data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha\n")
    (data / "sub" / "b.csv").write_text("x,y\n1,2\n")
    (data / "empty.txt").write_bytes(b"")
    big = os.urandom(BIG)
    (data / "big.bin").write_bytes(big)
    out = gradient.run("datasets", "versions", "create", "--id", ds, "--source-path", str(data)).stdout
    v1 = _id(rf"Created dataset version: {ds}:([0-9a-z]{{7}})", out)
    assert f"Committed dataset version: {ds}:{v1}" in out

    versions = gradient.run("datasets", "versions", "list", "--id", ds).stdout
    assert f"{ds}:{v1}" in versions
    vdetails = gradient.run("datasets", "versions", "details", "--id", f"{ds}:{v1}").stdout
    assert re.search(r"\| Committed +\| true +\|", vdetails), vdetails

    # TAGS
    assert (
        f"Set dataset tag: {ds}:prod"
        in gradient.run("datasets", "tags", "set", "--id", f"{ds}:{v1}", "--name", "prod").stdout
    )
    tags = gradient.run("datasets", "tags", "list", "--id", ds).stdout
    assert re.search(rf"\| {ds}:{v1} \| prod +\|", tags), tags

    # FILES: list through the tag (resolved by /datasets/ref), then get everything back
    listed = gradient.run("datasets", "files", "list", "--id", f"{ds}:prod").stdout
    assert re.search(r"\| some-data/ +\| +\|", listed), listed
    recursive = gradient.run(
        "datasets", "files", "list", "--id", f"{ds}:prod", "--path", "/some-data", "--recursive", "true"
    ).stdout
    for name, size in (("a.txt", 6), ("sub/b.csv", 8), ("empty.txt", 0), ("big.bin", BIG)):
        assert re.search(rf"\| {re.escape(name)} +\| {size} +\|", recursive), (name, recursive)
    out_dir = tmp_path / "download"
    gradient.run("datasets", "files", "get", "--id", f"{ds}:latest", "--target-path", str(out_dir))
    assert _tree(out_dir / "some-data") == _tree(data)
    single = tmp_path / "single.bin"
    gradient.run(
        "datasets", "files", "get", "--id", f"{ds}:{v1}", "--source-path", "/some-data/big.bin",
        "--target-path", str(single),
    )  # fmt: skip
    assert filecmp.cmp(single, data / "big.bin", shallow=False)

    # A SECOND VERSION built file by file, with the same big file: stored once
    objects_before = len([k for k in _all_keys(s3_client, bucket) if not k.startswith("uploads/")])
    out = gradient.run("datasets", "versions", "create", "--id", ds, "--message", "second").stdout
    v2 = _id(rf"Created dataset version: {ds}:([0-9a-z]{{7}})", out)
    assert "Committed" not in out
    gradient.run(
        "datasets", "files", "put", "--id", f"{ds}:{v2}", "--source-path", str(data / "big.bin"),
        "--source-path", str(data / "a.txt"), "--target-path", "/copy",
    )  # fmt: skip
    uncommitted = gradient.run("datasets", "files", "list", "--id", f"{ds}:{v2}", "--path", "/copy").stdout
    assert "big.bin" in uncommitted
    assert "a.txt" in uncommitted
    gradient.run("datasets", "files", "delete", "--id", f"{ds}:{v2}", "--path", "/copy/a.txt")
    assert (
        "a.txt"
        not in gradient.run("datasets", "files", "list", "--id", f"{ds}:{v2}", "--path", "/copy").stdout
    )
    assert (
        f"Committed dataset version: {ds}:{v2}"
        in gradient.run("datasets", "versions", "commit", "--id", f"{ds}:{v2}").stdout
    )
    assert (
        "Dataset version already committed"
        in gradient.run("datasets", "versions", "commit", "--id", f"{ds}:{v2}").stdout
    )
    keys_after = _all_keys(s3_client, bucket)
    assert not [k for k in keys_after if k.startswith("uploads/")], "upload area not emptied"
    new_objects = len(keys_after) - objects_before
    # The big file was already stored by v1: only manifest nodes and the version record are new.
    big_objects = [k for k in keys_after if k.startswith("blobs/")]
    assert len(big_objects) == 1, big_objects
    assert new_objects <= 3, keys_after
    recursive = gradient.run("datasets", "files", "list", "--id", f"{ds}:{v2}", "--recursive", "true").stdout
    assert re.search(rf"\| copy/big.bin +\| {BIG} +\|", recursive), recursive
    assert "a.txt" not in recursive

    # A COMMITTED VERSION IS IMMUTABLE: no write URL is issued
    refused = gradient.run(
        "datasets", "files", "put", "--id", f"{ds}:{v2}", "--source-path", str(data / "a.txt"), check=False
    )
    assert "committed" in refused.stderr.lower()
    refused = gradient.run(
        "datasets", "files", "delete", "--id", f"{ds}:{v2}", "--path", "/copy/big.bin", check=False
    )
    assert "committed" in refused.stderr.lower()
    assert (
        "copy/big.bin"
        in gradient.run("datasets", "files", "list", "--id", f"{ds}:{v2}", "--recursive", "true").stdout
    )

    # DELETES
    assert (
        f"Deleted dataset tag: {ds}:prod"
        in gradient.run("datasets", "tags", "delete", "--id", f"{ds}:prod").stdout
    )
    assert "No data found" in gradient.run("datasets", "tags", "list", "--id", ds).stdout
    assert (
        f"Deleted dataset version: {ds}:{v2}"
        in gradient.run("datasets", "versions", "delete", "--id", f"{ds}:{v2}").stdout
    )
    assert f"{ds}:{v2}" not in gradient.run("datasets", "versions", "list", "--id", ds).stdout
    assert f"Deleted dataset: {ds}" in gradient.run("datasets", "delete", "--id", ds).stdout
    assert "No data found" in gradient.run("datasets", "list").stdout


def test_gradient_sdk_classes(
    gradient: Gradient, s3: S3Server, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    """``gradient.DatasetsClient`` and friends, as a Python program using Gradient's SDK would."""
    import subprocess

    sp = _make_provider(gradient, s3, make_bucket("sdk-bucket"))
    script = tmp_path / "sdk.py"
    script.write_text(
        f"""
import os
from gradient import DatasetsClient, DatasetVersionsClient, DatasetTagsClient, StorageProvidersClient
key = os.environ["PAPERSPACE_API_KEY"]
providers = StorageProvidersClient(api_key=key)
assert "{sp}" in [p.id for p in providers.list()], providers.list()
datasets = DatasetsClient(api_key=key)
ds = datasets.create(name="sdk", storage_provider_id="{sp}", description="via sdk")
assert datasets.get(ds).description == "via sdk"
versions = DatasetVersionsClient(api_key=key)
ver = versions.create(dataset_id=ds, message="first")
versions.update(ds + ":" + ver, is_committed=True)
got = versions.get(ds + ":" + ver)
assert got.is_committed and got.message == "first", got
tags = DatasetTagsClient(api_key=key)
tags.set(ds + ":" + ver, name="stable")
assert [(t.name, t.version.version) for t in tags.list(dataset_id=ds)] == [("stable", ver)]
ref = datasets.get_ref(ds + ":stable")
assert ref.version.version == ver, ref
print("SDK-OK", ds, ver)
"""
    )
    python = gradient.binary.parent / "python"
    result = subprocess.run(
        [str(python), str(script)], env=gradient.env(), capture_output=True, text=True, timeout=120
    )
    assert "SDK-OK" in result.stdout, result.stdout + result.stderr
