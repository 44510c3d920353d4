"""Shared-storage copies and dynamic volumes, against the real S3 server and real mounts."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from datakeep.errors import AlreadyExists, InUse, QuotaExceeded
from datakeep.experiments.fetch import resolve
from datakeep.experiments.options import DatasetSpec, group_dataset_options
from datakeep.experiments.volumes import SharedStore, dynamic_dataset, parse_age, shared_dir_name

from .conftest import ExpS3, zip_bytes

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from fixtures.s3 import MakeBucket


def spec_for(uri: str, endpoint: str, **options: str) -> DatasetSpec:
    values = {"datasetUri": [uri], "datasetAwsEndpoint": [endpoint]}
    values.update({k: [v] for k, v in options.items()})
    (spec,) = group_dataset_options(values)
    return spec


def count_gets(client: S3Client) -> list[str]:
    seen: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **_: seen.append(request.method))
    return seen


@pytest.mark.parametrize(
    ("etag", "version", "expected"),
    [
        (None, None, "dataset A"),
        ("3823e4ab23cc48ad83e9e3fa99ecc12a", None, "dataset A-3823e4ab23cc48ad83e9e3fa99ecc12a"),
        (None, "bjh023v9dloWEq23VC912zxprrl8.23C", "dataset A-bjh023v9dloWEq23VC912zxprrl8.23C"),
        (
            '"3823e4ab23cc48ad83e9e3fa99ecc12a"',
            "bjh023v9dloWEq23VC912zxprrl8.23C",
            "dataset A-3823e4ab23cc48ad83e9e3fa99ecc12a-bjh023v9dloWEq23VC912zxprrl8.23C",
        ),
    ],
)
def test_shared_directory_names(etag: str | None, version: str | None, expected: str) -> None:
    assert shared_dir_name("dataset A", etag, version) == expected


def test_shared_copy_is_named_downloaded_once_and_reused(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("versioned", versioned=True)
    reply = exp_s3.admin.put_object(Bucket="versioned", Key="mnist.zip", Body=zip_bytes({"x.txt": b"x"}))
    etag, version = reply["ETag"].strip('"'), reply["VersionId"]
    store = SharedStore(tmp_path / "shared")
    spec = spec_for("s3://versioned/mnist.zip", exp_s3.endpoint, datasetEtag=etag, datasetVersionId=version)
    with store.use(spec, client=fetch_client) as placed:
        assert placed.path == tmp_path / "shared" / "data" / f"mnist-{etag}-{version}"
        assert (placed.path / "x.txt").read_bytes() == b"x"
        assert not placed.reused
    requests = count_gets(fetch_client)
    with store.use(spec, client=fetch_client) as again:
        assert again.reused
        assert again.path == placed.path
    assert requests == []  # pinned ETag and version: content-addressed, no need to ask the store
    record = json.loads((tmp_path / "shared" / "data" / f".mnist-{etag}-{version}.datakeep.json").read_text())
    assert record["uri"] == "s3://versioned/mnist.zip"
    assert record["seen_etag"] == etag


def test_unpinned_copy_warns_when_stale_and_refreshes_on_request(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="table.csv", Body=b"old")
    store = SharedStore(tmp_path / "shared")
    spec = spec_for("s3://bucket/table.csv", exp_s3.endpoint)
    warnings: list[str] = []
    with store.use(spec, client=fetch_client, on_warning=warnings.append) as placed:
        assert placed.path.name == "table.csv"
        assert (placed.path / "table.csv").read_bytes() == b"old"
    assert any("without --datasetEtag" in w for w in warnings)

    exp_s3.admin.put_object(Bucket="bucket", Key="table.csv", Body=b"new")
    warnings.clear()
    with store.use(spec, client=fetch_client, on_warning=warnings.append) as placed:
        assert placed.reused
        assert (placed.path / "table.csv").read_bytes() == b"old"
    assert any(
        "changed since its shared copy was downloaded" in w and "--datasetRefresh" in w for w in warnings
    )

    with store.use(spec, client=fetch_client, refresh=True) as placed:
        assert not placed.reused
        assert (placed.path / "table.csv").read_bytes() == b"new"
    assert [p.name for p in (tmp_path / "shared" / "data").iterdir() if not p.name.startswith(".")] == [
        "table.csv"
    ]


def test_same_name_from_another_source_is_not_the_shared_copy(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("one")
    make_bucket("two")
    exp_s3.admin.put_object(Bucket="one", Key="x.csv", Body=b"from one")
    exp_s3.admin.put_object(Bucket="two", Key="x.csv", Body=b"from two")
    store = SharedStore(tmp_path / "shared")
    with store.use(spec_for("s3://one/x.csv", exp_s3.endpoint), client=fetch_client):
        pass
    other = spec_for("s3://two/x.csv", exp_s3.endpoint)
    with pytest.raises(AlreadyExists) as info, store.use(other, client=fetch_client):
        pass
    assert "shared copy 'x.csv' holds s3://one/x.csv, not s3://two/x.csv" in info.value.one_line()
    assert "another --datasetName" in info.value.one_line()
    with store.use(other, client=fetch_client, refresh=True) as placed:
        assert (placed.path / "x.csv").read_bytes() == b"from two"
    with store.use(other, client=fetch_client) as placed:
        assert placed.reused


def test_refresh_refused_while_another_run_uses_the_copy(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="t.csv", Body=b"old")
    store = SharedStore(tmp_path / "shared")
    spec = spec_for("s3://bucket/t.csv", exp_s3.endpoint)
    with store.use(spec, client=fetch_client):
        pass
    exp_s3.admin.put_object(Bucket="bucket", Key="t.csv", Body=b"new")
    # Another process holds the copy: an open file description of its own with a shared lock.
    other = os.open(tmp_path / "shared" / "data" / ".t.csv.lock", os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_SH)
    try:
        with (
            pytest.raises(InUse, match="a running experiment uses it"),
            store.use(spec, client=fetch_client, refresh=True),
        ):
            pass
    finally:
        os.close(other)
    assert (tmp_path / "shared" / "data" / "t.csv" / "t.csv").read_bytes() == b"old"


def test_list_and_clean_never_remove_one_in_use(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("bucket")
    for key in ("a.csv", "b.csv", "c.csv"):
        exp_s3.admin.put_object(Bucket="bucket", Key=key, Body=key.encode())
    store = SharedStore(tmp_path / "shared")
    for key in ("a.csv", "b.csv", "c.csv"):
        with store.use(spec_for(f"s3://bucket/{key}", exp_s3.endpoint), client=fetch_client):
            pass
    entries = {e.name: e for e in store.entries()}
    assert sorted(entries) == ["a.csv", "b.csv", "c.csv"]
    assert entries["a.csv"].uri == "s3://bucket/a.csv"
    assert entries["a.csv"].size == 5
    # Make c look old.
    record_path = tmp_path / "shared" / "data" / ".c.csv.datakeep.json"
    record = json.loads(record_path.read_text())
    record["last_used"] = "2020-01-01T00:00:00+00:00"
    record_path.write_text(json.dumps(record))

    plan = store.plan_clean(older_than=parse_age("30d"))
    assert [e.name for e in plan.remove] == ["c.csv"]
    assert (tmp_path / "shared" / "data" / "c.csv").exists()  # a plan (dry run) removes nothing

    with store.use(spec_for("s3://bucket/a.csv", exp_s3.endpoint), client=fetch_client):
        plan = store.plan_clean()
        assert [e.name for e in plan.in_use] == ["a.csv"]
        done = store.clean(plan)
    assert sorted(e.name for e in done.remove) == ["b.csv", "c.csv"]
    assert [e.name for e in store.entries()] == ["a.csv"]
    assert not (tmp_path / "shared" / "data" / ".b.csv.datakeep.json").exists()
    assert parse_age("12h") == timedelta(hours=12)

    # A dataset may be named like a hidden file; its copy is still listed and cleaned.
    with store.use(spec_for("s3://bucket/b.csv", exp_s3.endpoint, datasetName=".b"), client=fetch_client):
        pass
    assert [e.name for e in store.entries()] == [".b", "a.csv"]
    store.clean(store.plan_clean(name=".b"))
    assert [e.name for e in store.entries()] == ["a.csv"]

    # A run that starts between the plan (what `list` showed) and the removal keeps its copy.
    plan = store.plan_clean()
    assert [e.name for e in plan.remove] == ["a.csv"]
    with store.use(spec_for("s3://bucket/a.csv", exp_s3.endpoint), client=fetch_client):
        done = store.clean(plan)
    assert done.remove == []
    assert [e.name for e in done.in_use] == ["a.csv"]
    assert (tmp_path / "shared" / "data" / "a.csv" / "a.csv").read_bytes() == b"a.csv"


def test_dynamic_volume_too_small(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="big.bin", Body=b"x" * 5000)
    exp_s3.admin.put_object(Bucket="bucket", Key="bomb.zip", Body=zip_bytes({"zeros": b"\0" * 200_000}))
    seen = count_gets(fetch_client)
    spec = spec_for(
        "s3://bucket/big.bin", exp_s3.endpoint, datasetVolumeKind="dynamic", datasetVolumeSize="4K"
    )
    remote = resolve(fetch_client, spec)
    with (
        pytest.raises(QuotaExceeded, match=r"4K|3.9 KiB"),
        dynamic_dataset(spec, remote, tmp_path / "vol", client=fetch_client),
    ):
        pass
    assert "GET" not in seen  # refused before any download
    assert not (tmp_path / "vol").exists()

    spec = spec_for(
        "s3://bucket/bomb.zip", exp_s3.endpoint, datasetVolumeKind="dynamic", datasetVolumeSize="100K"
    )
    with (
        pytest.raises(QuotaExceeded, match="bomb.zip"),
        dynamic_dataset(spec, resolve(fetch_client, spec), tmp_path / "vol2", client=fetch_client),
    ):
        pass
    assert not (tmp_path / "vol2").exists()


def test_empty_bucket_on_a_dynamic_volume(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("empty")
    spec = spec_for("s3://empty", exp_s3.endpoint, datasetVolumeKind="dynamic", datasetVolumeSize="1Mi")
    with dynamic_dataset(spec, resolve(fetch_client, spec), tmp_path / "vol", client=fetch_client) as placed:
        assert placed.size == 0
        assert list(placed.path.iterdir()) == []
    assert not (tmp_path / "vol").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="a tmpfs mount needs root")
def test_dynamic_volume_is_a_size_limited_tmpfs_removed_after(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="small.bin", Body=b"y" * 1000)
    spec = spec_for(
        "s3://bucket/small.bin", exp_s3.endpoint, datasetVolumeKind="dynamic", datasetVolumeSize="1Mi"
    )
    with dynamic_dataset(spec, resolve(fetch_client, spec), tmp_path / "vol", client=fetch_client) as placed:
        assert (placed.path / "small.bin").read_bytes() == b"y" * 1000
        mounts = Path("/proc/self/mounts").read_text()
        assert f" {tmp_path / 'vol'} tmpfs " in mounts
        # The kernel, not only our count, refuses data past the limit plus its headroom.
        with (tmp_path / "vol" / "fill").open("wb") as fh, pytest.raises(OSError, match="No space left"):
            fh.write(b"\0" * 64 * 2**20)
    assert f" {tmp_path / 'vol'} " not in Path("/proc/self/mounts").read_text()
    assert not (tmp_path / "vol").exists()
