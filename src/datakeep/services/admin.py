"""Administration: teams and API keys for the server; catalog recovery, checks and clean-up of storage.

API keys are 256-bit random strings shown once at creation; the catalog keeps only their
SHA-256 (a slow hash adds nothing for keys with this much entropy) and an 8-character prefix
so people can tell keys apart in ``keys list``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from datakeep.errors import InvalidInput
from datakeep.services.context import Context

if TYPE_CHECKING:
    from datakeep.storage.admin import FsckReport, GcReport, RebuildReport
from datakeep.services.datasets import check_name

KEY_PREFIX = "dk_"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewApiKey:
    id: str
    team_id: str
    name: str | None
    #: The key itself: shown once, never stored.
    key: str


class AdminService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    # TEAMS

    def create_team(self, name: str) -> dict[str, Any]:
        if not name or not name.strip():
            raise InvalidInput("A team needs a name", hint="Pass it: datakeep admin teams create NAME")
        return self._ctx.catalog.insert_team(check_name(name.strip(), what="team", option="team NAME"))

    def list_teams(self) -> list[dict[str, Any]]:
        return self._ctx.catalog.list_teams()

    def get_team(self, team_or_name: str) -> dict[str, Any]:
        return self._ctx.catalog.get_team(team_or_name)

    # API KEYS

    def create_key(self, team: str, *, name: str | None = None) -> NewApiKey:
        team_id = self._ctx.catalog.get_team(team)["id"]
        if name is not None:
            name = check_name(name, what="key", option="--name")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = "key" + secrets.token_hex(8)
        self._ctx.catalog.insert_api_key(
            team_id, key_id=key_id, name=name, key_hash=hash_api_key(key), prefix=key[:8]
        )
        return NewApiKey(id=key_id, team_id=team_id, name=name, key=key)

    def list_keys(self, team: str | None = None) -> list[dict[str, Any]]:
        team_id = self._ctx.catalog.get_team(team)["id"] if team else None
        return self._ctx.catalog.list_api_keys(team_id)

    def revoke_key(self, key_id: str) -> None:
        self._ctx.catalog.revoke_api_key(key_id)

    def authenticate(self, key: str) -> str | None:
        """The team of a live key, or None: the server answers 401 either way without saying which."""
        if not key:
            return None
        return self._ctx.catalog.team_for_key_hash(hash_api_key(key))

    # STORAGE: recovery and checks (the work is in datakeep.storage.admin)

    def _provider(self, storage_provider_id: str | None) -> str:
        return storage_provider_id or self._ctx.ensure_default_provider().id

    def rebuild_catalog(
        self, *, storage_provider_id: str | None = None, log: Callable[[str], None] = lambda _m: None
    ) -> RebuildReport:
        """Recover every committed version stored on a provider into the catalog (idempotent)."""
        from datakeep.storage.admin import rebuild_catalog

        pid = self._provider(storage_provider_id)
        return rebuild_catalog(
            self._ctx.catalog, self._ctx.provider(pid), pid, team_id=self._ctx.team_id, log=log
        )

    def fsck(self, *, storage_provider_id: str | None = None, verify_content: bool = True) -> FsckReport:
        """Check that every object a committed version needs exists (and, by default, matches its digest)."""
        from datakeep.storage.admin import fsck

        pid = self._provider(storage_provider_id)
        return fsck(self._ctx.catalog, self._ctx.provider(pid), pid, verify_content=verify_content)

    def gc(
        self,
        *,
        storage_provider_id: str | None = None,
        older_than: timedelta = timedelta(days=1),
        dry_run: bool = True,
    ) -> GcReport:
        """Plan (or, without ``dry_run``, do) the deletion of objects no version needs."""
        from datakeep.storage.admin import gc

        pid = self._provider(storage_provider_id)
        return gc(self._ctx.catalog, self._ctx.provider(pid), pid, older_than=older_than, dry_run=dry_run)
