"""Fetching an experiment dataset from S3: one object, a folder (prefix) or a whole bucket.

The order of operations is the point of this module: resolve what the URI names, check the
pinned ETag and VersionId against the store *before* downloading, download in parallel into
a resumable staging directory next to the destination, verify the bytes against the ETag,
expand archives, and only then rename the result into place. A run therefore never sees a
dataset that is partial, unverified or different from the one it asked for.

Credentials: keys given for the dataset win; otherwise boto3's usual chain (``AWS_*``
environment variables, ``~/.aws`` profiles, instance roles) is used; with nothing at all the
requests are anonymous (unsigned), which is what public buckets need.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
from botocore import UNSIGNED
from botocore.config import Config

from datakeep.errors import (
    DatakeepError,
    Forbidden,
    IntegrityError,
    InvalidInput,
    InvalidPath,
    NotFound,
    StorageError,
)
from datakeep.experiments.archives import expand_archive, is_archive
from datakeep.experiments.budget import ByteBudget, disk_full_is_quota
from datakeep.experiments.etag import normalize_etag, parse_etag, verify_file
from datakeep.experiments.options import DatasetSpec, S3Location
from datakeep.storage.transfer import Progress, parallel

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: Ranged GETs of this size are the unit of parallelism and of resumption.
CHUNK_SIZE = 8 * 2**20
DEFAULT_WORKERS = 8
#: Exact part sizes are asked for (one HEAD each) up to this many parts.
MAX_PART_HEADS = 64
_RESUME = "Run the same command again: what was downloaded is kept and the download resumes"


# CLIENT


@dataclass(frozen=True)
class S3Access:
    """How to reach a dataset's store. Keys are kept out of ``repr`` so they never reach a log."""

    endpoint: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    region: str | None = None

    @classmethod
    def for_spec(cls, spec: DatasetSpec) -> S3Access:
        return cls(
            endpoint=spec.aws_endpoint,
            access_key_id=spec.aws_access_key_id,
            secret_access_key=spec.aws_secret_access_key,
        )


def make_client(access: S3Access, *, workers: int = DEFAULT_WORKERS) -> S3Client:
    """A client signed with the given keys, else boto3's own chain, else anonymous."""
    try:
        return _make_client(access, workers)
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        raise InvalidInput(
            f"Cannot set up S3 access: {exc}",
            hint="Check AWS_PROFILE and ~/.aws/config, and --datasetAwsEndpoint (a URL such as http://host:9000)",
        ) from exc


def _make_client(access: S3Access, workers: int) -> S3Client:
    session = boto3.Session()
    region = access.region or session.region_name or "us-east-1"
    options: dict[str, Any] = {
        "retries": {"max_attempts": 5, "mode": "standard"},
        "max_pool_connections": max(10, workers * 2),
    }
    if access.access_key_id and access.secret_access_key:
        client: S3Client = session.client(
            "s3",
            endpoint_url=access.endpoint,
            region_name=region,
            aws_access_key_id=access.access_key_id,
            aws_secret_access_key=access.secret_access_key,
            config=Config(**options),
        )
        return client
    if session.get_credentials() is None:
        options["signature_version"] = UNSIGNED
    anonymous: S3Client = session.client(
        "s3", endpoint_url=access.endpoint, region_name=region, config=Config(**options)
    )
    return anonymous


def is_anonymous(client: S3Client) -> bool:
    return getattr(client.meta.config, "signature_version", None) is UNSIGNED


# WHAT THE URI NAMES


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    etag: str
    version_id: str | None = None
    md5_based: bool = True


