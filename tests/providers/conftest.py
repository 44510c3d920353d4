"""Every provider under test, built against real storage: a temp directory and moto over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakeep.providers.base import Provider
from datakeep.providers.local import LocalProvider
from datakeep.providers.s3 import S3Provider


@pytest.fixture(params=["local", "s3", "s3-prefix"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Provider:
    if request.param == "local":
        return LocalProvider(tmp_path / "store")
    s3 = request.getfixturevalue("s3")
    bucket = request.getfixturevalue("make_bucket")("conformance")
    return S3Provider(
        bucket,
        prefix="team/area" if request.param == "s3-prefix" else "",
        endpoint=s3.endpoint_url,
        region=s3.region,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
    )
