"""The engine's two catalog tables: ``trees`` (manifest nodes) and ``blobs`` (where each digest lives).

Both are insert-only and content-addressed, so concurrent writers that insert the same row both
succeed (insert-or-ignore): there is nothing to lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, delete, select

from datakeep.catalog import schema as t
from datakeep.catalog.store import Catalog, utcnow

_BATCH = 500


@dataclass(frozen=True)
class Location:
    """Where the bytes of one digest are: ``size`` bytes at ``offset`` of object ``key``."""

    digest: str
    key: str
    offset: int
    size: int

    @property
    def whole(self) -> bool:
        return not self.key.endswith(".pack")


def _chunks(items: Sequence[str], size: int = _BATCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_ignore(c: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if c.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        c.execute(pg_insert(table).on_conflict_do_nothing(), rows)
    elif c.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        c.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"catalog database {c.dialect.name} is not supported")


class Index:
    def __init__(self, catalog: Catalog, provider_id: str) -> None:
        self.catalog = catalog
        self.provider_id = provider_id

    # BLOBS

    def locate(self, digests: Iterable[str]) -> dict[str, Location]:
        wanted = sorted(set(digests))
        found: dict[str, Location] = {}
        b = t.blobs.c
        with self.catalog.begin() as c:
            for chunk in _chunks(wanted):
                rows = c.execute(
                    select(b.digest, b.key, b.offset, b.size).where(
                        b.storage_provider_id == self.provider_id, b.digest.in_(list(chunk))
                    )
                )
                for digest, key, offset, size in rows:
                    found[digest] = Location(digest, key, int(offset), int(size))
        return found

    def add_blobs(self, locations: Iterable[Location]) -> None:
        now = utcnow()
        rows = [
            {
                "storage_provider_id": self.provider_id,
                "digest": loc.digest,
                "size": loc.size,
                "key": loc.key,
                "offset": loc.offset,
                "created": now,
            }
            for loc in locations
        ]
        with self.catalog.begin() as c:
            for start in range(0, len(rows), 5000):
                insert_ignore(c, t.blobs, rows[start : start + 5000])

    def forget_blobs(self, digests: Iterable[str]) -> None:
        wanted = sorted(set(digests))
        with self.catalog.begin() as c:
            for chunk in _chunks(wanted):
                c.execute(
                    delete(t.blobs).where(
                        t.blobs.c.storage_provider_id == self.provider_id, t.blobs.c.digest.in_(list(chunk))
                    )
                )

    def all_blobs(self) -> Iterator[Location]:
        b = t.blobs.c
        with self.catalog.begin() as c:
            rows = c.execute(
                select(b.digest, b.key, b.offset, b.size).where(b.storage_provider_id == self.provider_id)
            ).all()
        for digest, key, offset, size in rows:
            yield Location(digest, key, int(offset), int(size))

    # TREES

    def get_trees(self, digests: Iterable[str]) -> dict[str, bytes]:
        wanted = sorted(set(digests))
        found: dict[str, bytes] = {}
        with self.catalog.begin() as c:
            for chunk in _chunks(wanted):
                for digest, data in c.execute(
                    select(t.trees.c.digest, t.trees.c.data).where(t.trees.c.digest.in_(list(chunk)))
                ):
                    found[digest] = bytes(data)
        return found

    def add_trees(self, trees: dict[str, bytes]) -> None:
        rows = [{"digest": d, "data": data} for d, data in trees.items()]
        with self.catalog.begin() as c:
            for start in range(0, len(rows), 2000):
                insert_ignore(c, t.trees, rows[start : start + 2000])