@dataclass(frozen=True)
class RemoteDataset:
    """The resolved source: ``kind`` is ``object``, ``folder`` or ``bucket``.

    ``fingerprint`` changes whenever the content does: the object's ETag, or for a folder a
    digest of every key, size and ETag listed. Shared copies record it to notice staleness.
    """

    kind: str
    location: S3Location
    objects: tuple[RemoteObject, ...]
    spec: DatasetSpec

    @property
    def size(self) -> int:
        return sum(o.size for o in self.objects)

    @property
    def etag(self) -> str | None:
        return self.objects[0].etag if self.kind == "object" else None

    @property
    def version_id(self) -> str | None:
        return self.objects[0].version_id if self.kind == "object" else None

    @property
    def fingerprint(self) -> str:
        if self.kind == "object":
            return self.objects[0].etag
        listing = "\n".join(f"{o.key}\t{o.size}\t{o.etag}" for o in self.objects)
        return "list-" + hashlib.sha256(listing.encode()).hexdigest()[:32]

    @property
    def prefix(self) -> str:
        key = self.location.key
        return key if key == "" or key.endswith("/") else key + "/"


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _translate(exc: Exception, spec: DatasetSpec, what: str) -> DatakeepError:
    """One place that turns boto errors into ours, with the dataset named and the fix given."""
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return Forbidden(f"Dataset {spec.name!r}: no credentials for {what}")
    if isinstance(exc, botocore.exceptions.ClientError):
        code, status = _error_code(exc), _status(exc)
        if status == 403 or code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return Forbidden(
                f"Dataset {spec.name!r}: access denied to {what}",
                hint="Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE for this bucket "
                "(or --datasetAwsAccessKeyId/--datasetAwsSecretAccessKey); without any, requests are anonymous",
            )
        if code == "NoSuchBucket":
            return NotFound(
                f"Dataset {spec.name!r}: bucket {spec.location.bucket!r} does not exist",
                hint="Check the bucket in --datasetUri, and --datasetAwsEndpoint for a store other than AWS",
            )
        if status == 404 or code in ("NoSuchKey", "NoSuchVersion", "404"):
            return NotFound(f"Dataset {spec.name!r}: {what} does not exist ({code or status})")
        return StorageError(f"Dataset {spec.name!r}: {what} failed: {code or status} {exc}", hint=_RESUME)
    if isinstance(exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectTimeoutError):
        return StorageError(
            f"Dataset {spec.name!r}: {what} failed: {exc}",
            hint="Check --datasetAwsEndpoint and that the store is reachable from here; "
            "what was already downloaded is kept for the next run",
        )
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return StorageError(f"Dataset {spec.name!r}: {what} failed: {exc}", hint=_RESUME)
    raise exc


def _listing(client: S3Client, bucket: str, prefix: str, spec: DatasetSpec) -> list[RemoteObject]:
    found: list[RemoteObject] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/") and item.get("Size", 0) == 0:
                    continue  # a "folder" placeholder made by consoles, not data
                found.append(
                    RemoteObject(key=key, size=int(item.get("Size", 0)), etag=normalize_etag(item["ETag"]))
                )
    except Exception as exc:
        raise _translate(exc, spec, f"listing s3://{bucket}/{prefix}") from exc
    return found


def _versioning_status(client: S3Client, bucket: str) -> str | None:
    """``Enabled``/``Suspended``, ``""`` when never enabled, ``None`` when we may not ask."""
    try:
        return str(client.get_bucket_versioning(Bucket=bucket).get("Status", ""))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        return None


