"""``client.cache``: the shared-storage cache as the library and the CLI see it.

The cache itself (:mod:`datakeep.cache`) knows only digests; this service ties it to the
catalog, so a version reference becomes a cached, read-only directory.

One cache serves every team of a server, so what a team may list, clean and verify is
scoped here: the versions of the datasets it owns. The embedded local team is the machine's
operator and sees the whole cache, unless it asks for ``team_only``.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import cached_property
from pathlib import Path

from sqlalchemy import select

from datakeep.cache import Cache, CachedVersion, CacheEntry, CleanPlan, Problem
from datakeep.cache.store import Scope
from datakeep.catalog import schema as t
from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.domain.models import Version
from datakeep.domain.refs import parse_ref
from datakeep.errors import DatakeepError
from datakeep.services.context import Context
from datakeep.storage.content import ContentStore


def cache_key(version: Version) -> str:
    return f"{version.dataset_id}/{version.version}"


class CacheService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @cached_property
    def store(self) -> Cache:
        """One :class:`Cache` per service, so the pins it takes are released by the same object."""
        return Cache.from_settings(self._ctx.settings)

    @property
    def path(self) -> Path:
        return self.store.root

    def scope(self, *, team_only: bool = False) -> Scope:
        """Which cache keys this team may see: ``None`` (all) only for the local team's operator.

        A key is ``<dataset ID>/<version>``, and dataset IDs are unique across teams, so a
        version belongs to whoever owns its dataset now. A deleted dataset's cached versions
        belong to no team: only the operator (or eviction) removes them.
        """
        if not team_only and self._ctx.team_id == LOCAL_TEAM_ID:
            return None
        with self._ctx.catalog.begin() as c:
            owned = frozenset(
                c.execute(select(t.datasets.c.id).where(t.datasets.c.team_id == self._ctx.team_id)).scalars()
            )
        return lambda key: key.split("/", 1)[0] in owned

    def list(self, *, team_only: bool = False) -> list[CachedVersion]:
        return self.store.list(scope=self.scope(team_only=team_only))

    def plan_clean(
        self,
        *,
        older_than: timedelta | None = None,
        dataset: str | None = None,
        refs: Collection[str] | None = None,
        team_only: bool = False,
    ) -> CleanPlan:
        """What ``clean`` would remove and free; call ``.execute()`` on it to do it.

        ``refs`` (``ID:VERSION``) keeps only versions planned before, so a plan shown to a
        user and then confirmed removes no more than was shown.
        """
        keys = None if refs is None else [r.replace(":", "/", 1) for r in refs]
        return self.store.plan_clean(
            older_than=older_than, dataset=dataset, keys=keys, scope=self.scope(team_only=team_only)
        )

    def verify(self, *, repair: bool = False, team_only: bool = False) -> builtins.list[Problem]:
        """Rehash the cache; with ``repair``, also fetch again the versions it had to drop.

        The store alone can only drop what is corrupt (it knows no providers), which would
        leave the next job to pay for the fetch; here the catalog is at hand, so the repair
        ends with the cache as complete as before. A version this team cannot see (the cache
        may be shared) or that was deleted since is left to be fetched by whoever uses it.
        """
        problems = self.store.verify(
            repair=repair, progress=self._ctx.progress, scope=self.scope(team_only=team_only)
        )
        dropped = dict.fromkeys(p.key for p in problems if p.repaired and p.key is not None)
        fetched: set[str] = set()
        for key in dropped:
            with contextlib.suppress(DatakeepError):
                self.materialize(key.replace("/", ":", 1))
                fetched.add(key)
        return [replace(p, detail=p.detail + "; fetched again") if p.key in fetched else p for p in problems]

    def materialize(self, ref: str, *, pin: str | None = None) -> Path:
        """A committed version (``ID:VERSION``, ``ID:TAG``, ``ID:latest``) as a read-only directory."""
        version = self._ctx.catalog.resolve(self._ctx.team_id, parse_ref(ref, require_selector=True))
        return self.materialize_version(version, pin=pin)

    def materialize_version(self, version: Version, *, pin: str | None = None) -> Path:
        """Reuse the cached tree when there is one (O(1)); else list the version and fetch what is missing.

        The storage provider is opened only when something must be listed or fetched: a cached
        version is presented without it (no S3 client, no credentials needed).
        """

        @functools.cache
        def content() -> ContentStore:
            dataset = self._ctx.catalog.get_dataset(self._ctx.team_id, version.dataset_id)
            return self._ctx.content(dataset)

        def entries() -> list[CacheEntry]:
            return [CacheEntry(p, d, s) for p, d, s in content().entries(version.root)]

        def fetch(missing: Sequence[CacheEntry], into: Path) -> None:
            content().fetch([e.digest for e in missing], into)

        return self.store.materialize(cache_key(version), entries, fetch, pin=pin)

    def unpin(self, version: Version, pin: str) -> None:
        self.store.unpin(cache_key(version), pin)
