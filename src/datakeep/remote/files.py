"""Files of a version, in remote mode: the bytes never pass through the server (for S3 providers).

``put``: scan the sources exactly as the embedded engine does, hash every file (BLAKE3), ask
the server which digests its storage provider lacks, upload only those, each to the version's
upload area through a presigned URL (multipart for large files), then ask the server to lay
the files into the version: the uploaded ones it hashes again itself (it never trusts a
client's digest for bytes it stores), the others it links by digest.

``get``: list the files with their digests, get presigned URLs in batches, download them in
parallel to temporary names, check each against its digest, and rename into place.

On a ``local`` provider the URLs point at the server, which streams the bytes itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from datakeep.domain.models import FileEntry, Version
from datakeep.errors import IntegrityError, InvalidInput, InvalidPath, StorageError
from datakeep.remote import codec
from datakeep.remote.client import _Service
from datakeep.remote.http import Session
from datakeep.storage.content import SourceFile, scan_sources
from datakeep.storage.hashing import EMPTY_DIGEST, digest_bytes, digest_file
from datakeep.storage.transfer import Progress

if TYPE_CHECKING:
    from datakeep.remote.client import RemoteClient

WORKERS = 8
#: Presigned URLs asked for in one request.
BATCH = 64
#: Files named in one request for download URLs (each answer is used at once, before URLs expire).
PLAN_BATCH = 1000
#: At most this many bytes in one ranged GET of packed small files, and at most this gap between two.
RANGE_BYTES = 8 * 1024 * 1024
RANGE_GAP = 256 * 1024
#: JSON sent in one /link request: half the server's 1 MiB body limit, for headroom.
LINK_BODY_BYTES = 512 * 1024
#: Files above this go up in parts (S3 allows 5 GiB in one PUT; parts are retried one by one).
MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 64 * 1024 * 1024
PART_ATTEMPTS = 5


def _chunks(items: list[dict[str, Any]], max_bytes: int) -> list[list[dict[str, Any]]]:
    """Split ``items`` into lists whose JSON stays under ``max_bytes`` (the server refuses bodies
    over 1 MiB, and a version of many files names more than that in one list)."""
    chunks: list[list[dict[str, Any]]] = []
    size = max_bytes
    for item in items:
        item_size = len(json.dumps(item)) + 2
        if size + item_size > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item_size
    return chunks


def _transfer_failed(key: str, url: str, exc: httpx.HTTPError, *, verb: str = "Upload") -> StorageError:
    """Name the storage endpoint that failed (never the URL's query: it carries a signature)."""
    where = httpx.URL(url)
    endpoint = f"{where.scheme}://{where.netloc.decode()}"
    return StorageError(
        f"{verb} of {key} failed: cannot reach {endpoint} ({exc})",
        hint=f"Check that {endpoint} (the storage provider's endpoint, or the server for a local "
        "provider) is reachable from this machine, then run the command again",
    )


def _destination(target: Path, key: str) -> Path:
    """Where ``key`` goes under ``target``; a path from the server cannot climb out of it."""
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidPath(f"Invalid file path from the server: {key!r}")
    dest = target.joinpath(*parts)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.is_dir():
        raise InvalidPath(f"{dest} already exists", hint="Choose an empty --target-path, or remove it")
    return dest


def _ranges(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group packed files into runs that one ranged GET serves: same object, close together.

    Objects are told apart by their URL without its query (the signature). Bytes between two
    files of a run are fetched and dropped, which costs less than another request.
    """
    by_object: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_object.setdefault(item["url"].split("?", 1)[0], []).append(item)
    runs: list[list[dict[str, Any]]] = []
    for group in by_object.values():
        group.sort(key=lambda i: int(i["offset"]))
        run: list[dict[str, Any]] = []
        run_start = run_end = 0
        for item in group:
            offset, end = int(item["offset"]), int(item["offset"]) + int(item["size"])
            if run and (offset - run_end > RANGE_GAP or end - run_start > RANGE_BYTES):
                runs.append(run)
                run = []
            if not run:
                run_start = offset
            run.append(item)
            run_end = max(run_end, end) if len(run) > 1 else end
        if run:
            runs.append(run)
    return runs


def _split_ref(version: Version) -> tuple[str, str]:
    return version.dataset_id, version.version


class RemoteFiles(_Service):
    name = "files"

    def __init__(self, session: Session, client: RemoteClient) -> None:
        super().__init__(session)
        self._client = client

    def _presign(self, version: Version, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ds, ver = _split_ref(version)
        answer: list[dict[str, Any]] = self._session.request(
            "POST", f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls", json={"calls": calls}
        )
        return answer

    # READING

    def list(self, ref: str, *, path: str = "/", recursive: bool = False) -> list[FileEntry]:
        return self._call("list", ref, path=path, recursive=recursive, long=True)

    def get(self, ref: str, *, target_path: str | Path, source_paths: Sequence[str] | None = None) -> int:
        version = self._client.versions.get(ref)
        target = Path(target_path).expanduser()
        if target.exists() and not target.is_dir():
            raise InvalidInput(
                f"{target_path} already exists and is not a directory", hint="Pass a directory"
            )
        everything = [e for e in self.list(version.ref, path="/", recursive=True) if not e.is_dir]
        selected: dict[str, FileEntry] = {}
        wanted = [] if not source_paths or list(source_paths) == ["/"] else list(source_paths)
        if not wanted:
            selected = {e.path: e for e in everything}
        for source in wanted:
            base = "/".join(p for p in source.split("/") if p)
            matched = {
                e.path: e for e in everything if not base or e.path == base or e.path.startswith(base + "/")
            }
            if not matched:
                self.list(version.ref, path=source)  # raises the embedded mode's "not found" error
            selected.update(matched)
        target.mkdir(parents=True, exist_ok=True)
        keys = sorted(selected)
        with (
            Progress("Downloading files", enabled=self._client.progress) as progress,
            ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dk-get") as pool,
        ):
            progress.expect(len(keys), sum(selected[k].size or 0 for k in keys))
            # Plans are asked for batch by batch, so no URL waits long enough to expire.
            for start in range(0, len(keys), PLAN_BATCH):
                batch = keys[start : start + PLAN_BATCH]
                plan = self._session.request(
                    "POST",
                    f"/datakeep/v1/datasets/{version.dataset_id}/versions/{version.version}/downloads",
                    json={"keys": batch},
                )["files"]
                whole = [item for item in plan if item.get("offset") is None]
                jobs: list[tuple[Future[None], list[dict[str, Any]]]] = [
                    (pool.submit(self._download, item["url"], target, item["key"], selected[item["key"]]), [item])
                    for item in whole
                ]  # fmt: skip
                for run in _ranges([item for item in plan if item.get("offset") is not None]):
                    jobs.append((pool.submit(self._download_range, target, run, selected), run))
                for future, items in jobs:
                    future.result()
                    progress.advance(len(items), sum(selected[i["key"]].size or 0 for i in items))
        return len(keys)

    def _download_range(
        self, target: Path, run: Sequence[dict[str, Any]], selected: dict[str, FileEntry]
    ) -> None:
        """Small files packed next to each other in one object: one ranged GET for all of them."""
        start = int(run[0]["offset"])
        end = max(int(i["offset"]) + int(i["size"]) for i in run)
        url = run[0]["url"]
        try:
            with self._session.transfers.stream(
                "GET", url, headers={"Range": f"bytes={start}-{end - 1}"}
            ) as answer:
                if answer.status_code != 206:
                    raise StorageError(f"Download of {run[0]['key']} failed: HTTP {answer.status_code}")
                data = answer.read()
        except httpx.HTTPError as exc:
            raise _transfer_failed(run[0]["key"], url, exc, verb="Download") from exc
        if len(data) != end - start:
            raise StorageError(
                f"Download of {run[0]['key']} failed: short read", hint="Run the command again"
            )
        for item in run:
            offset = int(item["offset"]) - start
            body = data[offset : offset + int(item["size"])]
            entry = selected[item["key"]]
            if entry.digest and digest_bytes(body) != entry.digest:
                raise IntegrityError(f"{item['key']}: the downloaded bytes do not match their digest")
            dest = _destination(target, item["key"])
            temp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:12]}")
            try:
                temp.write_bytes(body)
                os.replace(temp, dest)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()

    def _download(self, url: str, target: Path, key: str, entry: FileEntry) -> None:
        """A file stored whole (packed ones go through :meth:`_download_range`)."""
        dest = _destination(target, key)
        temp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:12]}")
        if entry.size == 0:
            temp.write_bytes(b"")
            os.replace(temp, dest)
            return
        try:
            with self._session.transfers.stream("GET", url) as response:
                if response.status_code not in (200, 206):
                    raise StorageError(f"Download of {key} failed: HTTP {response.status_code}")
                with open(temp, "wb") as out:
                    for chunk in response.iter_bytes(1024 * 1024):
                        out.write(chunk)
            if entry.digest and digest_file(temp) != entry.digest:
                raise IntegrityError(f"{key}: the downloaded bytes do not match their digest")
            os.replace(temp, dest)
        except httpx.HTTPError as exc:
            raise _transfer_failed(key, url, exc, verb="Download") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    # WRITING

    def delete(self, ref: str, *, paths: Sequence[str] | None = None, all: bool = False) -> Version:
        return self._call("delete", ref, paths=list(paths) if paths else None, all=all, long=True)

    def put(self, ref: str, *, source_paths: Sequence[str | Path], target_path: str = "/") -> Version:
        from datakeep.services.versions import check_sources

        if not source_paths:
            raise InvalidInput("Nothing to upload", hint="Pass at least one --source-path")
        sources = check_sources(source_paths)
        version = self._client.versions.literal(ref)
        if version.is_committed:
            from datakeep.errors import VersionCommitted

            raise VersionCommitted(
                f"Dataset version {version.ref} is committed: its files cannot change",
                hint="Create a new version: datakeep datasets versions create",
            )
        # The engine's own source walk: same file set, names and symlink rules as embedded mode.
        found = {f.dest: f for f in scan_sources(sources, str(target_path))}
        files = sorted(found.values(), key=lambda f: f.parts)

        def hash_one(f: SourceFile) -> tuple[SourceFile, str]:
            if f.size == 0:
                return f, EMPTY_DIGEST
            if f.size < 1024 * 1024:
                with open(f.path, "rb") as handle:
                    return f, digest_bytes(handle.read())
            return f, digest_file(f.path)

        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dk-hash") as pool:
            hashed = list(pool.map(hash_one, files))
        ds, ver = _split_ref(version)
        digests = sorted({d for _, d in hashed if d != EMPTY_DIGEST})
        missing: set[str] = set()
        for start in range(0, len(digests), 10_000):
            answer = self._session.request(
                "POST",
                f"/datakeep/v1/datasets/{ds}/versions/{ver}/missing",
                json={"digests": digests[start : start + 10_000]},
            )
            missing.update(answer["missing"])
        # One upload per missing digest; the other files with the same content are linked.
        upload: dict[str, SourceFile] = {}
        for f, digest in hashed:
            if digest in missing and digest not in upload:
                upload[digest] = f
        uploaded = {f.dest for f in upload.values()}
        with Progress("Uploading files", enabled=self._client.progress) as progress:
            progress.expect(len(upload), sum(f.size for f in upload.values()))
            self._upload(version, list(upload.values()), progress)
        links = [{"path": f.dest, "digest": d, "size": f.size} for f, d in hashed if f.dest not in uploaded]
        # The first call also folds the uploads in, so there is one even with nothing to link.
        for chunk in _chunks(links, LINK_BODY_BYTES) or [[]]:
            answer = self._session.request(
                "POST", f"/datakeep/v1/datasets/{ds}/versions/{ver}/link", json={"files": chunk}, long=True
            )
        return codec.decode(answer["result"])

    def _upload(self, version: Version, files: Sequence[SourceFile], progress: Progress) -> None:
        small = [f for f in files if f.size <= MULTIPART_THRESHOLD]
        large = [f for f in files if f.size > MULTIPART_THRESHOLD]
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dk-put") as pool:
            for start in range(0, len(small), BATCH):
                batch = small[start : start + BATCH]
                urls = self._presign(
                    version, [{"method": "putObject", "params": {"Key": f.dest}} for f in batch]
                )
                futures = [pool.submit(self._put, a["url"], f) for f, a in zip(batch, urls, strict=True)]
                for future, f in zip(futures, batch, strict=True):
                    future.result()
                    progress.advance(1, f.size)
            for f in large:
                self._multipart(version, f, pool)
                progress.advance(1, f.size)

    def _put(self, url: str, f: SourceFile) -> None:
        with open(f.path, "rb") as handle:
            data = handle.read()
        if len(data) != f.size:
            raise InvalidInput(f"{f.path} changed while it was being read", hint="Run the command again")
        try:
            response = self._session.transfers.put(
                url, content=data, headers={"Content-Type": "application/octet-stream"}
            )
        except httpx.HTTPError as exc:
            raise _transfer_failed(f.dest, url, exc) from exc
        if response.status_code not in (200, 201, 204):
            raise StorageError(
                f"Upload of {f.dest} failed: HTTP {response.status_code} {response.text[:200]}"
            )

    def _multipart(self, version: Version, f: SourceFile, pool: ThreadPoolExecutor) -> None:
        created = self._presign(version, [{"method": "createMultipartUpload", "params": {"Key": f.dest}}])
        upload_id = created[0]["url"]["UploadId"]
        count = (f.size + PART_SIZE - 1) // PART_SIZE

        def part(number: int) -> dict[str, Any]:
            with open(f.path, "rb") as handle:
                handle.seek((number - 1) * PART_SIZE)
                chunk = handle.read(PART_SIZE)
            for attempt in range(PART_ATTEMPTS):
                url = self._presign(
                    version,
                    [
                        {
                            "method": "uploadPart",
                            "params": {"Key": f.dest, "UploadId": upload_id, "PartNumber": number},
                        }
                    ],
                )[0]["url"]
                try:
                    response = self._session.transfers.put(url, content=chunk)
                except httpx.HTTPError as exc:
                    if attempt == PART_ATTEMPTS - 1:
                        raise _transfer_failed(f.dest, url, exc) from exc
                    continue
                if response.status_code == 200:
                    return {"ETag": response.headers["ETag"].strip('"'), "PartNumber": number}
            raise StorageError(f"Upload of part {number} of {f.dest} failed", hint="Run the command again")

        try:
            parts = list(pool.map(part, range(1, count + 1)))
        except BaseException:
            with contextlib.suppress(Exception):
                self._presign(
                    version,
                    [{"method": "abortMultipartUpload", "params": {"Key": f.dest, "UploadId": upload_id}}],
                )
            raise
        self._presign(
            version,
            [
                {
                    "method": "completeMultipartUpload",
                    "params": {"Key": f.dest, "UploadId": upload_id, "MultipartUpload": {"Parts": parts}},
                }
            ],
        )
