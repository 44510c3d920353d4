"""``datakeep datasets``: Gradient's datasets, versions, tags and files commands.

Flags, tables and success lines match gradient-cli 2.x byte for byte, because scripts grep
them; all the work is done by the library (:class:`datakeep.Client`), so the CLI, the server
and Python callers behave the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from datakeep.cli.common import DatakeepGroup, get_client, json_option
from datakeep.cli.output import (
    echo_details,
    echo_json,
    echo_list,
    echo_table,
    join_tags,
    plural,
    slice_fetch,
    stderr,
)
from datakeep.domain.models import Change, Dataset, FileEntry, Tag, Version
from datakeep.domain.refs import EXAMPLE_ID, EXAMPLE_VERSION, parse_bare_dataset_id, parse_ref
from datakeep.errors import InvalidInput, VersionCommitted

EXAMPLE_TAG = "prod"
_DATASET_HELP = f"Dataset ID (e.g. {EXAMPLE_ID})."
_VERSION_HELP = f"Dataset version: ID:VERSION, ID:TAG or ID:latest (e.g. {EXAMPLE_ID}:{EXAMPLE_VERSION})."


def _version_json(version: Version) -> dict[str, Any]:
    return {"id": version.ref, **version.to_dict()}


def _dataset_json(dataset: Dataset) -> dict[str, Any]:
    return dataset.to_dict()


# DATASETS


@click.group("datasets", cls=DatakeepGroup)
def datasets() -> None:
    """Manage datasets: named collections of files with immutable versions."""


@datasets.command("list")
@json_option
def list_datasets(as_json: bool) -> None:
    """List datasets."""
    client = get_client()
    echo_list(
        lambda limit, offset: client.datasets.list(limit=limit, offset=offset),
        ("Name", "ID", "Storage Provider"),
        lambda d: (d.name, d.id, d.storage_provider.label),
        _dataset_json,
        as_json=as_json,
    )


@datasets.command("details")
@click.option("--id", "dataset_id", required=True, help=_DATASET_HELP)
@json_option
def show_dataset(dataset_id: str, as_json: bool) -> None:
    """Show a dataset's details."""
    dataset = get_client().datasets.get(dataset_id)
    echo_details(
        [
            ("Name", dataset.name),
            ("ID", dataset.id),
            ("Description", dataset.description or ""),
            ("StorageProvider", dataset.storage_provider.label),
        ],
        _dataset_json(dataset),
        as_json=as_json,
    )


@datasets.command("create")
@click.option("--name", required=True, help="Dataset name, unique among your datasets.")
@click.option(
    "--storageProviderId",
    "storage_provider_id",
    help="Storage provider ID (default: the provider named 'default').",
)
@click.option("--description", help="Free-form description.")
def create_dataset(name: str, storage_provider_id: str | None, description: str | None) -> None:
    """Create a dataset."""
    dataset = get_client().datasets.create(
        name=name, storage_provider_id=storage_provider_id, description=description
    )
    click.echo(f"Created dataset: {dataset.id}")


@datasets.command("update")
@click.option("--id", "dataset_id", required=True, help=_DATASET_HELP)
@click.option("--name", help="New name.")
@click.option("--description", help="New description.")
def update_dataset(dataset_id: str, name: str | None, description: str | None) -> None:
    """Rename a dataset or change its description."""
    dataset = get_client().datasets.update(dataset_id, name=name, description=description)
    click.echo(f"Updated dataset: {dataset.id}")


@datasets.command("delete")
@click.option("--id", "dataset_id", required=True, help=_DATASET_HELP)
def delete_dataset(dataset_id: str) -> None:
    """Delete a dataset with all its versions and tags."""
    dataset_id = parse_bare_dataset_id(dataset_id)
    get_client().datasets.delete(dataset_id)
    click.echo(f"Deleted dataset: {dataset_id}")


# VERSIONS


@datasets.group("versions", cls=DatakeepGroup)
def versions() -> None:
    """Manage dataset versions."""


@versions.command("list")
@click.option("--id", "dataset_id", required=True, help=_DATASET_HELP)
@click.option(
    "--isCommitted",
    "is_committed",
    type=bool,
    is_flag=False,
    flag_value=True,
    metavar="[true|false]",
    default=True,
    show_default=True,
    help="List committed versions (true) or uncommitted ones (false).",
)
@json_option
def list_versions(dataset_id: str, is_committed: bool, as_json: bool) -> None:
    """List the versions of a dataset, newest first."""
    client = get_client()
    dataset_id = parse_bare_dataset_id(dataset_id)
    echo_list(
        lambda limit, offset: client.versions.list(
            dataset_id, is_committed=is_committed, limit=limit, offset=offset
        ),
        ("ID", "Message", "Tags"),
        lambda v: (v.ref, v.message or "", join_tags(v.tags)),
        _version_json,
        as_json=as_json,
    )


