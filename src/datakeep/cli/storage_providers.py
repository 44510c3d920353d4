"""``datakeep storageProviders``: where the bytes of datasets live (S3-compatible or local).

Gradient had only ``s3``; ``local`` (a directory, possibly on NFS) is datakeep's addition and
what the embedded ``default`` provider is. Secrets are masked (``********``) on every read.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from datakeep.cli.common import DatakeepGroup, get_client, json_option
from datakeep.cli.output import echo_details, echo_list, format_config
from datakeep.domain.models import StorageProvider
from datakeep.errors import InvalidInput

_ID_HELP = "Storage provider ID (e.g. splgct3arqdh77c)."


def _provider_json(provider: StorageProvider) -> dict[str, Any]:
    return provider.to_dict()


@click.group("storageProviders", cls=DatakeepGroup)
def storage_providers() -> None:
    """Manage storage providers: the S3 buckets or directories holding dataset files."""


@storage_providers.command("list")
@json_option
def list_providers(as_json: bool) -> None:
    """List storage providers."""
    client = get_client()
    echo_list(
        lambda limit, offset: client.storage_providers.list(limit=limit, offset=offset),
        ("Name", "ID", "Type", "Config"),
        lambda p: (p.name, p.id, p.type, format_config(p.config, limit=5)),
        _provider_json,
        as_json=as_json,
    )


@storage_providers.command("details")
@click.option("--id", "provider_id", required=True, help=_ID_HELP)
@json_option
def show_provider(provider_id: str, as_json: bool) -> None:
    """Show a storage provider's details (secrets masked)."""
    provider = get_client().storage_providers.get(provider_id)
    echo_details(
        [
            ("Name", provider.name),
            ("ID", provider.id),
            ("Type", provider.type),
            ("Config", format_config(provider.config)),
        ],
        _provider_json(provider),
        as_json=as_json,
    )


@storage_providers.command("delete")
@click.option("--id", "provider_id", required=True, help=_ID_HELP)
def delete_provider(provider_id: str) -> None:
    """Delete a storage provider that no dataset uses."""
    get_client().storage_providers.delete(provider_id)
    click.echo(f"Deleted storage provider: {provider_id}")


@storage_providers.group("create", cls=DatakeepGroup)
def create() -> None:
    """Create a storage provider."""


@storage_providers.group("update", cls=DatakeepGroup)
def update() -> None:
    """Change a storage provider."""


def _secret_from_stdin(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """``--secretAccessKey -``: a secret on the command line shows in ``ps`` and shell history."""
    if value != "-":
        return value
    if sys.stdin.isatty():
        secret: str = click.prompt("S3 secret access key", hide_input=True, err=True)
        return secret
    return sys.stdin.readline().rstrip("\r\n")


def _s3_options(*, creating: bool) -> Any:
    def decorate(func: Any) -> Any:
        options = [
            click.option("--name", required=creating, help="Storage provider name."),
            click.option("--bucket", required=creating, help="S3 bucket name."),
            click.option(
                "--accessKey",
                "access_key",
                help="S3 access key ID (omit with the secret for a public bucket).",
            ),
            click.option(
                "--secretAccessKey",
                "secret_access_key",
                callback=_secret_from_stdin,
                help="S3 secret access key (never shown again). '-' reads it from stdin, out of ps and history.",
            ),
            click.option("--endpoint", help="S3 endpoint URL, for MinIO, Ceph, R2 and the like."),
            click.option("--region", help="S3 region (e.g. us-east-1)."),
            click.option("--signatureVersion", "signature_version", help="S3 signature version (e.g. v4)."),
            click.option("--prefix", help="Key prefix inside the bucket under which datakeep writes."),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


@create.command("s3")
@_s3_options(creating=True)
def create_s3(
    name: str,
    bucket: str,
    access_key: str | None,
    secret_access_key: str | None,
    endpoint: str | None,
    region: str | None,
    signature_version: str | None,
    prefix: str | None,
) -> None:
    """Create an S3-compatible storage provider."""
    provider = get_client().storage_providers.create(
        name=name,
        type="s3",
        config={
            "bucket": bucket,
            "accessKey": access_key or None,
            "secretAccessKey": secret_access_key or None,
            "endpoint": endpoint or None,
            "region": region or None,
            "signatureVersion": signature_version or None,
            "prefix": prefix or None,
        },
    )
    click.echo(f"Created new storage provider with id: {provider.id}")


@create.command("local")
@click.option("--name", required=True, help="Storage provider name.")
@click.option("--path", required=True, help="Directory holding the files (created if missing; may be NFS).")
def create_local(name: str, path: str) -> None:
    """Create a storage provider that is a local (or network-mounted) directory."""
    provider = get_client().storage_providers.create(name=name, type="local", config={"path": path})
    click.echo(f"Created new storage provider with id: {provider.id}")


def _check_type(provider_id: str, expected: str) -> None:
    provider = get_client().storage_providers.get(provider_id)
    if provider.type != expected:
        raise InvalidInput(
            f"Storage provider {provider_id} is of type {provider.type}, not {expected}",
            hint=f"Use: datakeep storageProviders update {provider.type} --id={provider_id} ...",
        )


@update.command("s3")
@click.option("--id", "provider_id", required=True, help=_ID_HELP)
@_s3_options(creating=False)
def update_s3(
    provider_id: str,
    name: str | None,
    bucket: str | None,
    access_key: str | None,
    secret_access_key: str | None,
    endpoint: str | None,
    region: str | None,
    signature_version: str | None,
    prefix: str | None,
) -> None:
    """Change an S3 storage provider; only the options given change ('' clears an optional one)."""
    _check_type(provider_id, "s3")
    config: dict[str, Any] = {}
    # As in Gradient: an empty bucket or key means "unchanged"; an empty endpoint, region,
    # signature version or prefix clears it.
    for key, value in (("bucket", bucket), ("accessKey", access_key), ("secretAccessKey", secret_access_key)):
        if value:
            config[key] = value
    for key, value in (
        ("endpoint", endpoint),
        ("region", region),
        ("signatureVersion", signature_version),
        ("prefix", prefix),
    ):
        if value is not None:
            config[key] = value
    get_client().storage_providers.update(provider_id, name=name, config=config or None)
    click.echo("Updated storage provider")


@update.command("local")
@click.option("--id", "provider_id", required=True, help=_ID_HELP)
@click.option("--name", help="Storage provider name.")
@click.option("--path", help="Directory holding the files.")
def update_local(provider_id: str, name: str | None, path: str | None) -> None:
    """Change a local storage provider."""
    _check_type(provider_id, "local")
    get_client().storage_providers.update(provider_id, name=name, config={"path": path} if path else None)
    click.echo("Updated storage provider")


commands = [storage_providers]