def resolve(client: S3Client, spec: DatasetSpec) -> RemoteDataset:
    """Find out what ``spec.uri`` names and check its ETag and VersionId, downloading nothing.

    A URI without a trailing slash may still be a folder (``s3://b/dataset-dir``): when no
    object has that key but keys start with ``key/``, it is one, and a pinned ETag or
    VersionId is dropped with a warning, as for any folder.
    """
    loc = spec.location
    if loc.looks_like_folder:
        kind = "bucket" if loc.key == "" else "folder"
        folder = spec.as_folder() if spec.etag or spec.version_id else spec
        objects = _listing(client, loc.bucket, loc.key, spec)
        if not objects and kind == "folder":
            raise NotFound(f"Dataset {spec.name!r}: nothing under {loc.uri}")
        return RemoteDataset(kind=kind, location=loc, objects=tuple(objects), spec=folder)

    head_args: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key}
    if spec.version_id:
        head_args["VersionId"] = spec.version_id
    try:
        head = client.head_object(**head_args)
    except botocore.exceptions.ClientError as exc:
        status = _status(exc)
        if status == 404 or (spec.version_id and status == 400):
            # A folder named without its slash (``s3://b/dataset-dir``): its VersionId and
            # ETag are ignored, so the version error above must not win over it.
            objects = _listing(client, loc.bucket, loc.key + "/", spec)
            if objects:
                return RemoteDataset(
                    kind="folder", location=loc, objects=tuple(objects), spec=spec.as_folder()
                )
        if spec.version_id and status in (400, 404):
            _explain_version_error(client, spec, loc, exc)
        if status == 404:
            raise NotFound(
                f"Dataset {spec.name!r}: no object or folder at {loc.uri}",
                hint="Check the bucket and key (keys are case-sensitive)",
            ) from exc
        raise _translate(exc, spec, f"reading {loc.uri}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise _translate(exc, spec, f"reading {loc.uri}") from exc

    found = normalize_etag(head["ETag"])
    expected = normalize_etag(spec.etag) if spec.etag else None
    if expected is not None and expected != found:
        raise IntegrityError(
            f"Dataset {spec.name!r}: ETag mismatch for {loc.uri}: expected {expected}, found {found}",
            hint="The object changed since the ETag was taken; pin the new ETag, or a --datasetVersionId",
            expected=expected,
            found=found,
        )
    encryption = head.get("ServerSideEncryption")
    obj = RemoteObject(
        key=loc.key,
        size=int(head["ContentLength"]),
        etag=found,
        version_id=head.get("VersionId"),
        md5_based=encryption != "aws:kms" and not head.get("SSECustomerAlgorithm"),
    )
    return RemoteDataset(kind="object", location=loc, objects=(obj,), spec=spec)


def _explain_version_error(
    client: S3Client, spec: DatasetSpec, loc: S3Location, exc: botocore.exceptions.ClientError
) -> None:
    status = _versioning_status(client, loc.bucket)
    if status == "":
        raise InvalidInput(
            f"Dataset {spec.name!r}: bucket {loc.bucket!r} has no versioning, so version "
            f"{spec.version_id!r} of {loc.uri} cannot be fetched",
            hint="Drop --datasetVersionId (use 'none'), or enable versioning on the bucket and pin a version made since",
        ) from exc
    where = "" if status else " (or the bucket has no versioning; its status could not be read)"
    raise NotFound(
        f"Dataset {spec.name!r}: version {spec.version_id!r} of {loc.uri} does not exist{where}",
        hint="List versions with: aws s3api list-object-versions --bucket BUCKET --prefix KEY",
    ) from exc


# DOWNLOAD


@dataclass(frozen=True)
class FetchResult:
    """What was placed where, for run records (no keys in here, ever)."""

    name: str
    uri: str
    kind: str
    path: Path
    etag: str | None
    version_id: str | None
    fingerprint: str
    size: int
    object_count: int
    verification: tuple[str, ...]
    warnings: tuple[str, ...]

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uri": self.uri,
            "kind": self.kind,
            "path": str(self.path),
            "etag": self.etag,
            "versionId": self.version_id,
            "size": self.size,
            "objects": self.object_count,
        }


class _ChunkState:
    """Which ranges of one object are on disk; saved so a re-run resumes where it stopped.

    Saved as runs of consecutive chunk numbers (``[[0, 41], [44, 50]]``): with parallel
    workers there are about as many runs as workers, so each save stays small even for an
    object of many thousands of chunks.
    """

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity
        self.done: set[int] = set()
        self._lock = threading.Lock()
        try:
            saved = json.loads(path.read_text())
            if saved.get("identity") == identity:
                self.done = set(saved.get("done", []))
                for first, last in saved.get("runs", []):
                    self.done.update(range(int(first), int(last) + 1))
        except (OSError, ValueError, TypeError):
            self.done = set()

    def _runs(self) -> list[list[int]]:
        runs: list[list[int]] = []
        for index in sorted(self.done):
            if runs and runs[-1][1] == index - 1:
                runs[-1][1] = index
            else:
                runs.append([index, index])
        return runs

    def mark(self, index: int) -> None:
        with self._lock:
            self.done.add(index)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps({"identity": self.identity, "runs": self._runs()}))
            os.replace(tmp, self.path)


def _get_range(
    client: S3Client, bucket: str, obj: RemoteObject, start: int, end: int, version_id: str | None
) -> Iterator[bytes]:
    args: dict[str, Any] = {"Bucket": bucket, "Key": obj.key, "Range": f"bytes={start}-{end}"}
    # Pinning the ETag (or the version) makes every range come from the same object even if
    # it is overwritten mid-download: S3 answers 412 instead of mixing two contents.
    if version_id:
        args["VersionId"] = version_id
    else:
        args["IfMatch"] = f'"{obj.etag}"'
    body = client.get_object(**args)["Body"]
    try:
        yield from body.iter_chunks(1024 * 1024)
    finally:
        body.close()


@dataclass
class _Download:
    """One object on its way to ``dest``: bytes land in ``part`` at their offsets."""

    obj: RemoteObject
    dest: Path
    part: Path
    state: _ChunkState
    version_id: str | None


