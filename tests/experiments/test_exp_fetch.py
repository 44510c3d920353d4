"""Fetching objects, folders and buckets from a real S3 server over HTTP (moto)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from datakeep.errors import IntegrityError, InvalidInput, InvalidPath, NotFound, QuotaExceeded, StorageError
from datakeep.experiments.budget import ByteBudget
from datakeep.experiments.etag import multipart_etag, part_size_candidates, verify_file
from datakeep.experiments.fetch import S3Access, fetch, is_anonymous, make_client, resolve
from datakeep.experiments.options import DatasetSpec, group_dataset_options

from .conftest import ExpS3, put_multipart, zip_bytes

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from fixtures.s3 import MakeBucket

MIB = 2**20


def spec_for(uri: str, endpoint: str, **options: str) -> DatasetSpec:
    values = {"datasetUri": [uri], "datasetAwsEndpoint": [endpoint]}
    values.update({k: [v] for k, v in options.items()})
    (spec,) = group_dataset_options(values)
    return spec


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_each_version_id_fetches_its_own_bytes(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("versioned", versioned=True)
    versions = []
    for body in (b"first", b"second", b"third"):
        versions.append(exp_s3.admin.put_object(Bucket="versioned", Key="data.csv", Body=body)["VersionId"])
    for version, body in zip(versions, (b"first", b"second", b"third"), strict=True):
        spec = spec_for("s3://versioned/data.csv", exp_s3.endpoint, datasetVersionId=version)
        remote = resolve(fetch_client, spec)
        result = fetch(remote, tmp_path / version, client=fetch_client)
        assert (tmp_path / version / "data.csv").read_bytes() == body
        assert result.version_id == version
        assert result.etag == hashlib.md5(body).hexdigest()


def test_version_id_on_unversioned_bucket_is_a_clear_error(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket
) -> None:
    make_bucket("plain")
    exp_s3.admin.put_object(Bucket="plain", Key="data.csv", Body=b"x")
    spec = spec_for(
        "s3://plain/data.csv", exp_s3.endpoint, datasetVersionId="bjh023v9dloWEq23VC912zxprrl8.23C"
    )
    with pytest.raises(InvalidInput, match="bucket 'plain' has no versioning"):
        resolve(fetch_client, spec)


def test_wrong_etag_fails_before_download(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket
) -> None:
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="my-dataset.zip", Body=zip_bytes({"a": b"1"}))
    spec = spec_for(
        "s3://bucket/my-dataset.zip",
        exp_s3.endpoint,
        datasetName="dataset A",
        datasetEtag="3823e4ab23cc48ad83e9e3fa99ecc12a",
    )
    with pytest.raises(IntegrityError) as info:
        resolve(fetch_client, spec)
    message = str(info.value)
    assert "'dataset A'" in message
    assert "expected 3823e4ab23cc48ad83e9e3fa99ecc12a" in message
    found = exp_s3.admin.head_object(Bucket="bucket", Key="my-dataset.zip")["ETag"].strip('"')
    assert f"found {found}" in message


def test_right_etag_archive_is_expanded(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("bucket")
    body = zip_bytes({"train/x.txt": b"x" * 100, "labels.csv": b"a,b\n"})
    etag = exp_s3.admin.put_object(Bucket="bucket", Key="mnist.zip", Body=body)["ETag"].strip('"')
    spec = spec_for("s3://bucket/mnist.zip", exp_s3.endpoint, datasetEtag=f'"{etag}"')
    result = fetch(resolve(fetch_client, spec), tmp_path / "mnist", client=fetch_client)
    assert files_under(tmp_path / "mnist") == {"labels.csv": b"a,b\n", "train/x.txt": b"x" * 100}
    assert result.etag == etag
    assert result.size == 104
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_multipart_etag_is_verified(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("big")
    parts = [b"a" * (5 * MIB), b"b" * (5 * MIB), b"c" * 1000]
    etag = put_multipart(exp_s3.admin, "big", "blob.bin", parts)
    assert etag.endswith("-3")
    spec = spec_for("s3://big/blob.bin", exp_s3.endpoint, datasetEtag=etag)
    result = fetch(resolve(fetch_client, spec), tmp_path / "blob", client=fetch_client)
    assert (tmp_path / "blob" / "blob.bin").read_bytes() == b"".join(parts)
    assert any("multipart ETag matches" in v for v in result.verification)
    assert not result.warnings


def test_multipart_etag_checks_offline(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * (6 * MIB // 256) + b"tail"
    path.write_bytes(data)
    part = 5 * MIB
    digests = [hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part)]
    expected = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
    assert multipart_etag(path, part) == expected
    # Without reported part sizes, the implied range plus common sizes finds 5 MiB.
    check = verify_file(path, expected, label="blob")
    assert check.verified
    assert check.part_size == part
    # A part size nobody uses: not verified, and the reason says why.
    odd = multipart_etag(path, 3 * MIB + 7)
    check = verify_file(path, odd, label="blob")
    assert not check.verified
    assert "does not report part sizes" in check.detail
    # The exact part sizes make a mismatch certain.
    with pytest.raises(IntegrityError, match="do not match"):
        verify_file(path, odd, label="blob", part_sizes=[part, len(data) - part])
    with pytest.raises(IntegrityError, match="do not match"):
        verify_file(path, hashlib.md5(b"other").hexdigest(), label="blob")
    assert part_size_candidates(10, 20) == []


def test_damaged_download_is_caught(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    """A half-written download left behind is resumed; corrupt bytes in it fail the ETag check."""
    make_bucket("bucket")
    body = b"0123456789" * 1000
    exp_s3.admin.put_object(Bucket="bucket", Key="file.bin", Body=body)
    remote = resolve(fetch_client, spec_for("s3://bucket/file.bin", exp_s3.endpoint))
    staging = tmp_path / ".out.partial" / "data"
    staging.mkdir(parents=True)
    # A previous run finished the only chunk, then the disk flipped some bytes.
    (staging / "file.bin.part").write_bytes(b"X" * len(body))
    identity = {
        "key": "file.bin",
        "etag": remote.objects[0].etag,
        "version": None,
        "size": len(body),
        "chunk": 8 * MIB,
    }
    (staging / "file.bin.part.json").write_text(json.dumps({"identity": identity, "done": [0]}))
    with pytest.raises(IntegrityError, match="downloaded bytes do not match"):
        fetch(remote, tmp_path / "out", client=fetch_client)
    assert not (tmp_path / "out").exists()
    # The damaged file was dropped, so the next attempt downloads it again and succeeds.
    fetch(remote, tmp_path / "out", client=fetch_client)
    assert (tmp_path / "out" / "file.bin").read_bytes() == body


def test_folder_and_whole_bucket(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("bucket-name")
    objects = {
        "dataset-dir/a.txt": b"a",
        "dataset-dir/sub/b.txt": b"bb",
        "dataset-dir/": b"",
        "other/c.txt": b"ccc",
        "dataset-dir-not/d.txt": b"d",
    }
    for key, body in objects.items():
        exp_s3.admin.put_object(Bucket="bucket-name", Key=key, Body=body)
    # No trailing slash: the bucket says it is a folder; a pinned etag is dropped with a warning.
    spec = spec_for("s3://bucket-name/dataset-dir", exp_s3.endpoint, datasetEtag="abc")
    warnings: list[str] = []
    remote = resolve(fetch_client, spec)
    assert remote.kind == "folder"
    result = fetch(remote, tmp_path / "dir", client=fetch_client, on_warning=warnings.append)
    assert files_under(tmp_path / "dir") == {"a.txt": b"a", "sub/b.txt": b"bb"}
    assert any("is a folder" in w and "'abc'" in w for w in warnings)
    assert result.etag is None

    # A VersionId on such a folder is ignored too, not reported as a versioning error.
    versioned = resolve(
        fetch_client, spec_for("s3://bucket-name/dataset-dir", exp_s3.endpoint, datasetVersionId="v1")
    )
    assert versioned.kind == "folder"
    assert any("versionId 'v1' is ignored" in w for w in versioned.spec.warnings)

    whole = resolve(fetch_client, spec_for("s3://bucket-name", exp_s3.endpoint))
    assert whole.kind == "bucket"
    fetch(whole, tmp_path / "bucket", client=fetch_client)
    assert files_under(tmp_path / "bucket") == {k: v for k, v in objects.items() if not k.endswith("/")}


def test_missing_object_and_unsafe_keys(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("bucket")
    with pytest.raises(NotFound, match="no object or folder at s3://bucket/nothing"):
        resolve(fetch_client, spec_for("s3://bucket/nothing", exp_s3.endpoint))
    for uri in ("s3://no-such-bucket/x.csv", "s3://no-such-bucket/dir/", "s3://no-such-bucket"):
        with pytest.raises(NotFound, match="bucket 'no-such-bucket' does not exist"):
            resolve(fetch_client, spec_for(uri, exp_s3.endpoint))
    exp_s3.admin.put_object(Bucket="bucket", Key="dir/../../escape.txt", Body=b"x")
    remote = resolve(fetch_client, spec_for("s3://bucket/dir/", exp_s3.endpoint))
    with pytest.raises(InvalidPath, match="cannot be stored"):
        fetch(remote, tmp_path / "dir", client=fetch_client)
    assert not (tmp_path / "escape.txt").exists()


def test_public_bucket_read_anonymously(
    exp_s3: ExpS3, make_bucket: MakeBucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_bucket("public-data", public=True)
    make_bucket("private-data")
    # moto checks HEAD against an "s3:HeadObject" action no policy grants, so the objects
    # also carry the public-read ACL (real S3 needs only the policy's s3:GetObject).
    exp_s3.admin.put_object(Bucket="public-data", Key="open.csv", Body=b"open", ACL="public-read")
    exp_s3.admin.put_object(Bucket="private-data", Key="closed.csv", Body=b"closed", ACL="private")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    client = make_client(S3Access(endpoint=exp_s3.endpoint))
    assert is_anonymous(client)
    sent: list[bool] = []
    client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append("Authorization" in request.headers)
    )
    fetch(
        resolve(client, spec_for("s3://public-data/open.csv", exp_s3.endpoint)), tmp_path / "o", client=client
    )
    assert (tmp_path / "o" / "open.csv").read_bytes() == b"open"
    assert sent
    assert not any(sent)
    with pytest.raises(PermissionError, match="access denied"):
        resolve(client, spec_for("s3://private-data/closed.csv", exp_s3.endpoint))


def test_environment_credentials_are_used_when_no_keys_given(exp_s3: ExpS3) -> None:
    # The shared s3 fixture exports AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: the usual chain.
    assert not is_anonymous(make_client(S3Access(endpoint=exp_s3.endpoint)))


def test_dataset_too_big_for_budget_fails_before_download(
    exp_s3: ExpS3, fetch_client: S3Client, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="d/a.bin", Body=b"a" * 3000)
    exp_s3.admin.put_object(Bucket="bucket", Key="d/b.bin", Body=b"b" * 3000)
    remote = resolve(fetch_client, spec_for("s3://bucket/d/", exp_s3.endpoint))
    budget = ByteBudget(4000, label="the dynamic volume")
    with pytest.raises(QuotaExceeded, match="does not fit in the dynamic volume"):
        fetch(remote, tmp_path / "d", client=fetch_client, budget=budget)
    assert budget.used == 0
    assert not (tmp_path / "d").exists()


def test_interrupted_download_resumes_with_the_missing_ranges_only(
    exp_s3: ExpS3,
    fetch_client: S3Client,
    make_bucket: MakeBucket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datakeep.experiments.fetch as fetch_module

    monkeypatch.setattr(fetch_module, "CHUNK_SIZE", 1000)
    make_bucket("bucket")
    body = bytes(range(256)) * 40  # 10240 bytes: 11 ranges
    exp_s3.admin.put_object(Bucket="bucket", Key="data.bin", Body=body)
    remote = resolve(fetch_client, spec_for("s3://bucket/data.bin", exp_s3.endpoint))
    ranges: list[str] = []

    def cut_after_four(request: Any, **_: Any) -> None:
        if request.method == "GET":
            ranges.append(str(request.headers["Range"]))
            if len(ranges) > 4:
                raise ConnectionResetError("network cut")

    fetch_client.meta.events.register("before-send.s3", cut_after_four)
    with pytest.raises((StorageError, ConnectionResetError)):
        fetch(remote, tmp_path / "out", client=fetch_client, workers=1)
    assert not (tmp_path / "out").exists()
    fetch_client.meta.events.unregister("before-send.s3", cut_after_four)

    again: list[str] = []
    fetch_client.meta.events.register(
        "before-send.s3",
        lambda request, **_: again.append(request.method) if request.method == "GET" else None,
    )
    fetch(remote, tmp_path / "out", client=fetch_client, workers=1)
    assert (tmp_path / "out" / "data.bin").read_bytes() == body
    assert again.count("GET") == 11 - 4


def test_object_overwritten_during_download_is_an_integrity_error(
    exp_s3: ExpS3,
    fetch_client: S3Client,
    make_bucket: MakeBucket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datakeep.experiments.fetch as fetch_module

    monkeypatch.setattr(fetch_module, "CHUNK_SIZE", 1000)
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="data.bin", Body=b"a" * 5000)
    remote = resolve(fetch_client, spec_for("s3://bucket/data.bin", exp_s3.endpoint))
    gets: list[int] = []

    def overwrite_once(request: Any, **_: Any) -> None:
        if request.method == "GET":
            gets.append(1)
            if len(gets) == 2:
                exp_s3.admin.put_object(Bucket="bucket", Key="data.bin", Body=b"b" * 5000)

    fetch_client.meta.events.register("before-send.s3", overwrite_once)
    with pytest.raises(IntegrityError, match="changed during the download"):
        fetch(remote, tmp_path / "out", client=fetch_client, workers=1)
    assert not (tmp_path / "out").exists()


def test_bad_profile_or_endpoint_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput, match="Cannot set up S3 access"):
        make_client(S3Access(endpoint="not a url"))
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(InvalidInput, match="no-such-profile"):
        make_client(S3Access())


def test_unreachable_endpoint_says_to_check_it() -> None:
    import socket

    import boto3
    from botocore.config import Config

    with socket.socket() as sock:  # a port on which nothing listens once the socket is closed
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # Retries off: the same error, without botocore's back-off between attempts.
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(StorageError) as info:
        resolve(client, spec_for("s3://bucket/x.csv", endpoint))
    assert "Dataset 'x.csv'" in info.value.one_line()
    assert "Check --datasetAwsEndpoint" in info.value.one_line()
