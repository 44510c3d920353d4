"""What only the S3 provider does: versioned buckets, prefixes, anonymous access, presigned URLs."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from datakeep.config import Settings
from datakeep.domain.models import StorageProvider
from datakeep.errors import InvalidInput
from datakeep.providers.local import LocalProvider
from datakeep.providers.registry import open_provider
from datakeep.providers.s3 import S3Provider


def _provider(s3: Any, bucket: str, **kwargs: Any) -> S3Provider:
    return S3Provider(
        bucket,
        endpoint=s3.endpoint_url,
        region=s3.region,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        **kwargs,
    )


def test_versioned_bucket_reports_version_ids(s3: Any, make_bucket: Any, s3_client: Any) -> None:
    bucket = make_bucket("versioned", versioned=True)
    provider = _provider(s3, bucket)
    provider.write("k", b"one")
    first = provider.stat("k").version_id
    provider.write("k", b"two")
    second = provider.stat("k").version_id
    assert first
    assert second
    assert first != second
    assert provider.read("k") == b"two"
    versions = s3_client.list_object_versions(Bucket=bucket, Prefix="k")["Versions"]
    assert len(versions) == 2


def test_prefix_confines_every_operation(s3: Any, make_bucket: Any, s3_client: Any) -> None:
    bucket = make_bucket("prefixed")
    s3_client.put_object(Bucket=bucket, Key="outside", Body=b"not ours")
    provider = _provider(s3, bucket, prefix="/teams/a/")
    provider.write("inside", b"ours")
    assert s3_client.get_object(Bucket=bucket, Key="teams/a/inside")["Body"].read() == b"ours"
    assert [i.key for i in provider.list("")] == ["inside"]
    assert not provider.exists("outside")


def test_anonymous_reads_of_a_public_bucket(s3: Any, make_bucket: Any, s3_client: Any) -> None:
    bucket = make_bucket("public-data", public=True)
    s3_client.put_object(Bucket=bucket, Key="data/train.csv", Body=b"a,b\n1,2\n")
    anonymous = S3Provider(bucket, endpoint=s3.endpoint_url, region=s3.region)
    assert anonymous.read("data/train.csv") == b"a,b\n1,2\n"
    assert [i.key for i in anonymous.list("data/")] == ["data/train.csv"]
    assert anonymous.stat("data/train.csv").size == 8


def test_presigned_get_works_without_credentials(s3: Any, make_bucket: Any) -> None:
    provider = _provider(s3, make_bucket("signed"))
    provider.write("file.txt", b"hello")
    url = provider.presign("GET", "file.txt", expires=60)
    assert "Signature" in url or "X-Amz-Signature" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"hello"


def test_local_provider_cannot_presign(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError):
        LocalProvider(tmp_path).presign("GET", "x")


def test_missing_bucket_is_file_not_found(s3: Any) -> None:
    with pytest.raises(FileNotFoundError, match="NoSuchBucket"):
        _provider(s3, "does-not-exist").read("k")


def test_registry_opens_each_type(s3: Any, make_bucket: Any, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    bucket = make_bucket("registry")
    config = {
        "bucket": bucket,
        "accessKey": s3.access_key,
        "secretAccessKey": s3.secret_key,
        "endpoint": s3.endpoint_url,
        "region": s3.region,
        "signatureVersion": "v4",
        "prefix": "p",
    }
    provider = open_provider(StorageProvider(id="sp1", name="s", type="s3", config=config), settings)
    provider.write("x", b"1")
    assert provider.read("x") == b"1"
    local = open_provider(StorageProvider(id="sp2", name="l", type="local", config={"path": "rel"}), settings)
    assert isinstance(local, LocalProvider)
    assert local.root == settings.home / "rel"
    with pytest.raises(InvalidInput, match="masked"):
        open_provider(
            StorageProvider(id="sp3", name="m", type="s3", config={**config, "secretAccessKey": "********"}),
            settings,
        )
    with pytest.raises(InvalidInput, match="Unknown storage provider type"):
        open_provider(StorageProvider(id="sp4", name="g", type="ftp", config={}), settings)
