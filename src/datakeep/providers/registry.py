"""Turn a storage provider record into a live :class:`Provider`."""

from __future__ import annotations

from pathlib import Path

from datakeep.config import Settings
from datakeep.domain.models import SECRET_MASK, StorageProvider
from datakeep.errors import InvalidInput
from datakeep.providers.base import Provider


def open_provider(provider: StorageProvider, settings: Settings) -> Provider:
    """``provider.config`` must be the real config: a masked secret would only fail later, obscurely."""
    config = provider.config
    if any(v == SECRET_MASK for v in config.values()):
        raise InvalidInput(
            f"Storage provider {provider.id} was given with its secrets masked",
            hint="This is a bug in datakeep",
        )
    if provider.type == "local":
        raw = config.get("path")
        path = Path(raw).expanduser() if raw else settings.default_storage_path
        if not path.is_absolute():
            path = settings.home / path
        from datakeep.providers.local import LocalProvider

        return LocalProvider(path)
    if provider.type == "s3":
        if not config.get("bucket"):
            raise InvalidInput(f"Storage provider {provider.id} has no bucket", hint="Set one with --bucket")
        from datakeep.providers.s3 import S3Provider

        return S3Provider(
            str(config["bucket"]),
            prefix=str(config.get("prefix") or ""),
            endpoint=config.get("endpoint") or None,
            region=config.get("region") or None,
            access_key=config.get("accessKey") or None,
            secret_key=config.get("secretAccessKey") or None,
            session_token=config.get("sessionToken") or None,
            signature_version=config.get("signatureVersion") or None,
        )
    raise InvalidInput(f"Unknown storage provider type {provider.type!r}", hint="Use s3 or local")
