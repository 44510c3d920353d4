"""Gradient's dataset, version, tag and storage provider routes, over the library's services.

Routes, verbs and JSON follow Gradient's API: updates are ``POST`` to the resource, a tag is
set with ``PUT``, lists take LoopBack filters and answer bare JSON arrays. Each route does one
call into the team's :class:`datakeep.Client`; nothing here touches the catalog directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Request, Response

from datakeep.domain.models import SECRET_MASK, Dataset, StorageProvider, Tag, Version
from datakeep.errors import Forbidden, InvalidInput, VersionCommitted
from datakeep.remote import wire
from datakeep.server.filters import ListFilter, parse_filter
from datakeep.server.gradient_files import commit_with_uploads, delete_with_uploads
from datakeep.server.state import State, TeamClient

router = APIRouter()

JsonBody = dict[str, Any] | None

_DATASET_ORDER: dict[str, Callable[[Dataset], Any]] = {
    "name": lambda d: d.name,
    "id": lambda d: d.id,
    "dtCreated": lambda d: d.created,
    "dtModified": lambda d: d.modified,
}
_VERSION_ORDER: dict[str, Callable[[Version], Any]] = {
    "version": lambda v: v.version,
    "dtCreated": lambda v: v.created,
    "dtModified": lambda v: v.modified,
    "message": lambda v: v.message or "",
}
_TAG_ORDER: dict[str, Callable[[Tag], Any]] = {
    "name": lambda t: t.name,
    "dtCreated": lambda t: t.created,
    "dtModified": lambda t: t.modified,
}
_PROVIDER_ORDER: dict[str, Callable[[StorageProvider], Any]] = {
    "name": lambda p: p.name,
    "id": lambda p: p.id,
    "type": lambda p: p.type,
    "dtCreated": lambda p: p.created,
}


def _filter(request: Request) -> ListFilter:
    return parse_filter(list(request.query_params.multi_items()))


def _page(
    flt: ListFilter,
    native: tuple[tuple[str, bool], ...],
    fetch: Callable[[int | None, int], list[Any]],
    key_of: dict[str, Callable[[Any], Any]],
) -> list[Any]:
    """Let the catalog page when the order asked for is the one it lists in; otherwise order and
    page in memory (the lists are a team's datasets, providers, or one dataset's versions)."""
    if not flt.order or flt.order == native[: len(flt.order)]:
        return fetch(flt.limit, flt.skip)
    return flt.sorted_page(fetch(None, 0), key_of)


def _obj(body: JsonBody) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object")
    return body


def _str(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    return value


def _ref(dataset_id: str, selector: str) -> str:
    return f"{dataset_id}:{selector}"


# DATASETS


@router.get("/datasets", tags=["datasets"])
def list_datasets(request: Request, client: TeamClient) -> list[dict[str, Any]]:
    flt = _filter(request)
    items = _page(
        flt,
        (("name", False),),
        lambda limit, skip: client.datasets.list(limit=limit, offset=skip),
        _DATASET_ORDER,
    )
    return [wire.dataset_json(d) for d in items]


@router.post("/datasets", tags=["datasets"])
def create_dataset(client: TeamClient, body: JsonBody = Body(default=None)) -> dict[str, Any]:
    data = _obj(body)
    dataset = client.datasets.create(
        name=_str(data, "name", required=True) or "",
        storage_provider_id=_str(data, "storageProviderId"),
        description=_str(data, "description"),
    )
    return wire.dataset_json(dataset)


@router.get("/datasets/ref/{ref}", tags=["datasets"])
def get_dataset_ref(ref: str, client: TeamClient) -> dict[str, Any]:
    version = client.versions.get(ref)
    dataset = client.datasets.get(version.dataset_id)
    return wire.ref_json(dataset, version)


@router.get("/datasets/{dataset_id}", tags=["datasets"])
def get_dataset(dataset_id: str, client: TeamClient) -> dict[str, Any]:
    return wire.dataset_json(client.datasets.get(dataset_id))


@router.post("/datasets/{dataset_id}", tags=["datasets"])
@router.put("/datasets/{dataset_id}", tags=["datasets"])
@router.patch("/datasets/{dataset_id}", tags=["datasets"])
def update_dataset(
    dataset_id: str, client: TeamClient, body: JsonBody = Body(default=None)
) -> dict[str, Any]:
    data = _obj(body)
    dataset = client.datasets.update(
        dataset_id, name=_str(data, "name"), description=_str(data, "description")
    )
    return wire.dataset_json(dataset)


@router.delete("/datasets/{dataset_id}", status_code=204, tags=["datasets"])
def delete_dataset(dataset_id: str, client: TeamClient) -> Response:
    client.datasets.delete(dataset_id)
    return Response(status_code=204)


# VERSIONS


@router.get("/datasets/{dataset_id}/versions", tags=["versions"])
def list_versions(dataset_id: str, request: Request, client: TeamClient) -> list[dict[str, Any]]:
    flt = _filter(request)
    committed = flt.where_bool("isCommitted")
    items = _page(
        flt,
        (("dtCreated", True),),
        lambda limit, skip: client.versions.list(
            dataset_id, is_committed=committed, limit=limit, offset=skip
        ),
        _VERSION_ORDER,
    )
    return [wire.version_json(v) for v in items]


@router.post("/datasets/{dataset_id}/versions", tags=["versions"])
def create_version(
    dataset_id: str, client: TeamClient, body: JsonBody = Body(default=None)
) -> dict[str, Any]:
    data = _obj(body)
    version = client.versions.create(dataset_id, message=_str(data, "message"))
    return wire.version_json(version)


@router.get("/datasets/{dataset_id}/versions/{version}", tags=["versions"])
def get_version(dataset_id: str, version: str, client: TeamClient) -> dict[str, Any]:
    return wire.version_json(client.versions.get(_ref(dataset_id, version)))


@router.post("/datasets/{dataset_id}/versions/{version}", tags=["versions"])
@router.put("/datasets/{dataset_id}/versions/{version}", tags=["versions"])
@router.patch("/datasets/{dataset_id}/versions/{version}", tags=["versions"])
def update_version(
    dataset_id: str, version: str, client: TeamClient, state: State, body: JsonBody = Body(default=None)
) -> dict[str, Any]:
    """Set the message and/or commit (``{"isCommitted": true}``), as Gradient's CLI does both."""
    data = _obj(body)
    ref = _ref(dataset_id, version)
    message = _str(data, "message")
    commit = data.get("isCommitted")
    if commit is not None and not isinstance(commit, bool):
        raise InvalidInput("isCommitted must be true or false")
    current = client.versions.literal(ref)
    if commit is False and current.is_committed:
        raise VersionCommitted(f"Dataset version {current.ref} is committed and cannot be uncommitted")
    result = current
    if message is not None:
        result = client.versions.update(current.ref, message=message)
    if commit:
        result = commit_with_uploads(state, client, current)
    return wire.version_json(result)


