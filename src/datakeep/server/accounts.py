"""Teams and API keys: who may talk to a datakeep server, and which team's data they see.

A key is shown once, when it is created, and only its SHA-256 is stored: keys are 256 random
bits, so a slow password hash would buy nothing and would cost every request. The first
characters are kept in clear (``prefix``) so a human can tell keys apart in ``keys list``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, or_, select, update

from datakeep.catalog import Catalog
from datakeep.catalog import schema as t
from datakeep.domain import ids
from datakeep.errors import AlreadyExists, AuthenticationFailed, InvalidInput, NotFound

#: Every key starts with this, so a leaked one is recognisable by secret scanners.
KEY_PREFIX = "dk_"
#: How much of a key is kept in clear to tell keys apart.
SHOWN_PREFIX = 10
#: ``last_used`` is written at most this often per key, so reads do not all turn into writes.
LAST_USED_EVERY = 60.0


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    created: datetime | None = None


@dataclass(frozen=True)
class ApiKey:
    id: str
    team_id: str
    team_name: str
    name: str | None
    prefix: str
    created: datetime | None
    revoked: datetime | None = None
    last_used: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: ``secret`` is the only copy of the key there will ever be."""

    key: ApiKey
    secret: str


class Accounts:
    """Teams and keys, stored in the catalog's ``teams`` and ``api_keys`` tables."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._last_used_written: dict[str, float] = {}
        self._lock = threading.Lock()

    # TEAMS

    def create_team(self, name: str) -> Team:
        name = (name or "").strip()
        if not name:
            raise InvalidInput("A team needs a name", hint="Pass a NAME, e.g. datakeep admin teams create ml")
        with self._catalog.begin() as c:
            if c.execute(select(t.teams.c.id).where(t.teams.c.name == name)).first() is not None:
                raise AlreadyExists(f"A team named {name!r} already exists", hint="Pick another name")
            team = Team(id=ids.new_team_id(), name=name, created=_now())
            c.execute(insert(t.teams).values(id=team.id, name=team.name, created=team.created))
        return team

    def list_teams(self) -> list[Team]:
        with self._catalog.begin() as c:
            rows = c.execute(
                select(t.teams).where(t.teams.c.id != t.LOCAL_TEAM_ID).order_by(t.teams.c.name)
            ).all()
        return [Team(id=r.id, name=r.name, created=_aware(r.created)) for r in rows]

    def get_team(self, name_or_id: str) -> Team:
        """A team by its ID or its name (the embedded ``local`` team is not a server team)."""
        with self._catalog.begin() as c:
            row = c.execute(
                select(t.teams).where(
                    or_(t.teams.c.id == name_or_id, t.teams.c.name == name_or_id),
                    t.teams.c.id != t.LOCAL_TEAM_ID,
                )
            ).first()
        if row is None:
            raise NotFound(f"Team not found: {name_or_id}", hint="List teams with: datakeep admin teams list")
        return Team(id=row.id, name=row.name, created=_aware(row.created))

    # KEYS

    def create_key(self, team: str, *, name: str | None = None) -> NewApiKey:
        found = self.get_team(team)
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = "key" + secrets.token_hex(8)
        now = _now()
        with self._catalog.begin() as c:
            c.execute(
                insert(t.api_keys).values(
                    id=key_id,
                    team_id=found.id,
                    name=name,
                    key_hash=hash_key(secret),
                    prefix=secret[:SHOWN_PREFIX],
                    created=now,
                )
            )
        record = ApiKey(
            id=key_id,
            team_id=found.id,
            team_name=found.name,
            name=name,
            prefix=secret[:SHOWN_PREFIX],
            created=now,
        )
        return NewApiKey(key=record, secret=secret)

    def list_keys(self, team: str | None = None) -> list[ApiKey]:
        query = select(t.api_keys, t.teams.c.name.label("team_name")).join(
            t.teams, t.teams.c.id == t.api_keys.c.team_id
        )
        if team is not None:
            query = query.where(t.api_keys.c.team_id == self.get_team(team).id)
        with self._catalog.begin() as c:
            rows = c.execute(query.order_by(t.teams.c.name, t.api_keys.c.created)).all()
        return [self._key_from_row(r) for r in rows]

    def revoke_key(self, key_id_or_prefix: str) -> ApiKey:
        """Revoke by key ID or by the shown prefix; revoking twice is harmless."""
        with self._catalog.begin() as c:
            rows = c.execute(
                select(t.api_keys, t.teams.c.name.label("team_name"))
                .join(t.teams, t.teams.c.id == t.api_keys.c.team_id)
                .where(or_(t.api_keys.c.id == key_id_or_prefix, t.api_keys.c.prefix == key_id_or_prefix))
            ).all()
            if not rows:
                raise NotFound(
                    f"API key not found: {key_id_or_prefix}", hint="List keys with: datakeep admin keys list"
                )
            if len(rows) > 1:
                raise InvalidInput(
                    f"{key_id_or_prefix!r} matches {len(rows)} keys", hint="Pass the key ID instead"
                )
            row = rows[0]
            if row.revoked is None:
                c.execute(update(t.api_keys).where(t.api_keys.c.id == row.id).values(revoked=_now()))
        return self.list_key(row.id)

    def list_key(self, key_id: str) -> ApiKey:
        with self._catalog.begin() as c:
            row = c.execute(
                select(t.api_keys, t.teams.c.name.label("team_name"))
                .join(t.teams, t.teams.c.id == t.api_keys.c.team_id)
                .where(t.api_keys.c.id == key_id)
            ).first()
        if row is None:
            raise NotFound(f"API key not found: {key_id}")
        return self._key_from_row(row)

    def authenticate(self, secret: str | None) -> ApiKey:
        """The active key ``secret`` is, or :class:`AuthenticationFailed` (one message for every case,
        so a caller learns nothing about which keys exist or were revoked)."""
        failed = AuthenticationFailed(
            "Invalid or missing API key",
            hint="Send a key from `datakeep admin keys create` in X-API-Key or Authorization: Bearer",
        )
        if not secret or len(secret) > 200:
            raise failed
        with self._catalog.begin() as c:
            row = c.execute(
                select(t.api_keys, t.teams.c.name.label("team_name"))
                .join(t.teams, t.teams.c.id == t.api_keys.c.team_id)
                .where(t.api_keys.c.key_hash == hash_key(secret))
            ).first()
        if row is None or row.revoked is not None:
            raise failed
        self._touch(row.id)
        return self._key_from_row(row)

    def _touch(self, key_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last_used_written.get(key_id)
            if last is not None and now - last < LAST_USED_EVERY:
                return
            self._last_used_written[key_id] = now
        with self._catalog.begin() as c:
            c.execute(update(t.api_keys).where(t.api_keys.c.id == key_id).values(last_used=_now()))

    @staticmethod
    def _key_from_row(row: Any) -> ApiKey:
        return ApiKey(
            id=row.id,
            team_id=row.team_id,
            team_name=row.team_name,
            name=row.name,
            prefix=row.prefix,
            created=_aware(row.created),
            revoked=_aware(row.revoked),
            last_used=_aware(row.last_used),
        )
