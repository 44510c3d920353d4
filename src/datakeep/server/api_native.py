"""datakeep's own routes, for the remote client (``DATAKEEP_API_URL``): everything Gradient's API
has no room for, under ``/datakeep/v1``.

- ``POST /datakeep/v1/call``: one library call, ``{"service", "method", "args", "kwargs"}``, from
  an explicit list of allowed calls. The answer is the value the embedded client would have
  returned, encoded by :mod:`datakeep.remote.codec`. So every command behaves the same in both
  modes, because it runs the same service code, only on the server.
- ``POST /datakeep/v1/datasets/{id}/versions/{ver}/missing``: which of these digests the
  dataset's storage provider does not hold yet. The client uploads only those.
- ``POST /datakeep/v1/datasets/{id}/versions/{ver}/link``: lay files into an uncommitted version:
  what the client uploaded to the version's upload area (absorbed and hashed by the server) plus
  files the provider already holds, named by digest, which cost no transfer at all.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Request

from datakeep.client import Client
from datakeep.errors import Forbidden, InvalidInput
from datakeep.remote import codec
from datakeep.server.gradient_files import (
    absorb_uploads,
    clean_key,
    commit_with_uploads,
    delete_with_uploads,
    download_plan,
    version_files,
)
from datakeep.server.state import ServerState, State, TeamClient
from datakeep.storage.hashing import EMPTY_DIGEST

router = APIRouter(prefix="/datakeep/v1", tags=["datakeep"])

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
MAX_DIGESTS = 100_000

#: Calls the remote client may make, and the keyword arguments each accepts. Anything that
#: names a path on the server's machine (``source_paths``, ``target_path``) is absent on purpose:
#: those calls are split by the client into transfers plus the calls below.
ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    ("datasets", "list"): frozenset({"limit", "offset"}),
    ("datasets", "get"): frozenset(),
    ("datasets", "create"): frozenset({"name", "storage_provider_id", "description"}),
    ("datasets", "update"): frozenset({"name", "description"}),
    ("datasets", "delete"): frozenset(),
    ("versions", "list"): frozenset({"is_committed", "limit", "offset"}),
    ("versions", "get"): frozenset(),
    ("versions", "literal"): frozenset(),
    ("versions", "create"): frozenset({"message"}),
    ("versions", "update"): frozenset({"message"}),
    ("versions", "commit"): frozenset(),
    ("versions", "delete"): frozenset(),
    ("versions", "diff"): frozenset(),
    ("tags", "list"): frozenset({"limit", "offset"}),
    ("tags", "get"): frozenset(),
    ("tags", "set"): frozenset({"name"}),
    ("tags", "delete"): frozenset(),
    ("files", "list"): frozenset({"path", "recursive"}),
    ("files", "delete"): frozenset({"paths", "all"}),
    ("storage_providers", "list"): frozenset({"limit", "offset"}),
    ("storage_providers", "get"): frozenset(),
    ("storage_providers", "create"): frozenset({"name", "type", "config"}),
    ("storage_providers", "update"): frozenset({"name", "config"}),
    ("storage_providers", "delete"): frozenset(),
    ("jobs", "get"): frozenset(),
    ("jobs", "list"): frozenset({"limit", "offset"}),
    ("jobs", "logs"): frozenset({"line", "limit"}),
    ("jobs", "lineage"): frozenset({"depth"}),
    ("jobs", "producer"): frozenset(),
    ("experiments", "list"): frozenset({"limit", "offset"}),
    ("experiments", "get"): frozenset(),
    ("experiments", "logs"): frozenset({"process"}),
}


def _plain(value: Any) -> bool:
    """JSON values only: nothing the server could be tricked into treating as an object."""
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _guard(
    state: ServerState, client: Client, service: str, method: str, args: list[Any], kwargs: dict[str, Any]
) -> Callable[[], Any] | None:
    """Calls that need more than passing through: returns a replacement, or None."""
    first = str(args[0]) if args else ""
    if service == "storage_providers" and method == "create" and kwargs.get("type") == "local":
        raise Forbidden(
            "local storage providers cannot be created through the server",
            hint="Create an s3 storage provider, or use the team's default provider",
        )
    if service == "storage_providers" and method == "update" and kwargs.get("config"):
        current = client.storage_providers.get(first)
        if current.type == "local":
            raise Forbidden("The path of a local storage provider cannot be changed through the server")
    if service == "versions" and method == "commit":
        return lambda: commit_with_uploads(state, client, client.versions.literal(first))
    if service == "versions" and method == "delete":
        return lambda: delete_with_uploads(client, first)
    return None


@router.post("/call")
def call(
    client: TeamClient, state: State, body: dict[str, Any] | None = Body(default=None)
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object")
    service, method = body.get("service"), body.get("method")
    args, kwargs = body.get("args") or [], body.get("kwargs") or {}
    if not isinstance(service, str) or not isinstance(method, str):
        raise InvalidInput("service and method are required")
    allowed = ALLOWED.get((service, method))
    if allowed is None:
        raise InvalidInput(f"{service}.{method} cannot be called remotely")
    if not isinstance(args, list) or not isinstance(kwargs, dict) or not _plain(args) or not _plain(kwargs):
        raise InvalidInput("args must be a list and kwargs an object, of plain JSON values")
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise InvalidInput(f"{service}.{method} does not take {', '.join(unknown)} remotely")
    target = getattr(getattr(client, service), method)
    _check_arguments(f"{service}.{method}", target, args, kwargs)
    replacement = _guard(state, client, service, method, args, kwargs)
    result = replacement() if replacement is not None else target(*args, **kwargs)
    return {"result": codec.encode(result)}


def _check_arguments(name: str, target: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> None:
    """Refuse, as a 400, what the library would trip over deep inside (a 500 tells the user nothing).

    The library's own annotations say what each parameter takes; only the few shapes the
    allowed calls use are known here, and anything else is refused rather than passed on.
    """
    signature = inspect.signature(target)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidInput(f"{name}: {exc}") from None
    for param, value in bound.arguments.items():
        annotation = str(signature.parameters[param].annotation)
        if value is None and "None" in annotation:
            continue
        base = annotation.split(" | ")[0]
        if base == "bool":
            ok = isinstance(value, bool)
        elif base == "int":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        elif base == "str":
            ok = isinstance(value, str)
        elif base.startswith("dict["):
            ok = isinstance(value, dict)
        elif base == "Sequence[str]":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        else:
            ok = False
        if not ok:
            raise InvalidInput(f"{name}: {param} must be {_WANTED.get(base, base)}")


_WANTED = {
    "bool": "true or false",
    "int": "a whole number, 0 or more",
    "str": "a string",
    "dict[str, Any]": "an object",
    "Sequence[str]": "a list of strings",
}


def _digests(body: Any, name: str) -> list[str]:
    if not isinstance(body, dict) or not isinstance(body.get(name), list):
        raise InvalidInput(f'The body must be {{"{name}": [...]}}')
    items = body[name]
    if len(items) > MAX_DIGESTS:
        raise InvalidInput(f"At most {MAX_DIGESTS} per request")
    return items


@router.post("/datasets/{dataset_id}/versions/{version}/missing")
def missing(
    dataset_id: str, version: str, client: TeamClient, body: dict[str, Any] | None = Body(default=None)
) -> dict[str, Any]:
    digests = _digests(body, "digests")
    for digest in digests:
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise InvalidInput(f"Not a BLAKE3 digest: {str(digest)[:80]!r}")
    files = version_files(client, dataset_id, version)
    wanted = sorted(set(digests) - {EMPTY_DIGEST})
    present = files.content.index.locate(wanted)
    return {"missing": [d for d in wanted if d not in present]}


@router.post("/datasets/{dataset_id}/versions/{version}/downloads")
def downloads(
    dataset_id: str,
    version: str,
    request: Request,
    client: TeamClient,
    state: State,
    body: dict[str, Any] | None = Body(default=None),
) -> dict[str, Any]:
    """Where to GET each file: a URL, and for a file packed with others, the byte range in it."""
    keys = [clean_key(k) for k in _digests(body, "keys")]
    files = version_files(client, dataset_id, version)
    return {"files": download_plan(state, files, str(request.base_url).rstrip("/"), keys)}


@router.post("/datasets/{dataset_id}/versions/{version}/link")
def link(
    dataset_id: str,
    version: str,
    client: TeamClient,
    state: State,
    body: dict[str, Any] | None = Body(default=None),
) -> dict[str, Any]:
    entries_raw = _digests(body, "files")
    entries: list[tuple[str, str, int]] = []
    for item in entries_raw:
        if not isinstance(item, dict):
            raise InvalidInput("Each file is {path, digest, size}")
        path = clean_key(item.get("path"))
        digest, size = item.get("digest"), item.get("size")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise InvalidInput(f"Not a BLAKE3 digest for {path}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(f"Bad size for {path}")
        entries.append((path, digest, size))
    current = client.versions.literal(f"{dataset_id}:{version}")
    if current.is_committed:
        from datakeep.errors import VersionCommitted

        raise VersionCommitted(f"Dataset version {current.ref} is committed: its files cannot change")
    updated = absorb_uploads(state, client, current)
    if entries:
        updated = client.files.link(current.ref, entries)
    return {"result": codec.encode(updated)}
