"""Gradient's file protocol: ``POST /datasets/{id}/versions/{ver}/s3/preSignedUrls``.

Gradient's clients never hold storage credentials. They name S3 calls (``putObject``,
``getObject``, ``listObjectsV2`` ...) with version-relative keys and get back one URL per call,
which they then use with plain HTTP. Here is how each call is answered:

- ``putObject`` / ``uploadPart``: a presigned S3 URL for the version's *upload area*,
  ``uploads/<team>/<dataset>/<version>/<key>`` on the dataset's provider. The bytes go straight
  from the client to S3. ``createMultipartUpload`` and ``completeMultipartUpload`` are executed by
  the server, which returns their result in ``url``, as Gradient's did.
- Committing the version (``POST .../versions/{ver}`` with ``isCommitted``) first *absorbs* the
  upload area: each uploaded object is hashed and stored content-addressed by the storage engine,
  so content the provider already holds (from any version) is not stored twice, and the version's
  manifest gains the files. Then the upload area is emptied and the version committed, in one
  catalog transaction: killed at any point, the version is either committed with every file or
  still uncommitted, and committing again finishes the job.
- ``getObject``: a presigned S3 URL for the file's stored object when it is stored whole; a small
  file packed with others (under 1 MiB, see ``storage.content.PACK_THRESHOLD``) and every file of a
  ``local`` provider are streamed by the server through a signed URL of its own.
- ``listObjectsV2``, ``headObject`` and ``deleteObject`` need the manifest, so they are answered by
  the server itself, through signed URLs (:mod:`datakeep.server.tokens`) that carry no API key.

Every URL is scoped to one version and key, lives ``URL_TTL_SECONDS``, and no write URL is ever
issued for a committed version.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import StreamingResponse

from datakeep.client import Client
from datakeep.domain.models import Dataset, FileEntry, Version
from datakeep.errors import (
    FileNotFoundInVersion,
    InvalidInput,
    InvalidPath,
    StorageError,
    VersionCommitted,
)
from datakeep.server.state import ServerState, State, TeamClient
from datakeep.server.tokens import Grant

if TYPE_CHECKING:
    from datakeep.providers.base import Provider
    from datakeep.storage.content import ContentStore

router = APIRouter()

UPLOADS = "uploads/"
S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
#: Calls in one presign request; Gradient's clients send at most a few dozen.
MAX_CALLS = 1000
MAX_LIST_KEYS = 1000
#: Objects fetched at once while absorbing an upload area.
ABSORB_WORKERS = 8
_READ_CHUNK = 1024 * 1024


def clean_key(raw: Any, *, allow_empty: bool = False, directory: bool = False) -> str:
    """A client's version-relative key (``/a/b``, ``a//b``, ``a/b``) in canonical form (``a/b``).

    Anything that could name a place outside the version (``..``, ``.``, NUL, backslashes) is
    refused rather than normalised away, so a key means one thing everywhere.
    """
    if not isinstance(raw, str):
        raise InvalidPath("Key must be a string")
    parts = [p for p in raw.split("/") if p != ""]
    for part in parts:
        if part in (".", "..") or "\x00" in part or "\\" in part or len(part.encode()) > 255:
            raise InvalidPath(f"Invalid key in a dataset version: {raw!r}", hint="Use a plain relative path")
    if not parts and not allow_empty:
        raise InvalidPath("A key is required", hint="Name a file in the version")
    key = "/".join(parts)
    if directory and key:
        key += "/"
    if len(key.encode()) > 900:
        raise InvalidPath("Key is too long")
    return key


def staging_prefix(team_id: str, version: Version) -> str:
    return f"{UPLOADS}{team_id}/{version.dataset_id}/{version.version}/"


@dataclass
class VersionFiles:
    """One version's files as the protocol sees them: the manifest plus the upload area."""

    client: Client
    team_id: str
    dataset: Dataset
    version: Version
    #: Directory listings already read, by directory: a request naming many files of one
    #: directory (a download plan) reads that directory's tree once, not once per file.
    _listings: dict[str, dict[str, FileEntry]] = field(default_factory=dict, repr=False)

    @property
    def provider(self) -> Provider:
        return self.client.ctx.provider(self.dataset.storage_provider.id)

    @cached_property
    def content(self) -> ContentStore:
        # One store per request, so the trees it decodes stay cached for the request's lookups.
        return self.client.ctx.content(self.dataset)

    @property
    def staging(self) -> str:
        return staging_prefix(self.team_id, self.version)

    def refuse_writes(self) -> None:
        if self.version.is_committed:
            raise VersionCommitted(
                f"Dataset version {self.version.ref} is committed: its files cannot change",
                hint="Create a new version: datakeep datasets versions create",
            )

    def staged(self, key: str) -> int | None:
        """Size of the uploaded object for ``key``, if the upload area holds one."""
        if self.version.is_committed:
            return None
        try:
            return self.provider.stat(self.staging + key).size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"Storage provider failed: {exc}") from exc

    def manifest_entry(self, key: str) -> tuple[str, int] | None:
        """``(digest, size)`` of the file ``key`` in the version's manifest."""
        if not self.version.root:
            return None
        directory, _, name = key.rpartition("/")
        listing = self._listings.get(directory)
        if listing is None:
            try:
                found = self.content.list(self.version.root, directory or "/")
            except FileNotFoundInVersion:
                found = []
            listing = self._listings[directory] = {e.path: e for e in found if not e.is_dir}
        entry = listing.get(name)
        if entry is None or entry.digest is None or entry.size is None:
            return None
        return entry.digest, entry.size

    def keys(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every ``(key, size)`` whose key starts with ``prefix``, in key order, uploads winning."""
        merged: dict[str, int] = {}
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if self.version.root:
            with contextlib.suppress(FileNotFoundInVersion):
                for path, _digest, size in self.content.entries(self.version.root, directory or "/"):
                    if path.startswith(prefix):
                        merged[path] = size
        if not self.version.is_committed:
            try:
                for info in self.provider.list(self.staging + directory, recursive=True):
                    rel = info.key[len(self.staging) :]
                    if not info.is_dir and rel.startswith(prefix):
                        merged[rel] = info.size
            except FileNotFoundError:
                pass
        for key in sorted(merged):
            yield key, merged[key]


def version_files(client: Client, dataset_id: str, version: str) -> VersionFiles:
    """The files of a version the caller's team can see: another team's ID fails as a missing one."""
    return files_of(client, client.versions.literal(f"{dataset_id}:{version}"))


def files_of(client: Client, version: Version) -> VersionFiles:
    dataset = client.datasets.get(version.dataset_id)
    return VersionFiles(client=client, team_id=client.ctx.team_id, dataset=dataset, version=version)


# THE PRESIGN ROUTE


@router.post("/datasets/{dataset_id}/versions/{version}/s3/preSignedUrls", tags=["files"])
def presign(
    dataset_id: str,
    version: str,
    request: Request,
    client: TeamClient,
    state: State,
    body: dict[str, Any] | None = Body(default=None),
) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("calls"), list):
        raise InvalidInput('The body must be {"calls": [{"method": ..., "params": {...}}, ...]}')
    calls = body["calls"]
    if len(calls) > MAX_CALLS:
        raise InvalidInput(f"At most {MAX_CALLS} calls per request")
    files = version_files(client, dataset_id, version)
    base = str(request.base_url).rstrip("/")
    answers = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("method"), str):
            raise InvalidInput("Each call needs a method")
        params = call.get("params") or {}
        if not isinstance(params, dict):
            raise InvalidInput("A call's params must be a JSON object")
        answers.append(_answer(state, files, base, call["method"], params))
    return answers


def _signed_url(state: ServerState, files: VersionFiles, base: str, op: str, key: str, **params: Any) -> str:
    token = state.signer.sign(
        op,
        team_id=files.team_id,
        dataset_id=files.version.dataset_id,
        version=files.version.version,
        key=key,
        params=params,
    )
    return f"{base}/_files/{token}"


def _s3_client(files: VersionFiles) -> tuple[Any, str, str]:
    """boto3 client, bucket and key prefix of an S3 provider, for the calls the server executes."""
    provider = files.provider
    client = getattr(provider, "client", None)
    bucket = getattr(provider, "bucket", None)
    if provider.type != "s3" or client is None or bucket is None:
        raise InvalidInput(
            f"{files.dataset.storage_provider.type} storage does not support multipart uploads",
            hint="Upload smaller files, or use an s3 storage provider",
        )
    return client, str(bucket), str(getattr(provider, "prefix", ""))


def _answer(
    state: ServerState, files: VersionFiles, base: str, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    ttl = state.signer.ttl
    provider = files.provider
    if method == "listObjectsV2":
        prefix = clean_key(
            params.get("Prefix", ""), allow_empty=True, directory=str(params.get("Prefix", "")).endswith("/")
        )
        delimiter = params.get("Delimiter", "/")
        if delimiter not in ("", "/"):
            raise InvalidInput("Delimiter must be '/' or ''")
        max_keys = params.get("MaxKeys", MAX_LIST_KEYS)
        if not isinstance(max_keys, int) or isinstance(max_keys, bool) or max_keys < 1:
            raise InvalidInput("MaxKeys must be a positive integer")
        start = params.get("ContinuationToken") or ""
        if not isinstance(start, str):
            raise InvalidInput("ContinuationToken must be a string")
        url = _signed_url(
            state,
            files,
            base,
            "list",
            prefix,
            delimiter=delimiter,
            max_keys=min(max_keys, MAX_LIST_KEYS),
            start=start,
        )
        return {"url": url, "expires_in": ttl}
    if method == "headObject":
        return {
            "url": _signed_url(state, files, base, "head", clean_key(params.get("Key"))),
            "expires_in": ttl,
        }
    if method == "getObject":
        return {"url": _get_url(state, files, base, clean_key(params.get("Key"))), "expires_in": ttl}
    if method == "deleteObject":
        key = clean_key(params.get("Key"))
        files.refuse_writes()
        return {"url": _signed_url(state, files, base, "delete", key), "expires_in": ttl}
    if method == "putObject":
        key = clean_key(params.get("Key"))
        files.refuse_writes()
        if provider.type == "s3":
            url = provider.presign("PUT", files.staging + key, expires=ttl)
        else:
            url = _signed_url(state, files, base, "put", key)
        return {"url": url, "expires_in": ttl}
    if method == "createMultipartUpload":
        key = clean_key(params.get("Key"))
        files.refuse_writes()
        s3, bucket, prefix = _s3_client(files)
        created = s3.create_multipart_upload(Bucket=bucket, Key=prefix + files.staging + key)
        return {"url": {"UploadId": created["UploadId"], "Key": key}}
    if method == "uploadPart":
        key = clean_key(params.get("Key"))
        files.refuse_writes()
        upload_id, part = params.get("UploadId"), params.get("PartNumber")
        if not isinstance(upload_id, str) or not isinstance(part, int) or not 1 <= part <= 10000:
            raise InvalidInput("uploadPart needs UploadId and a PartNumber from 1 to 10000")
        s3, bucket, prefix = _s3_client(files)
        url = s3.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": bucket,
                "Key": prefix + files.staging + key,
                "UploadId": upload_id,
                "PartNumber": part,
            },
            ExpiresIn=ttl,
        )
        return {"url": url, "expires_in": ttl}
    if method in ("completeMultipartUpload", "abortMultipartUpload"):
        key = clean_key(params.get("Key"))
        files.refuse_writes()
        upload_id = params.get("UploadId")
        if not isinstance(upload_id, str):
            raise InvalidInput(f"{method} needs UploadId")
        s3, bucket, prefix = _s3_client(files)
        full = prefix + files.staging + key
        if method == "abortMultipartUpload":
            s3.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id)
            return {"url": {}}
        parts = (params.get("MultipartUpload") or {}).get("Parts")
        if not isinstance(parts, list) or not parts:
            raise InvalidInput("completeMultipartUpload needs MultipartUpload.Parts")
        clean_parts = []
        for p in parts:
            if (
                not isinstance(p, dict)
                or not isinstance(p.get("PartNumber"), int)
                or not isinstance(p.get("ETag"), str)
            ):
                raise InvalidInput("Each part needs ETag and PartNumber")
            etag = p["ETag"] if p["ETag"].startswith('"') else f'"{p["ETag"]}"'
            clean_parts.append({"ETag": etag, "PartNumber": p["PartNumber"]})
        done = s3.complete_multipart_upload(
            Bucket=bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": clean_parts}
        )
        return {"url": {"Key": key, "ETag": str(done.get("ETag", "")).strip('"')}}
    raise InvalidInput(
        f"Unsupported call {method!r}",
        hint="Supported: headObject, getObject, putObject, deleteObject, listObjectsV2, "
        "createMultipartUpload, uploadPart, completeMultipartUpload, abortMultipartUpload",
    )


def _staged_get_url(state: ServerState, files: VersionFiles, base: str, key: str) -> str:
    """An uploaded, not yet absorbed file: straight from S3, or through the server for ``local``."""
    if files.provider.type == "s3":
        return files.provider.presign("GET", files.staging + key, expires=state.signer.ttl)
    return _signed_url(state, files, base, "get", key)


def _get_url(state: ServerState, files: VersionFiles, base: str, key: str) -> str:
    ttl = state.signer.ttl
    provider = files.provider
    if files.staged(key) is not None:
        return _staged_get_url(state, files, base, key)
    entry = files.manifest_entry(key)
    if entry is None:
        # Like S3: the URL is issued, and using it answers 404.
        return _signed_url(state, files, base, "get", key)
    digest, size = entry
    location = files.content.index.locate([digest]).get(digest)
    if provider.type == "s3" and location is not None and location.whole:
        return provider.presign("GET", location.key, expires=ttl)
    return _signed_url(state, files, base, "get", key, digest=digest, size=size)


def download_plan(
    state: ServerState, files: VersionFiles, base: str, keys: list[str]
) -> list[dict[str, Any]]:
    """For datakeep's own client, which can send a Range header: every file straight from S3,
    packed small files included (a ranged GET of the pack), so the server moves no bytes."""
    ttl = state.signer.ttl
    provider = files.provider
    plan: list[dict[str, Any]] = []
    entries: dict[str, tuple[str, int]] = {}
    for key in keys:
        size = files.staged(key)
        if size is not None:
            plan.append(
                {"key": key, "url": _staged_get_url(state, files, base, key), "offset": None, "size": size}
            )
            continue
        entry = files.manifest_entry(key)
        if entry is None:
            raise FileNotFoundInVersion(f"File not found in version: {key}")
        entries[key] = entry
    located = files.content.index.locate({d for d, _ in entries.values()})
    for key, (digest, size) in entries.items():
        location = located.get(digest)
        if provider.type == "s3" and location is not None:
            url = provider.presign("GET", location.key, expires=ttl)
            offset = None if location.whole else location.offset
            plan.append({"key": key, "url": url, "offset": offset, "size": size, "digest": digest})
        else:
            plan.append(
                {"key": key, "url": _signed_url(state, files, base, "get", key, digest=digest, size=size),
                 "offset": None, "size": size, "digest": digest}
            )  # fmt: skip
    return plan


# THE SERVER'S OWN SIGNED URLS


def _grant_files(state: ServerState, grant: Grant) -> VersionFiles:
    client = state.client_for(grant.team_id)
    return version_files(client, grant.dataset_id, grant.version)


def _s3_error(status: int, code: str, message: str, key: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Key>{escape(key)}</Key></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


@router.api_route("/_files/{token}", methods=["GET", "HEAD", "PUT", "DELETE"], include_in_schema=False)
async def signed(token: str, request: Request, state: State) -> Response:
    from starlette.concurrency import run_in_threadpool

    grant = state.signer.verify(token)
    method = request.method
    expected = {"list": "GET", "head": "HEAD", "get": "GET", "put": "PUT", "delete": "DELETE"}[grant.op]
    if method != expected and not (grant.op in ("get", "list") and method == "HEAD"):
        return _s3_error(405, "MethodNotAllowed", f"This URL is for {expected}", grant.key)
    if grant.op == "put":
        return await _receive(state, grant, request)
    response: Response = await run_in_threadpool(_signed_sync, state, grant, method)
    return response


def _signed_sync(state: ServerState, grant: Grant, method: str) -> Response:
    files = _grant_files(state, grant)
    if grant.op == "list":
        return _list_response(files, grant)
    if grant.op == "head":
        size = files.staged(grant.key)
        if size is None:
            entry = files.manifest_entry(grant.key)
            if entry is None:
                return Response(status_code=404)
            size = entry[1]
        return Response(
            status_code=200, headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        )
    if grant.op == "get":
        return _stream(files, grant.key, head=method == "HEAD", pinned=grant.params)
    if grant.op == "delete":
        files.refuse_writes()
        with contextlib.suppress(FileNotFoundError):
            files.provider.delete(files.staging + grant.key)
        if files.manifest_entry(grant.key) is not None:
            files.client.files.delete(files.version.ref, paths=[grant.key])
        return Response(status_code=204)
    raise InvalidInput(f"Unknown operation {grant.op}")


def _stream(files: VersionFiles, key: str, *, head: bool, pinned: dict[str, Any]) -> Response:
    """The bytes of ``key``; ``pinned`` (signed into the URL) may already name its content, which
    spares a manifest lookup per file when a client downloads a version file by file."""
    provider = files.provider
    size = None if pinned.get("digest") else files.staged(key)
    if size is not None:
        reader = _object_reader(provider, files.staging + key, 0, size)
    else:
        if pinned.get("digest"):
            digest, size = str(pinned["digest"]), int(pinned["size"])
        else:
            entry = files.manifest_entry(key)
            if entry is None:
                return _s3_error(404, "NoSuchKey", "The specified key does not exist.", key)
            digest, size = entry
        if size == 0:
            reader = iter(())
        else:
            location = files.content.index.locate([digest]).get(digest)
            if location is None:
                return _s3_error(500, "InternalError", "The file's content is missing from storage", key)
            reader = _object_reader(provider, location.key, location.offset, location.size)
    headers = {"Content-Length": str(size)}
    if head:
        return Response(status_code=200, headers=headers, media_type="application/octet-stream")
    return StreamingResponse(reader, headers=headers, media_type="application/octet-stream")


def _object_reader(provider: Provider, key: str, offset: int, size: int) -> Iterator[bytes]:
    done = 0
    while done < size:
        n = min(_READ_CHUNK, size - done)
        yield provider.read(key, offset + done, n)
        done += n


def _list_response(files: VersionFiles, grant: Grant) -> Response:
    prefix = grant.key
    delimiter = str(grant.params.get("delimiter", "/"))
    max_keys = int(grant.params.get("max_keys", MAX_LIST_KEYS))
    start = str(grant.params.get("start") or "")
    # A virtual bucket prefix, never empty: Gradient's client strips <Prefix> from every <Key>
    # and cannot handle an empty <Prefix/>.
    root = f"{files.version.dataset_id}/{files.version.version}/"
    # One sorted sequence of items, each a file or (with a delimiter) a "sub/" prefix, as S3 pages them.
    items: list[tuple[str, int | None]] = []
    for key, size in files.keys(prefix):
        rest = key[len(prefix) :]
        if delimiter and "/" in rest:
            sub = prefix + rest.split("/", 1)[0] + "/"
            if not items or items[-1][0] != sub:
                items.append((sub, None))
        else:
            items.append((key, size))
    items.sort(key=lambda item: item[0])
    after = [item for item in items if item[0] > start] if start else items
    page = after[:max_keys]
    next_token = page[-1][0] if len(after) > max_keys else ""
    contents = [(k, s) for k, s in page if s is not None]
    common = [k for k, s in page if s is None]
    count = len(page)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<ListBucketResult xmlns="{S3_XMLNS}">',
        "<Name>datakeep</Name>",
        f"<Prefix>{escape(root + prefix)}</Prefix>",
        f"<KeyCount>{count}</KeyCount>",
        f"<MaxKeys>{max_keys}</MaxKeys>",
    ]
    if delimiter:
        parts.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
    parts.append(f"<IsTruncated>{'true' if next_token else 'false'}</IsTruncated>")
    for key, size in contents:
        parts.append(f"<Contents><Key>{escape(root + key)}</Key><Size>{size}</Size></Contents>")
    for item in common:
        parts.append(f"<CommonPrefixes><Prefix>{escape(root + item)}</Prefix></CommonPrefixes>")
    if next_token:
        parts.append(f"<NextContinuationToken>{escape(next_token)}</NextContinuationToken>")
    parts.append("</ListBucketResult>")
    return Response("\n".join(parts), media_type="application/xml")


def _tmp_dir(state: ServerState) -> Path:
    """Scratch space for bytes in transit (uploads, absorbs): one place under the server's home."""
    tmp_dir = state.settings.home / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return tmp_dir


async def _receive(state: ServerState, grant: Grant, request: Request) -> Response:
    """A PUT to a ``local`` provider's upload area: the server stores the bytes itself."""
    from starlette.concurrency import run_in_threadpool

    files = await run_in_threadpool(_grant_files, state, grant)
    files.refuse_writes()
    fd, name = tempfile.mkstemp(dir=_tmp_dir(state), prefix="upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        await run_in_threadpool(files.provider.upload, files.staging + grant.key, Path(name))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    return Response(status_code=200, headers={"ETag": '"datakeep"'})


# COMMIT AND DELETE


def absorb_uploads(state: ServerState, client: Client, version: Version) -> Version:
    """Move what Gradient-style clients uploaded for ``version`` into its manifest (deduplicated)."""
    if version.is_committed:
        return version
    files = files_of(client, version)
    provider = files.provider
    try:
        staged = [o for o in provider.list(files.staging, recursive=True) if not o.is_dir]
    except FileNotFoundError:
        staged = []
    if not staged:
        return version
    with tempfile.TemporaryDirectory(dir=_tmp_dir(state), prefix="absorb-") as tmp:
        base = Path(tmp)

        def fetch(key: str) -> str | None:
            rel = clean_key(key[len(files.staging) :])
            dest = base.joinpath(*rel.split("/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                provider.download(key, dest)
            except FileNotFoundError:
                # Another commit of this version absorbed it first; that one put it in the
                # manifest before removing the upload, so there is nothing left to do for it.
                return None
            return key

        with ThreadPoolExecutor(max_workers=ABSORB_WORKERS, thread_name_prefix="dk-absorb") as pool:
            fetched = [key for key in pool.map(fetch, [o.key for o in staged]) if key is not None]
        if not fetched:
            return client.versions.literal(version.ref)
        updated = client.files.put(version.ref, source_paths=[str(base) + os.sep], target_path="/")
    for key in fetched:
        with contextlib.suppress(OSError):
            provider.delete(key)
    return updated


def commit_with_uploads(state: ServerState, client: Client, version: Version) -> Version:
    """Every route that commits goes through here, so no commit seals a manifest that is missing
    what a Gradient-style client uploaded for the version."""
    absorb_uploads(state, client, version)
    return client.versions.commit(version.ref)


def delete_with_uploads(client: Client, ref: str) -> Version:
    """Delete a version, then (best effort) empty its upload area: what is left is only garbage."""
    deleted = client.versions.delete(ref)
    with contextlib.suppress(Exception):
        files = files_of(client, deleted)
        for info in list(files.provider.list(files.staging, recursive=True)):
            if not info.is_dir:
                files.provider.delete(info.key)
    return deleted
