"""``datakeep admin teams`` and ``datakeep admin keys``: who may use a datakeep server.

These act on the server's catalog directly (``DATAKEEP_DATABASE_URL`` or SQLite under
``DATAKEEP_HOME``) through the library's ``AdminService``, so run them where the server runs,
as its administrator.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from datakeep.cli.common import json_option
from datakeep.cli.output import NO_DATA, echo_json, echo_table
from datakeep.config import Settings
from datakeep.errors import InvalidInput


def _admin() -> Any:
    settings = Settings.from_env()
    if settings.is_remote:
        raise InvalidInput(
            "Teams and keys are managed on the server's own catalog, not through its API",
            hint="Run this where the server runs, without DATAKEEP_API_URL",
        )
    from datakeep.client import Client

    return Client(settings, progress=False).admin


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


@click.group("admin")
def admin() -> None:
    """Administer this machine's catalog (and a datakeep server's teams and keys)."""


@admin.group("teams")
def teams() -> None:
    """Teams: each sees only its own storage providers, datasets and versions."""


@teams.command("create")
@click.argument("name")
@json_option
def teams_create(name: str, as_json: bool) -> None:
    """Create a team named NAME."""
    team = _admin().create_team(name)
    if as_json:
        echo_json(_jsonable(team))
    else:
        click.echo(f"Created team: {team['id']} ({team['name']})")


@teams.command("list")
@json_option
def teams_list(as_json: bool) -> None:
    """List teams."""
    found = _admin().list_teams()
    if as_json:
        echo_json([_jsonable(t) for t in found])
    elif not found:
        click.echo(NO_DATA)
    else:
        echo_table([("Name", "ID", "Created")] + [(t["name"], t["id"], _when(t["created"])) for t in found])


@admin.group("keys")
def keys() -> None:
    """API keys: sent as X-API-Key (Gradient's header) or Authorization: Bearer."""


@keys.command("create")
@click.option("--team", required=True, help="Team name or ID.")
@click.option("--name", default=None, help="A label for the key (who or what uses it).")
@json_option
def keys_create(team: str, name: str | None, as_json: bool) -> None:
    """Create an API key for a team. The key is printed once and never stored in clear."""
    created = _admin().create_key(team, name=name)
    if as_json:
        echo_json({"id": created.id, "team_id": created.team_id, "name": created.name, "key": created.key})
        return
    click.echo(created.key)
    click.echo(f"Created API key {created.id}. Store it now: it cannot be shown again.", err=True)


@keys.command("list")
@click.option("--team", default=None, help="Only this team's keys (name or ID).")
@json_option
def keys_list(team: str | None, as_json: bool) -> None:
    """List API keys (their prefixes only, never the keys)."""
    found = _admin().list_keys(team)
    if as_json:
        echo_json([_jsonable(k) for k in found])
    elif not found:
        click.echo(NO_DATA)
    else:
        rows: list[tuple[str, ...]] = [("ID", "Team", "Name", "Prefix", "Created", "Last used", "Revoked")]
        rows += [
            (
                k["id"],
                k["team_id"],
                k["name"] or "",
                k["prefix"] + "...",
                _when(k["created"]),
                _when(k["last_used"]),
                _when(k["revoked"]),
            )
            for k in found
        ]
        echo_table(rows)


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke the API key KEY_ID; it stops working at once."""
    _admin().revoke_key(key_id)
    click.echo(f"Revoked API key: {key_id}")


commands = [admin]
