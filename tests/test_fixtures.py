"""The shared fixtures do what the rest of the suite relies on."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from fixtures.env import HermeticEnv
from fixtures.postgres import PostgresServer
from fixtures.s3 import MakeBucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def test_hermetic_env_points_everything_into_tmp(hermetic_env: HermeticEnv, tmp_path: Path) -> None:
    assert os.environ["DATAKEEP_HOME"] == str(hermetic_env.home)
    assert os.environ["DATAKEEP_CACHE"] == str(hermetic_env.cache)
    assert os.environ["DATAKEEP_SHARED_STORAGE"] == str(hermetic_env.shared_storage)
    for path in (hermetic_env.home, hermetic_env.cache, hermetic_env.shared_storage):
        assert path.is_dir()
        assert tmp_path in path.parents
    assert os.environ["NO_COLOR"] == "1"
    assert os.environ["COLUMNS"] == "200"
    assert "DATAKEEP_API_URL" not in os.environ
    assert "DATAKEEP_API_KEY" not in os.environ
    assert not any(
        name.startswith("AWS_")
        and name not in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED")
        for name in os.environ
    )
    assert Path.home() == hermetic_env.user_home


def test_settings_follow_the_hermetic_env(hermetic_env: HermeticEnv) -> None:
    from datakeep.config import Settings

    settings = Settings.from_env()
    assert settings.home == hermetic_env.home
    assert settings.cache_path == hermetic_env.cache
    assert settings.shared_storage_path == hermetic_env.shared_storage
    assert not settings.is_remote


def test_catalog_url_is_a_fresh_empty_database(catalog_url: str, request: pytest.FixtureRequest) -> None:
    engine = sa.create_engine(catalog_url)
    try:
        with engine.begin() as conn:
            assert sa.inspect(conn).get_table_names() == []
            conn.execute(sa.text("CREATE TABLE probe (id INTEGER PRIMARY KEY, name TEXT)"))
            conn.execute(sa.text("INSERT INTO probe (id, name) VALUES (1, 'x')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM probe")).scalar_one() == "x"
            dialect = conn.dialect.name
    finally:
        engine.dispose()
    assert dialect == request.node.callspec.id.split("-")[0]


def test_postgres_server_is_real_and_on_loopback(postgres_server: PostgresServer) -> None:
    import psycopg

    assert postgres_server.host == "127.0.0.1"
    with psycopg.connect(postgres_server.dsn()) as conn:
        row = conn.execute("SELECT version(), inet_server_addr()::text").fetchone()
    assert row is not None
    assert row[0].startswith("PostgreSQL ")
    assert row[1].startswith("127.0.0.1")


def test_postgres_databases_are_separate(postgres_database: str, postgres_server: PostgresServer) -> None:
    import psycopg

    name = postgres_database.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.dsn(name)) as conn:
        conn.execute("CREATE TABLE only_here (x int)")
    with psycopg.connect(postgres_server.dsn()) as conn:
        assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)


def test_s3_server_is_reached_over_http(s3_server: str) -> None:
    assert s3_server.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{s3_server}/moto-api/", timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize("attempt", [1, 2])
def test_s3_is_reset_between_tests(attempt: int, s3_client: S3Client, make_bucket: MakeBucket) -> None:
    assert s3_client.list_buckets()["Buckets"] == []
    make_bucket(f"leftover-{attempt}")
    assert [b["Name"] for b in s3_client.list_buckets()["Buckets"]] == [f"leftover-{attempt}"]


def test_make_bucket_options(s3_client: S3Client, make_bucket: MakeBucket) -> None:
    assert make_bucket("plain") == "plain"
    make_bucket("versioned", versioned=True)
    make_bucket("public", public=True)
    assert s3_client.get_bucket_versioning(Bucket="versioned")["Status"] == "Enabled"
    assert s3_client.get_bucket_versioning(Bucket="plain").get("Status") is None
    assert "s3:GetObject" in s3_client.get_bucket_policy(Bucket="public")["Policy"]
    s3_client.put_object(Bucket="versioned", Key="a.txt", Body=b"one")
    s3_client.put_object(Bucket="versioned", Key="a.txt", Body=b"two")
    versions = s3_client.list_object_versions(Bucket="versioned")["Versions"]
    assert len(versions) == 2


def test_presigned_url_round_trip(s3_client: S3Client, make_bucket: MakeBucket) -> None:
    make_bucket("bucket")
    put = s3_client.generate_presigned_url("put_object", Params={"Bucket": "bucket", "Key": "k"})
    # An explicit type: urllib's default (form-encoded) body would be parsed away by the server.
    req = urllib.request.Request(
        put, data=b"payload", method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(req, timeout=10) as response:
        assert response.status == 200
    get = s3_client.generate_presigned_url("get_object", Params={"Bucket": "bucket", "Key": "k"})
    with urllib.request.urlopen(get, timeout=10) as response:
        assert response.read() == b"payload"
