"""``datakeep admin rebuild-catalog``, ``fsck`` and ``gc``: recover, check and clean stored versions.

They work on this machine's catalog (``DATAKEEP_DATABASE_URL`` or SQLite under ``DATAKEEP_HOME``)
and talk to the storage provider directly, so run them where the catalog lives.
"""

from __future__ import annotations

import dataclasses

import click

from datakeep.cli.common import get_client, json_option
from datakeep.cli.output import echo_json
from datakeep.config import Settings
from datakeep.errors import IntegrityError, InvalidInput
from datakeep.services.admin import AdminService


def _admin() -> AdminService:
    """The embedded client's admin service: a server's API never administers its storage."""
    if Settings.from_env().is_remote:
        raise InvalidInput(
            "Storage administration runs against the catalog itself, not through a server's API",
            hint="Run this where the catalog lives, without DATAKEEP_API_URL",
        )
    admin: AdminService = get_client().admin
    return admin


@click.group("admin")
def admin() -> None:
    """Administer this machine's catalog and storage."""


@admin.command("rebuild-catalog")
@click.option(
    "--storageProviderId",
    "storage_provider_id",
    help="Provider to read (default: the default provider). Create it first if the catalog is new.",
)
@json_option
def rebuild_catalog_command(storage_provider_id: str | None, as_json: bool = False) -> None:
    """Recover every committed version stored on a provider into the catalog (idempotent)."""
    report = _admin().rebuild_catalog(
        storage_provider_id=storage_provider_id, log=lambda m: click.echo(m, err=True)
    )
    if as_json:
        echo_json(dataclasses.asdict(report))
    else:
        click.echo(
            f"Recovered {report.versions} version(s) in {report.datasets} new dataset(s); "
            f"indexed {report.blobs} blob(s) and {report.trees} manifest node(s)"
        )
        for problem in report.problems:
            click.echo(f"problem: {problem}", err=True)
    if report.problems:
        raise IntegrityError(
            f"{len(report.problems)} problem(s) found while rebuilding",
            hint="The versions listed above could not be recovered; the others were",
        )


@admin.command("fsck")
@click.option(
    "--storageProviderId", "storage_provider_id", help="Provider to check (default: the default provider)."
)
@click.option("--quick", is_flag=True, help="Only check that objects exist, without reading their bytes.")
@json_option
def fsck_command(storage_provider_id: str | None, quick: bool, as_json: bool = False) -> None:
    """Check that every object a committed version needs exists and matches its digest."""
    report = _admin().fsck(storage_provider_id=storage_provider_id, verify_content=not quick)
    if as_json:
        echo_json({**dataclasses.asdict(report), "ok": report.ok})
    else:
        for problem in report.problems:
            click.echo(problem)
        click.echo(
            f"Checked {report.versions} version(s), {report.files} file(s), {report.objects} object(s): "
            + ("OK" if report.ok else f"{len(report.problems)} problem(s)")
        )
    if not report.ok:
        raise IntegrityError(
            f"fsck found {len(report.problems)} problem(s)",
            hint="Re-upload the affected versions from their source, or restore the objects from a backup",
        )


@admin.command("gc")
@click.option(
    "--storageProviderId", "storage_provider_id", help="Provider to clean (default: the default provider)."
)
@click.option(
    "--olderThan",
    "older_than",
    type=float,
    default=24.0,
    show_default=True,
    help="Keep objects stored less than this many hours ago.",
)
@click.option("--yes", is_flag=True, help="Delete for real; without it, only print what would go.")
@json_option
def gc_command(storage_provider_id: str | None, older_than: float, yes: bool, as_json: bool = False) -> None:
    """Delete stored objects that no version needs any more (run it when no create is running)."""
    from datetime import timedelta

    report = _admin().gc(
        storage_provider_id=storage_provider_id, older_than=timedelta(hours=older_than), dry_run=not yes
    )
    if as_json:
        echo_json(dataclasses.asdict(report))
        return
    for key in report.objects:
        click.echo(key)
    verb = "Would delete" if report.dry_run else "Deleted"
    click.echo(f"{verb} {len(report.objects)} object(s), {report.bytes} bytes")
    if report.dry_run and report.objects:
        click.echo("Run again with --yes to delete them.")


commands = [admin]
