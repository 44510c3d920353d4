"""``datakeep cache``: the shared-storage cache of fetched versions (``DATAKEEP_CACHE``).

``clean`` always prints its plan and the bytes it frees before acting; ``--dry-run`` stops there.
A version pinned by a running job is never removed.
"""

from __future__ import annotations

import re
from datetime import timedelta

import click

from datakeep.cache import CachedVersion
from datakeep.cli.common import DatakeepGroup, get_client, json_option
from datakeep.cli.output import NO_DATA, echo_json, echo_table, plural, stderr
from datakeep.domain.ids import check_dataset_id
from datakeep.errors import IntegrityError, InvalidInput
from datakeep.sizes import format_size

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w``."""
    match = _DURATION.match(text)
    if not match:
        raise InvalidInput(f"Invalid duration {text!r}", hint="Use a number and a unit: 30m, 12h, 7d or 2w")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _when(version: CachedVersion) -> str:
    return version.last_used.strftime("%Y-%m-%d %H:%M:%S")


def _ref(version: CachedVersion) -> str:
    return version.key.replace("/", ":", 1)


def _pins(version: CachedVersion) -> str:
    return ", ".join(f"{p.label} (pid {p.pid}@{p.host})" for p in version.pins)


def _version_json(version: CachedVersion) -> dict[str, object]:
    return {
        "ref": _ref(version),
        "path": str(version.path),
        "size": version.size,
        "files": version.files,
        "last_used": version.last_used.isoformat(),
        "created": version.created.isoformat(),
        "pins": [p.__dict__ | {"created": p.created.isoformat()} for p in version.pins],
    }


@click.group("cache", cls=DatakeepGroup)
def cache() -> None:
    """Inspect and clean the shared-storage cache of dataset versions."""


@cache.command("list")
@json_option
def list_cache(as_json: bool) -> None:
    """List cached versions: size, last use and the jobs pinning them."""
    versions = get_client().cache.list()
    if as_json:
        echo_json([_version_json(v) for v in versions])
        return
    if not versions:
        click.echo(NO_DATA)
        return
    echo_table(
        [
            ("Version", "Files", "Size", "Last used", "Pinned by"),
            *((_ref(v), v.files, format_size(v.size), _when(v), _pins(v)) for v in versions),
        ]
    )


@cache.command("clean")
@click.option("--older-than", "older_than", help="Only versions not used for this long (30m, 12h, 7d, 2w).")
@click.option("--dataset", "dataset_id", help="Only versions of this dataset ID.")
@click.option(
    "--dry-run", "dry_run", is_flag=True, help="Print the plan and the bytes it frees; remove nothing."
)
@json_option
def clean_cache(older_than: str | None, dataset_id: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove cached versions (never one a running job uses); prints the plan first."""
    if dataset_id is not None:
        check_dataset_id(dataset_id, option="--dataset")
    plan = get_client().cache.plan_clean(
        older_than=parse_duration(older_than) if older_than else None, dataset=dataset_id
    )
    if as_json:
        freed = None if dry_run else plan.execute()
        echo_json(
            {
                "remove": [_ref(v) for v in plan.versions],
                "kept_pinned": [_ref(v) for v in plan.kept_pinned],
                "planned_bytes": plan.freed_bytes,
                "freed_bytes": freed,
                "dry_run": dry_run,
            }
        )
        return
    # The plan is on screen before anything is removed, so an interrupted clean says what it was doing.
    if plan.versions:
        echo_table(
            [
                ("Remove", "Files", "Size", "Last used"),
                *((_ref(v), v.files, format_size(v.size), _when(v)) for v in plan.versions),
            ]
        )
    else:
        click.echo("Nothing to remove")
    for v in plan.kept_pinned:
        stderr(f"Kept {_ref(v)}: pinned by {_pins(v)}")
    if dry_run:
        click.echo(f"Would free {format_size(plan.freed_bytes)} ({plan.freed_bytes} bytes)")
        return
    freed = plan.execute()
    click.echo(f"Freed {format_size(freed)} ({freed} bytes) from {plural(len(plan.versions), 'version')}")


@cache.command("verify")
@click.option("--repair", is_flag=True, help="Remove what is corrupt, so the next use fetches it again.")
@json_option
def verify_cache(repair: bool, as_json: bool) -> None:
    """Rehash every cached file against its digest; exits 1 if problems remain."""
    problems = get_client().cache.verify(repair=repair)
    if as_json:
        echo_json(
            [
                {"kind": p.kind, "path": str(p.path), "detail": p.detail, "repaired": p.repaired}
                for p in problems
            ]
        )
    elif not problems:
        click.echo("Cache OK")
    else:
        echo_table(
            [
                ("Problem", "Path", "Detail", "Repaired"),
                *((p.kind, p.path, p.detail, "yes" if p.repaired else "no") for p in problems),
            ]
        )
    left = [p for p in problems if not p.repaired]
    if left:
        raise IntegrityError(
            f"{plural(len(left), 'problem')} in the cache at {get_client().cache.path}",
            hint="Run: datakeep cache verify --repair (corrupt files are then fetched again on next use)",
        )


commands: list[click.Command] = [cache]
