"""Migrations run automatically from an empty database, on SQLite and on PostgreSQL, and build
exactly the tables ``catalog/schema.py`` declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from datakeep.catalog import schema
from datakeep.catalog.database import HEAD, create_catalog_engine, current_revision
from datakeep.catalog.store import Catalog
from datakeep.errors import CatalogError


def test_empty_database_is_migrated_on_first_use(catalog_url: str) -> None:
    engine = create_catalog_engine(catalog_url)
    try:
        assert current_revision(engine) is None
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()

    catalog = Catalog(catalog_url)
    try:
        assert current_revision(catalog.engine) == HEAD
        tables = set(inspect(catalog.engine).get_table_names())
        assert set(schema.metadata.tables) <= tables
        with catalog.engine.connect() as c:
            teams = c.execute(text("SELECT id FROM teams")).scalars().all()
        assert teams == [schema.LOCAL_TEAM_ID]
    finally:
        catalog.close()


def test_migrated_schema_matches_the_declared_tables(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    try:
        with catalog.engine.connect() as connection:
            diffs = compare_metadata(MigrationContext.configure(connection), schema.metadata)
    finally:
        catalog.close()
    assert diffs == []


def test_opening_again_is_a_no_op_and_keeps_data(catalog_url: str) -> None:
    first = Catalog(catalog_url)
    provider = first.insert_provider(schema.LOCAL_TEAM_ID, name="p", type="local", config={"path": "/x"})
    first.close()
    second = Catalog(catalog_url)
    try:
        assert second.get_provider(schema.LOCAL_TEAM_ID, provider.id).name == "p"
        assert current_revision(second.engine) == HEAD
    finally:
        second.close()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        with catalog.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        catalog.close()


def test_sqlite_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "catalog.db"
    Catalog(f"sqlite:///{path}").close()
    assert path.is_file()


def test_unreachable_database_is_one_clear_error() -> None:
    # A port nothing listens on: the error names the setting to check.
    with pytest.raises(CatalogError) as caught:
        Catalog("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert "DATAKEEP_DATABASE_URL" in caught.value.one_line()


def test_plain_postgresql_urls_get_the_psycopg_driver() -> None:
    engine = create_catalog_engine("postgresql://u@127.0.0.1:1/db")
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()
