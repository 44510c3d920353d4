"""Storage providers: where the bytes of a team's datasets live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datakeep.domain import ids
from datakeep.domain.models import StorageProvider
from datakeep.errors import InvalidInput
from datakeep.services.context import Context
from datakeep.services.datasets import check_name

#: The config keys each provider type accepts; anything else is refused, so a typo is not stored.
S3_KEYS = ("bucket", "accessKey", "secretAccessKey", "endpoint", "region", "signatureVersion", "prefix")
LOCAL_KEYS = ("path",)
TYPES = {"s3": S3_KEYS, "local": LOCAL_KEYS}


def _clean_config(type: str, config: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    allowed = TYPES.get(type)
    if allowed is None:
        raise InvalidInput(
            f"Unknown storage provider type {type!r}", hint=f"Use one of: {', '.join(sorted(TYPES))}"
        )
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"Unknown {type} storage provider setting(s): {', '.join(unknown)}",
            hint=f"Known settings: {', '.join(allowed)}",
        )
    cleaned = {k: v for k, v in config.items() if v is not None}
    if not partial:
        if type == "s3" and not cleaned.get("bucket"):
            raise InvalidInput("An s3 storage provider needs a bucket", hint="Pass --bucket NAME")
        if type == "local" and not cleaned.get("path"):
            raise InvalidInput("A local storage provider needs a path", hint="Pass --path DIR")
    if (
        type == "s3"
        and bool(cleaned.get("accessKey")) != bool(cleaned.get("secretAccessKey"))
        and not partial
    ):
        raise InvalidInput(
            "Give both --accessKey and --secretAccessKey, or neither (for a public bucket)",
            hint="Pass the missing one",
        )
    if type == "local" and cleaned.get("path"):
        path = Path(str(cleaned["path"])).expanduser()
        if not path.is_absolute():
            path = path.resolve()
        cleaned["path"] = str(path)
    return cleaned


class StorageProvidersService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def list(self, *, limit: int | None = None, offset: int = 0) -> list[StorageProvider]:
        return self._ctx.catalog.list_providers(self._ctx.team_id, limit=limit, offset=offset)

    def get(self, provider_id: str) -> StorageProvider:
        ids.check_storage_provider_id(provider_id)
        return self._ctx.catalog.get_provider(self._ctx.team_id, provider_id)

    def create(self, *, name: str, type: str, config: dict[str, Any]) -> StorageProvider:
        check_name(name, what="storage provider")
        cleaned = _clean_config(type, config, partial=False)
        if type == "local":
            Path(cleaned["path"]).mkdir(parents=True, exist_ok=True)
        return self._ctx.catalog.insert_provider(
            self._ctx.team_id, name=name, type=type, config=self._ctx.secretbox.seal_config(cleaned)
        )

    def update(
        self, provider_id: str, *, name: str | None = None, config: dict[str, Any] | None = None
    ) -> StorageProvider:
        """Change the name and/or some config keys; an empty string clears an optional key."""
        if name is not None:
            check_name(name, what="storage provider")
        current = self._ctx.catalog.get_provider(
            self._ctx.team_id, ids.check_storage_provider_id(provider_id), reveal=True
        )
        merged = None
        if config:
            changes = _clean_config(current.type, config, partial=True)
            merged = dict(current.config)
            for key, value in changes.items():
                if value == "" and key not in ("bucket", "path"):
                    merged.pop(key, None)
                elif value != "":
                    merged[key] = value
            merged = self._ctx.secretbox.seal_config(_clean_config(current.type, merged, partial=False))
        self._ctx.forget_provider(provider_id)
        return self._ctx.catalog.update_provider(self._ctx.team_id, provider_id, name=name, config=merged)

    def delete(self, provider_id: str) -> None:
        ids.check_storage_provider_id(provider_id)
        self._ctx.catalog.delete_provider(self._ctx.team_id, provider_id)
        self._ctx.forget_provider(provider_id)
