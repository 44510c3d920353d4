"""What one server process holds: the catalog, a library client per team, the URL signer.

Every route acts through ``Client.for_team(team_id)``, the same library the CLI uses, scoped to
the team of the API key that made the request. Those clients are kept, one per team, because
each holds open storage providers (an S3 client costs tens of milliseconds to build).
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request

from datakeep.catalog import Catalog
from datakeep.client import Client
from datakeep.config import Settings
from datakeep.errors import AuthenticationFailed
from datakeep.server.tokens import UrlSigner


class ServerState:
    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog(settings.catalog_url)
        self.signer = UrlSigner.for_settings(settings)
        self._root = Client(settings, progress=False, catalog=self.catalog)
        #: Teams and keys (the library's AdminService, over the same catalog).
        self.admin = self._root.admin
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()

    def client_for(self, team_id: str) -> Client:
        with self._lock:
            client = self._clients.get(team_id)
        if client is None:
            client = self._root.for_team(team_id)
            with self._lock:
                client = self._clients.setdefault(team_id, client)
        return client

    def close(self) -> None:
        self.catalog.close()


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.datakeep
    return state


def api_key_from(request: Request) -> str | None:
    """Gradient's clients send ``X-API-Key``; everything else may send ``Authorization: Bearer``."""
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def current_team(request: Request, state: Annotated[ServerState, Depends(get_state)]) -> str:
    """The team of the request's API key. Every failure reads the same, so a caller learns nothing
    about which keys exist or were revoked."""
    key = api_key_from(request)
    team_id = state.admin.authenticate(key) if key and len(key) <= 200 else None
    if team_id is None:
        raise AuthenticationFailed(
            "Invalid or missing API key",
            hint="Send a key from `datakeep admin keys create` in X-API-Key or Authorization: Bearer",
        )
    return team_id


def team_client(
    team_id: Annotated[str, Depends(current_team)], state: Annotated[ServerState, Depends(get_state)]
) -> Client:
    return state.client_for(team_id)


TeamClient = Annotated[Client, Depends(team_client)]
State = Annotated[ServerState, Depends(get_state)]
CurrentTeam = Annotated[str, Depends(current_team)]