def _prepare(
    obj: RemoteObject, dest: Path, *, pinned_version: bool
) -> tuple[_Download, list[tuple[int, int, int]]]:
    """Create ``dest.part`` (full size) and list the byte ranges still missing.

    ``dest.part.json`` lists finished ranges with the ETag/VersionId they belong to, so a
    changed object starts over rather than mixing two contents.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    state = _ChunkState(
        dest.with_name(dest.name + ".part.json"),
        {"key": obj.key, "etag": obj.etag, "version": obj.version_id, "size": obj.size, "chunk": CHUNK_SIZE},
    )
    if not part.exists():
        state.done.clear()
    with part.open("ab"):
        pass
    os.truncate(part, obj.size)
    ranges = [
        (i, start, min(start + CHUNK_SIZE, obj.size) - 1)
        for i, start in enumerate(range(0, obj.size, CHUNK_SIZE))
    ]
    download = _Download(obj, dest, part, state, obj.version_id if pinned_version else None)
    return download, ranges


def download_objects(
    client: S3Client,
    bucket: str,
    items: list[tuple[RemoteObject, Path]],
    *,
    spec: DatasetSpec,
    budget: ByteBudget,
    progress: Progress,
    workers: int = DEFAULT_WORKERS,
) -> None:
    """Download every ``(object, destination)`` with parallel ranged GETs, resuming earlier attempts.

    All ranges of all objects go through one bounded pool (the storage engine's
    :func:`~datakeep.storage.transfer.parallel`), so a folder of small files and one huge
    object both keep every worker busy.
    """
    total = sum(o.size for o, _ in items)
    budget.check_announced(total, what=f"Dataset {spec.name!r} ({spec.uri})")
    tasks: list[tuple[_Download, int, int, int]] = []
    downloads: list[_Download] = []
    progress.expect(len(items), total)
    for obj, dest in items:
        download, ranges = _prepare(obj, dest, pinned_version=bool(spec.version_id))
        downloads.append(download)
        resumed = sum(end - start + 1 for i, start, end in ranges if i in download.state.done)
        if resumed:
            budget.add(resumed, what=f"Dataset {spec.name!r} ({obj.key})")
            progress.advance(0, resumed)
        tasks.extend((download, *r) for r in ranges if r[0] not in download.state.done)

    def fetch_range(task: tuple[_Download, int, int, int]) -> None:
        download, index, start, end = task
        obj, label = download.obj, f"s3://{bucket}/{download.obj.key}"
        fd = os.open(download.part, os.O_WRONLY)
        try:
            offset = start
            for data in _get_range(client, bucket, obj, start, end, download.version_id):
                with disk_full_is_quota(f"Dataset {spec.name!r}", budget.label):
                    os.pwrite(fd, data, offset)
                offset += len(data)
                budget.add(len(data), what=f"Dataset {spec.name!r} ({obj.key})")
                progress.advance(0, len(data))
            if offset != end + 1:
                raise StorageError(f"Dataset {spec.name!r}: {label} ended early at byte {offset}")
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            if isinstance(exc, botocore.exceptions.ClientError) and _status(exc) == 412:
                raise IntegrityError(
                    f"Dataset {spec.name!r}: {label} changed during the download (ETag is no longer {obj.etag})",
                    hint="Run again to fetch the new content, or pin a --datasetVersionId",
                ) from exc
            raise _translate(exc, spec, f"downloading {label}") from exc
        finally:
            os.close(fd)
        download.state.mark(index)

    for _ in parallel(fetch_range, tasks, workers):
        pass
    for download in downloads:
        os.replace(download.part, download.dest)
        download.state.path.unlink(missing_ok=True)
        progress.advance(1, 0)


def _part_sizes(client: S3Client, bucket: str, obj: RemoteObject) -> tuple[list[int] | None, list[int]]:
    """Exact part sizes when the store reports them (HeadObject ``PartNumber``), else hints."""
    parsed = parse_etag(obj.etag)
    if parsed is None or parsed.parts is None:
        return None, []
    sizes: list[int] = []
    args: dict[str, Any] = {"Bucket": bucket, "Key": obj.key}
    if obj.version_id:
        args["VersionId"] = obj.version_id
    try:
        for number in range(1, min(parsed.parts, MAX_PART_HEADS) + 1):
            head = client.head_object(PartNumber=number, **args)
            if int(head.get("PartsCount") or 0) != parsed.parts:
                return None, sizes[:1]
            sizes.append(int(head["ContentLength"]))
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
        return None, sizes[:1]
    if len(sizes) == parsed.parts and sum(sizes) == obj.size:
        return sizes, sizes[:1]
    return None, sizes[:1]


def _safe_relative(key: str, prefix: str, spec: DatasetSpec) -> str:
    """A key's path under the dataset root; keys that would leave it are refused."""
    rel = key[len(prefix) :]
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or "\x00" in rel:
        raise InvalidPath(
            f"Dataset {spec.name!r}: key {key!r} cannot be stored under /data/{spec.name}",
            hint="Keys with '..' or empty names are refused; rename them in the bucket",
        )
    return posixpath.join(*parts)


