"""Short-lived signed URLs that the server issues for itself.

Gradient's file protocol hands the client URLs to call; most point at the S3 provider, but some
answers only the server can give (a listing of a version's manifest, a HEAD from the catalog,
a delete that changes a manifest, the bytes of a ``local`` provider). Those URLs carry a token:
what may be done, on which team's version and key, until when, signed with HMAC-SHA256. The
token is the only credential such a URL needs, like an S3 presigned URL, and it cannot be
turned into a token for another version, key or operation without breaking the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from datakeep.config import Settings
from datakeep.errors import Forbidden

#: Lifetime of every URL the server hands out (S3 presigned ones too).
URL_TTL_SECONDS = 15 * 60


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Grant:
    """What a token allows: ``op`` on ``key`` (or a prefix) of one team's dataset version."""

    op: str
    team_id: str
    dataset_id: str
    version: str
    key: str
    params: dict[str, Any]
    expires: int


class UrlSigner:
    def __init__(self, secret: bytes, *, ttl: int = URL_TTL_SECONDS) -> None:
        self._secret = secret
        self.ttl = ttl

    @classmethod
    def for_settings(cls, settings: Settings) -> UrlSigner:
        """Derived from the server key, so every process of one deployment accepts every other's
        URLs; without a server key, random per process (URLs then die with the process)."""
        if settings.server_key:
            material = hashlib.sha256(b"datakeep-url-signing\0" + settings.server_key.encode()).digest()
        else:
            material = secrets.token_bytes(32)
        return cls(material)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def sign(
        self,
        op: str,
        *,
        team_id: str,
        dataset_id: str,
        version: str,
        key: str,
        params: dict[str, Any] | None = None,
        ttl: int | None = None,
        now: float | None = None,
    ) -> str:
        expires = int((now if now is not None else time.time()) + (ttl if ttl is not None else self.ttl))
        payload = json.dumps(
            {"o": op, "t": team_id, "d": dataset_id, "v": version, "k": key, "p": params or {}, "e": expires},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str, *, now: float | None = None) -> Grant:
        denied = Forbidden("This URL is invalid or has expired", hint="Ask the server for a new one")
        try:
            body, _, mac = token.partition(".")
            payload = _unb64(body)
            given = _unb64(mac)
        except (ValueError, TypeError):
            raise denied from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise denied
        try:
            data = json.loads(payload)
            grant = Grant(
                op=str(data["o"]),
                team_id=str(data["t"]),
                dataset_id=str(data["d"]),
                version=str(data["v"]),
                key=str(data["k"]),
                params=dict(data["p"]),
                expires=int(data["e"]),
            )
        except (ValueError, KeyError, TypeError):
            raise denied from None
        if grant.expires < (now if now is not None else time.time()):
            raise Forbidden("This URL has expired", hint="Ask the server for a new one")
        return grant
