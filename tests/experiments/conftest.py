"""Experiment-dataset fixtures on top of the shared real S3 server (``tests/fixtures/s3.py``).

The shared ``s3`` fixture starts moto's ``ThreadedMotoServer`` on 127.0.0.1 once per session
and resets it for each test; everything here talks to it over HTTP through boto3.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from datakeep.experiments.fetch import S3Access, make_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from fixtures.s3 import S3Server


@dataclass(frozen=True)
class ExpS3:
    """The test server, a client for setting buckets up, and the access our code should use."""

    endpoint: str
    admin: S3Client
    access: S3Access


@pytest.fixture
def exp_s3(s3: S3Server, s3_client: S3Client) -> ExpS3:
    return ExpS3(
        endpoint=s3.endpoint_url,
        admin=s3_client,
        access=S3Access(
            endpoint=s3.endpoint_url, access_key_id=s3.access_key, secret_access_key=s3.secret_key
        ),
    )


@pytest.fixture
def fetch_client(exp_s3: ExpS3) -> S3Client:
    return make_client(exp_s3.access, workers=4)


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def put_multipart(admin: S3Client, bucket: str, key: str, parts: list[bytes]) -> str:
    """Upload ``parts`` as one multipart object; returns its (``md5-N``) ETag, unquoted."""
    upload = admin.create_multipart_upload(Bucket=bucket, Key=key)
    done: list[CompletedPartTypeDef] = []
    for number, data in enumerate(parts, start=1):
        reply = admin.upload_part(
            Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=number, Body=data
        )
        done.append({"ETag": reply["ETag"], "PartNumber": number})
    admin.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": done}
    )
    return admin.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')


@dataclass(frozen=True)
class CliRun:
    exit_code: int
    stdout: str
    stderr: str


class Cli:
    """``datakeep`` through its real entry point, in this process, on the test's catalog."""

    def __init__(self, catalog_url: str) -> None:
        self.catalog_url = catalog_url

    def __call__(self, *args: str) -> CliRun:
        from click.testing import CliRunner

        from datakeep.cli.common import reset_client
        from datakeep.cli.main import main

        reset_client()
        try:
            with CliRunner().isolation(env={"DATAKEEP_DATABASE_URL": self.catalog_url}) as (out, err, _):
                code = main(list(args))
                return CliRun(code, out.getvalue().decode(), err.getvalue().decode())
        finally:
            reset_client()


@pytest.fixture
def cli(catalog_url: str) -> Cli:
    return Cli(catalog_url)
