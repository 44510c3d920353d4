"""The catalog: datasets, versions, tags, providers, jobs and teams, in SQLite or PostgreSQL."""

from datakeep.catalog.store import Catalog

__all__ = ["Catalog"]
