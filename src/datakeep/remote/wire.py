"""The JSON a datakeep server speaks: Gradient's camelCase models, plus a few extra keys.

Both sides use this module, the server to answer and the remote client to read answers back
into the library's own value objects, so the two cannot drift apart. Extra keys (``isDefault``,
``fileCount``, ``dtCommitted`` ...) are ignored by Gradient's clients, which load with
marshmallow 2 and skip what they do not know.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from datakeep.domain.models import Dataset, StorageProvider, Tag, Version


def dt(value: datetime | None) -> str | None:
    """LoopBack's timestamp form: UTC, milliseconds, ``Z``."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_dt(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


# TO JSON (server side)


def provider_json(provider: StorageProvider) -> dict[str, Any]:
    """``config`` must already be masked: the catalog hands out masked configs by default."""
    return {
        "id": provider.id,
        "name": provider.name,
        "type": provider.type,
        "config": dict(provider.config),
        "isDefault": provider.is_default,
        "dtCreated": dt(provider.created),
        "dtModified": dt(provider.modified),
    }


def dataset_json(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.id,
        "name": dataset.name,
        "description": dataset.description,
        "storageProviderId": dataset.storage_provider.id,
        "storageProvider": provider_json(dataset.storage_provider),
        "dtCreated": dt(dataset.created),
        "dtModified": dt(dataset.modified),
    }


def version_json(version: Version) -> dict[str, Any]:
    return {
        "version": version.version,
        "datasetId": version.dataset_id,
        "message": version.message,
        "isCommitted": version.is_committed,
        "tags": [{"name": name} for name in version.tags],
        "dtCreated": dt(version.created),
        "dtModified": dt(version.modified),
        "dtCommitted": dt(version.committed),
        "fileCount": version.file_count,
        "size": version.size,
        "parent": version.parent,
        "jobId": version.job_id,
    }


def tag_json(tag: Tag) -> dict[str, Any]:
    return {
        "name": tag.name,
        "datasetId": tag.dataset_id,
        "version": {"version": tag.version, "message": tag.message},
        "dtCreated": dt(tag.created),
        "dtModified": dt(tag.modified),
    }


def ref_json(dataset: Dataset, version: Version) -> dict[str, Any]:
    """``GET /datasets/ref/{ref}``: the dataset with the version the ref resolved to."""
    body = dataset_json(dataset)
    body["version"] = version_json(version)
    return body


# FROM JSON (remote client side)


def provider_from(data: dict[str, Any]) -> StorageProvider:
    return StorageProvider(
        id=data["id"],
        name=data["name"],
        type=data["type"],
        config=dict(data.get("config") or {}),
        is_default=bool(data.get("isDefault", False)),
        created=parse_dt(data.get("dtCreated")),
        modified=parse_dt(data.get("dtModified")),
    )


def dataset_from(data: dict[str, Any]) -> Dataset:
    return Dataset(
        id=data["id"],
        name=data["name"],
        description=data.get("description"),
        storage_provider=provider_from(data["storageProvider"]),
        created=parse_dt(data.get("dtCreated")),
        modified=parse_dt(data.get("dtModified")),
    )


def version_from(data: dict[str, Any], dataset_id: str | None = None) -> Version:
    return Version(
        dataset_id=data.get("datasetId") or dataset_id or "",
        version=data["version"],
        message=data.get("message"),
        is_committed=bool(data.get("isCommitted")),
        tags=[t["name"] for t in data.get("tags") or []],
        created=parse_dt(data.get("dtCreated")),
        modified=parse_dt(data.get("dtModified")),
        committed=parse_dt(data.get("dtCommitted")),
        file_count=data.get("fileCount"),
        size=data.get("size"),
        parent=data.get("parent"),
        job_id=data.get("jobId"),
    )