@versions.command("details")
@click.option("--id", "ref", required=True, help=_VERSION_HELP)
@json_option
def show_version(ref: str, as_json: bool) -> None:
    """Show a version's details."""
    parse_ref(ref, require_selector=True)
    version = get_client().versions.get(ref)
    rows: list[tuple[str, str]] = [
        ("ID", version.ref),
        ("Message", version.message or ""),
        ("Committed", str(version.is_committed).lower()),
        ("Tags", join_tags(version.tags)),
    ]
    data = _version_json(version)
    if version.job_id:
        # Lineage: which job wrote this version, from which pinned inputs (cli/jobs.py owns the wording).
        from datakeep.cli.jobs import producer_rows

        if as_json:
            job = get_client().jobs.producer(version.ref)
            data["producedBy"] = None if job is None else job.to_dict()
        else:
            rows += producer_rows(version.ref)
    echo_details(rows, data, as_json=as_json)


@versions.command("create")
@click.option("--id", "dataset_id", required=True, help=_DATASET_HELP)
@click.option("--message", help="What this version holds or why it was made.")
@click.option(
    "--source-path",
    "source_paths",
    multiple=True,
    help="File or directory to put in the version (repeatable); the version is then committed.",
)
def create_version(dataset_id: str, message: str | None, source_paths: Sequence[str]) -> None:
    """Create a version, empty or from local files.

    With --source-path the files are uploaded and the version is created committed in one
    step: if the command is interrupted no version is left behind, and running it again
    uploads only what is still missing.
    """
    version = get_client().versions.create(dataset_id, message=message, source_paths=list(source_paths))
    click.echo(f"Created dataset version: {version.ref}")
    if version.is_committed:
        click.echo(f"Committed dataset version: {version.ref}")


@versions.command("update")
@click.option("--id", "ref", required=True, help=_VERSION_HELP)
@click.option("--message", help="New message.")
def update_version(ref: str, message: str | None) -> None:
    """Change the message of an uncommitted version."""
    client = get_client()
    if message is None:
        version = client.versions.literal(ref)
    else:
        version = client.versions.update(ref, message=message)
    click.echo(f"Updated dataset version: {version.ref}")


@versions.command("commit")
@click.option("--id", "ref", required=True, help=_VERSION_HELP)
def commit_version(ref: str) -> None:
    """Commit a version: from then on it can never change."""
    try:
        version = get_client().versions.commit(ref)
    except VersionCommitted:
        # Gradient's answer, not an error: the version is in the state the user asked for,
        # whether it was committed long ago or by a racing command a moment ago.
        click.echo("Dataset version already committed")
        return
    click.echo(f"Committed dataset version: {version.ref}")


@versions.command("delete")
@click.option("--id", "ref", required=True, help=_VERSION_HELP)
def delete_version(ref: str) -> None:
    """Delete a version and the tags pointing at it."""
    version = get_client().versions.delete(ref)
    click.echo(f"Deleted dataset version: {version.ref}")


def _size_change(change: Change) -> str:
    if change.kind == "added":
        return str(change.new_size if change.new_size is not None else "")
    if change.kind == "removed":
        return str(change.old_size if change.old_size is not None else "")
    return f"{change.old_size} -> {change.new_size}"


@versions.command("diff")
@click.option(
    "--id", "old_ref", required=True, help=f"The older version (e.g. {EXAMPLE_ID}:{EXAMPLE_VERSION})."
)
@click.option("--to", "new_ref", required=True, help=f"The newer version (e.g. {EXAMPLE_ID}:latest).")
@json_option
def diff_versions(old_ref: str, new_ref: str, as_json: bool) -> None:
    """List the files added, removed and modified from one version to another."""
    changes = list(get_client().versions.diff(old_ref, new_ref))
    if as_json:
        echo_json([change.to_dict() for change in changes])
    elif not changes:
        click.echo("No differences")
    else:
        echo_table([("Change", "Path", "Size"), *((c.kind, c.path, _size_change(c)) for c in changes)])


# TAGS


@datasets.group("tags", cls=DatakeepGroup)
def tags() -> None:
    """Manage tags: movable names for versions ('latest' is reserved)."""