@router.delete("/datasets/{dataset_id}/versions/{version}", status_code=204, tags=["versions"])
def delete_version(dataset_id: str, version: str, client: TeamClient) -> Response:
    delete_with_uploads(client, _ref(dataset_id, version))
    return Response(status_code=204)


# TAGS


@router.get("/datasets/{dataset_id}/tags", tags=["tags"])
def list_tags(dataset_id: str, request: Request, client: TeamClient) -> list[dict[str, Any]]:
    flt = _filter(request)
    items = _page(
        flt,
        (("name", False),),
        lambda limit, skip: client.tags.list(dataset_id, limit=limit, offset=skip),
        _TAG_ORDER,
    )
    return [wire.tag_json(t) for t in items]


@router.get("/datasets/{dataset_id}/tags/{name}", tags=["tags"])
def get_tag(dataset_id: str, name: str, client: TeamClient) -> dict[str, Any]:
    return wire.tag_json(client.tags.get(_ref(dataset_id, name)))


@router.put("/datasets/{dataset_id}/tags/{name}", tags=["tags"])
@router.post("/datasets/{dataset_id}/tags/{name}", tags=["tags"])
def set_tag(
    dataset_id: str, name: str, client: TeamClient, body: JsonBody = Body(default=None)
) -> dict[str, Any]:
    data = _obj(body)
    version = _str(data, "version", required=True) or ""
    return wire.tag_json(client.tags.set(_ref(dataset_id, version), name=name))


@router.delete("/datasets/{dataset_id}/tags/{name}", status_code=204, tags=["tags"])
def delete_tag(dataset_id: str, name: str, client: TeamClient) -> Response:
    client.tags.delete(_ref(dataset_id, name))
    return Response(status_code=204)


# STORAGE PROVIDERS


def _config(data: dict[str, Any]) -> dict[str, Any]:
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise InvalidInput("config must be a JSON object")
    # A masked secret sent back unchanged (a client echoing what it read) means "keep it".
    return {k: v for k, v in config.items() if v != SECRET_MASK}


@router.get("/storageProviders", tags=["storageProviders"])
def list_providers(request: Request, client: TeamClient) -> list[dict[str, Any]]:
    flt = _filter(request)
    items = _page(
        flt,
        (("name", False),),
        lambda limit, skip: client.storage_providers.list(limit=limit, offset=skip),
        _PROVIDER_ORDER,
    )
    return [wire.provider_json(p) for p in items]


@router.post("/storageProviders", tags=["storageProviders"])
def create_provider(client: TeamClient, body: JsonBody = Body(default=None)) -> dict[str, Any]:
    data = _obj(body)
    kind = _str(data, "type", required=True) or ""
    if kind == "local":
        # A path on the server's own disks, chosen by any API user: refused. Each team already
        # has a server-side ``default`` provider for small data.
        raise Forbidden(
            "local storage providers cannot be created through the server",
            hint="Create an s3 storage provider, or use the team's default provider",
        )
    provider = client.storage_providers.create(
        name=_str(data, "name", required=True) or "", type=kind, config=_config(data)
    )
    return wire.provider_json(provider)


@router.get("/storageProviders/{provider_id}", tags=["storageProviders"])
def get_provider(provider_id: str, client: TeamClient) -> dict[str, Any]:
    return wire.provider_json(client.storage_providers.get(provider_id))


@router.post("/storageProviders/{provider_id}", tags=["storageProviders"])
@router.put("/storageProviders/{provider_id}", tags=["storageProviders"])
@router.patch("/storageProviders/{provider_id}", tags=["storageProviders"])
def update_provider(
    provider_id: str, client: TeamClient, body: JsonBody = Body(default=None)
) -> dict[str, Any]:
    data = _obj(body)
    config = _config(data) if "config" in data else None
    current = client.storage_providers.get(provider_id)
    if current.type == "local" and config:
        raise Forbidden("The path of a local storage provider cannot be changed through the server")
    provider = client.storage_providers.update(provider_id, name=_str(data, "name"), config=config or None)
    return wire.provider_json(provider)


@router.delete("/storageProviders/{provider_id}", status_code=204, tags=["storageProviders"])
def delete_provider(provider_id: str, client: TeamClient) -> Response:
    client.storage_providers.delete(provider_id)
    return Response(status_code=204)
