"""A dataset on an S3 storage provider, through the CLI, against a real S3 server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from fixtures.s3 import MakeBucket, S3Server

from .conftest import Datakeep


def test_s3_dataset_round_trip(
    dk: Datakeep, s3: S3Server, make_bucket: MakeBucket, s3_client: Any, tmp_path: Path
) -> None:
    bucket = make_bucket("team-data")
    created = dk.ok(
        "storageProviders",
        "create",
        "s3",
        "--name=team",
        f"--bucket={bucket}",
        f"--endpoint={s3.endpoint_url}",
        f"--accessKey={s3.access_key}",
        f"--secretAccessKey={s3.secret_key}",
        f"--region={s3.region}",
        "--prefix=datakeep",
    ).stdout
    provider_id = created.rsplit(" ", 1)[1].strip()

    # The secret is neither shown nor stored in clear.
    assert s3.secret_key not in dk.ok("storageProviders", "details", f"--id={provider_id}").stdout
    engine = create_engine(dk.catalog_url)
    try:
        with engine.connect() as c:
            raw = c.execute(
                text("SELECT config FROM storage_providers WHERE id = :id"), {"id": provider_id}
            ).scalar()
    finally:
        engine.dispose()
    assert s3.secret_key not in str(raw)

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "hello.txt").write_text("hello world\n")
    (data / "sub" / "blob.bin").write_bytes(bytes(range(256)) * 64)
    dataset_id = dk.create_dataset("on-s3", f"--storageProviderId={provider_id}")
    ref = dk.create_version(dataset_id, f"{data}/")
    assert dk.ok("datasets", "files", "list", f"--id={ref}").stdout == (
        "+-----------+------+\n"
        "| Name      | Size |\n"
        "+-----------+------+\n"
        "| hello.txt | 12   |\n"
        "| sub/      |      |\n"
        "+-----------+------+\n"
    )
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys
    assert all(k.startswith("datakeep/") for k in keys)

    out = tmp_path / "out"
    dk.ok("datasets", "files", "get", f"--id={dataset_id}:latest", f"--target-path={out}")
    assert (out / "hello.txt").read_text() == "hello world\n"
    assert (out / "sub" / "blob.bin").read_bytes() == (data / "sub" / "blob.bin").read_bytes()
