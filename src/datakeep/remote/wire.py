"""The JSON a datakeep server speaks: Gradient's camelCase models, plus a few extra keys.

The server answers Gradient's routes with these; datakeep's own remote client does not read
them (it speaks ``/datakeep/v1`` through :mod:`datakeep.remote.codec`). Extra keys (``isDefault``,
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
