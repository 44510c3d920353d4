"""Opening the catalog database: engine options per dialect, and automatic migrations.

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` transactions, so concurrent writers (two
jobs committing outputs at once) queue on the busy timeout instead of failing with
"database is locked" half-way through a transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from datakeep.errors import CatalogError

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest migration; a database already at it skips Alembic entirely (fast start-up).
HEAD = "0001"


def create_catalog_engine(url: str) -> Engine:
    """An engine for the catalog URL, with each dialect's settings for datakeep's workload.

    ``postgresql://`` URLs are pointed at psycopg 3 (the driver datakeep installs), so the plain
    URL people copy from their PostgreSQL set-up works. A URL SQLAlchemy cannot use is a
    :class:`CatalogError` naming the variable, not a crash.
    """
    try:
        return _create_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise CatalogError(
            f"Cannot use the catalog database URL {make_safe(url)!r} ({exc.__class__.__name__}: {exc})",
            hint="Set DATAKEEP_DATABASE_URL to e.g. postgresql://user@host/db, or unset it to use SQLite under DATAKEEP_HOME",
        ) from exc


def make_safe(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url.split("@")[-1] if "@" in url else url


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    if parsed.drivername in ("postgresql", "postgres"):
        url = str(parsed.set(drivername="postgresql+psycopg"))
    return create_engine(url, pool_pre_ping=True)


def _configure_sqlite(engine: Engine) -> None:
    """WAL lets readers run beside one writer; ``BEGIN IMMEDIATE`` takes the write lock at the start
    of every transaction, so two writers queue on the busy timeout instead of one failing with
    "database is locked" when it upgrades a read lock half-way through."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        row = connection.exec_driver_sql("SELECT version_num FROM alembic_version").first()
        return row[0] if row else None


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema; a no-op costing one query when it is there."""
    try:
        if current_revision(engine) == HEAD:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise CatalogError(
            f"Cannot open the catalog database ({exc.__class__.__name__}: {str(exc).splitlines()[0]})",
            hint="Check DATAKEEP_DATABASE_URL, or unset it to use SQLite under DATAKEEP_HOME",
        ) from exc
