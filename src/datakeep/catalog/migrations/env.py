"""Alembic environment: runs on the connection that :func:`datakeep.catalog.database.migrate` hands it."""

from __future__ import annotations

from alembic import context

from datakeep.catalog.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    raise RuntimeError("Run migrations through datakeep (they run automatically on first use)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