@contextmanager
def _staging(dest: Path) -> Iterator[Path]:
    """A stable staging directory beside ``dest``: kept on failure so the next run resumes."""
    staging = dest.parent / f".{dest.name}.partial"
    staging.mkdir(parents=True, exist_ok=True)
    yield staging
    shutil.rmtree(staging, ignore_errors=True)


def fetch(
    remote: RemoteDataset,
    dest: Path,
    *,
    client: S3Client,
    budget: ByteBudget | None = None,
    progress: Progress | None = None,
    workers: int = DEFAULT_WORKERS,
    on_warning: Callable[[str], None] | None = None,
) -> FetchResult:
    """Download ``remote`` so that ``dest`` (which must not exist yet) holds the dataset.

    An object that is an archive is expanded into ``dest``; any other object is placed in
    it under its own file name; a folder or bucket keeps its key layout below the prefix.
    Every object's bytes are checked against its ETag before ``dest`` appears.
    """
    spec = remote.spec
    if dest.exists():
        raise InvalidInput(f"Dataset {spec.name!r}: {dest} already exists")
    budget = budget or ByteBudget(None, label=str(dest))
    warn = on_warning or (lambda _message: None)
    notes: list[str] = list(spec.warnings)
    checks: list[str] = []
    bucket = remote.location.bucket

    own_progress = progress is None
    bar = progress or Progress(f"Fetching {spec.name}", enabled=False)
    with _staging(dest) as staging, bar if own_progress else nullcontext(bar):
        data = staging / "data"
        if remote.kind == "object":
            obj = remote.objects[0]
            filename = posixpath.basename(obj.key)
            archive = is_archive(filename)
            target = (staging / "download" / filename) if archive else (data / filename)
            if not target.exists():
                # An archive is not counted against the volume: only what it expands to is
                # data (the caller sizes a real limit to hold both while expanding).
                download_objects(
                    client,
                    bucket,
                    [(obj, target)],
                    spec=spec,
                    budget=ByteBudget(None, label=budget.label) if archive else budget,
                    progress=bar,
                    workers=workers,
                )
            elif not archive:
                budget.add(obj.size, what=f"Dataset {spec.name!r}")
            checks.append(_verify(client, bucket, obj, target, spec, notes))
            if archive:
                bar.describe(f"Expanding {filename}")
                expanded = staging / "expanded"
                shutil.rmtree(expanded, ignore_errors=True)
                expand_archive(target, expanded, budget=budget, label=remote.location.uri)
                shutil.rmtree(data, ignore_errors=True)
                os.replace(expanded, data)
                target.unlink()
        else:
            data.mkdir(exist_ok=True)
            placed: list[tuple[RemoteObject, Path]] = []
            jobs: list[tuple[RemoteObject, Path]] = []
            for obj in remote.objects:
                path = data / _safe_relative(obj.key, remote.prefix, spec)
                placed.append((obj, path))
                if path.exists() and path.stat().st_size == obj.size:
                    budget.add(obj.size, what=f"Dataset {spec.name!r}")  # finished by an earlier attempt
                else:
                    jobs.append((obj, path))
            download_objects(client, bucket, jobs, spec=spec, budget=budget, progress=bar, workers=workers)
            for obj, path in placed:
                checks.append(_verify(client, bucket, obj, path, spec, notes))
        size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file() and not p.is_symlink())
        os.replace(data, dest)

    for note in notes:
        warn(note)
    return FetchResult(
        name=spec.name,
        uri=remote.location.uri,
        kind=remote.kind,
        path=dest,
        etag=remote.etag,
        version_id=remote.version_id,
        fingerprint=remote.fingerprint,
        size=size,
        object_count=len(remote.objects),
        verification=tuple(checks),
        warnings=tuple(notes),
    )


def _verify(
    client: S3Client, bucket: str, obj: RemoteObject, path: Path, spec: DatasetSpec, notes: list[str]
) -> str:
    exact, hints = _part_sizes(client, bucket, obj)
    try:
        check = verify_file(
            path,
            obj.etag,
            label=f"Dataset {spec.name!r} (s3://{bucket}/{obj.key})",
            part_sizes=exact,
            part_size_hints=hints,
            md5_based=obj.md5_based,
        )
    except IntegrityError:
        path.unlink(missing_ok=True)  # damaged bytes must not be resumed from
        raise
    if not check.verified:
        notes.append(check.detail)
    return check.detail