@tags.command("list")
@click.option("--id", "dataset_id", required=True, help=_DATASET_HELP)
@json_option
def list_tags(dataset_id: str, as_json: bool) -> None:
    """List the tags of a dataset."""
    client = get_client()
    dataset_id = parse_bare_dataset_id(dataset_id)

    def tag_json(tag: Tag) -> dict[str, Any]:
        return {"id": tag.ref, **tag.to_dict()}

    echo_list(
        lambda limit, offset: client.tags.list(dataset_id, limit=limit, offset=offset),
        ("ID", "Name"),
        lambda tag: (f"{tag.dataset_id}:{tag.version}", tag.name),
        tag_json,
        as_json=as_json,
    )


@tags.command("set")
@click.option("--id", "ref", required=True, help=_VERSION_HELP)
@click.option("--name", help=f"Tag name (e.g. {EXAMPLE_TAG}); an existing tag is moved.")
def set_tag(ref: str, name: str | None) -> None:
    """Point a tag at a version."""
    parsed = parse_ref(ref, require_selector=True)
    if not name:
        raise InvalidInput("No tag name given", hint=f"Pass --name, e.g. --name={EXAMPLE_TAG}")
    tag = get_client().tags.set(ref, name=name)
    click.echo(f"Set dataset tag: {parsed.dataset_id}:{tag.name}")


@tags.command("delete")
@click.option("--id", "ref", required=True, help=f"Dataset tag: ID:TAG (e.g. {EXAMPLE_ID}:{EXAMPLE_TAG}).")
def delete_tag(ref: str) -> None:
    """Delete a tag (the version stays)."""
    tag = get_client().tags.delete(ref)
    click.echo(f"Deleted dataset tag: {tag.ref}")


# FILES


@datasets.group("files", cls=DatakeepGroup)
def files() -> None:
    """List, download, upload and delete the files of a version."""


@files.command("list")
@click.option("--id", "ref", required=True, help=_VERSION_HELP)
@click.option("--path", default="/", show_default=True, help="Directory of the version to list.")
@click.option(
    "--recursive",
    type=bool,
    is_flag=False,
    flag_value=True,
    metavar="[true|false]",
    default=False,
    help="List files in sub-directories too (--recursive or --recursive=true).",
)
@json_option
def list_files(ref: str, path: str, recursive: bool, as_json: bool) -> None:
    """List the files of a version."""
    entries = get_client().files.list(ref, path=path or "/", recursive=recursive)

    def row(entry: FileEntry) -> tuple[str, str]:
        return entry.name, "" if entry.is_dir or entry.size is None else str(entry.size)

    echo_list(slice_fetch(entries), ("Name", "Size"), row, lambda e: e.to_dict(), as_json=as_json)


@files.command("get")
@click.option("--id", "ref", required=True, help=_VERSION_HELP)
@click.option(
    "--source-path",
    "source_paths",
    multiple=True,
    help="File or directory of the version to download (repeatable; default: everything).",
)
@click.option("--target-path", required=True, help="Local directory to download into.")
def get_files(ref: str, source_paths: Sequence[str], target_path: str) -> None:
    """Download files of a version; every byte is checked against its digest."""
    count = get_client().files.get(ref, target_path=target_path, source_paths=list(source_paths) or None)
    stderr(f"Downloaded {plural(count, 'file')} to {target_path}")


@files.command("put")
@click.option("--id", "ref", required=True, help=_VERSION_HELP)
@click.option(
    "--source-path",
    "source_paths",
    multiple=True,
    required=True,
    help="Local file or directory to upload (repeatable); 'dir/' uploads the directory's contents.",
)
@click.option(
    "--target-path", default="/", show_default=True, help="Directory of the version to upload into."
)
def put_files(ref: str, source_paths: Sequence[str], target_path: str) -> None:
    """Upload files into an uncommitted version."""
    version = get_client().files.put(ref, source_paths=list(source_paths), target_path=target_path or "/")
    stderr(f"Uploaded to {version.ref}: it now holds {plural(version.file_count or 0, 'file')}")


@files.command("delete")
@click.option("--id", "ref", required=True, help=_VERSION_HELP)
@click.option("--path", "paths", multiple=True, help="File or directory to delete (repeatable).")
@click.option(
    "--all", "delete_all", is_flag=True, help="Delete every file of the version (needed when no --path)."
)
def delete_files(ref: str, paths: Sequence[str], delete_all: bool) -> None:
    """Delete files from an uncommitted version."""
    version = get_client().files.delete(ref, paths=list(paths), all=delete_all)
    stderr(f"Deleted from {version.ref}: it now holds {plural(version.file_count or 0, 'file')}")


commands = [datasets]
