"""S3-compatible storage (AWS, MinIO, Ceph, Wasabi, R2, moto...) through boto3.

boto3 was chosen by measurement (docs/performance.md). Two things are ours rather than s3transfer's:

- multipart upload, so that the bytes actually sent are hashed on the way and the upload is
  aborted, never completed, if they are not the bytes the engine decided to store;
- one memory budget for part buffers shared by every upload in the process, so memory stays
  bounded however many large files are uploaded at once.

botocore's "standard" retry mode retries throttling, 5xx and connection errors per request with
exponential backoff and jitter; streamed bodies that break mid-read are retried here.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import blake3
import boto3
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import ProtocolError

from datakeep.errors import IntegrityError
from datakeep.providers.base import ObjectInfo, Provider, check_key

T = TypeVar("T")

#: Files up to this size go in one PUT; above it, multipart.
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
#: Parts uploaded at once, process-wide; with PART_SIZE this bounds part buffers to 64 MiB (16 MiB parts
#: showed 636 MiB peak RSS uploading 8 x 128 MiB: botocore holds copies of each body while signing it).
MAX_PARTS_IN_FLIGHT = 8
#: Attempts for a streamed body that breaks mid-transfer (each request is also retried by botocore).
STREAM_ATTEMPTS = 6

_STREAM_ERRORS = (
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
    ConnectionClosedError,
    EndpointConnectionError,
    ProtocolError,
    ConnectionError,
)

_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket", "NoSuchVersion"}
_DENIED = {
    "403",
    "AccessDenied",
    "Forbidden",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
}


def _os_error(exc: Exception, what: str) -> OSError:
    """botocore's errors as the built-in OSErrors the engine expects."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in _NOT_FOUND or status == "404":
            err: OSError = FileNotFoundError(f"Not found in S3: {what} ({code or status})")
        elif code in _DENIED or status == "403":
            err = PermissionError(f"Access denied by S3: {what} ({code or status})")
        else:
            err = OSError(f"S3 error on {what}: {code or status}")
        err.__cause__ = exc
        return err
    err = OSError(f"S3 request failed on {what}: {exc}")
    err.__cause__ = exc
    return err


def _backoff(attempt: int) -> None:
    time.sleep(min(0.1 * 2**attempt, 5.0))


def _retrying(what: str, call: Callable[[], T], attempts: int = STREAM_ATTEMPTS) -> T:
    """Retry a call whose response body broke mid-transfer (botocore retries only the request)."""
    for attempt in range(attempts):
        try:
            return call()
        except _STREAM_ERRORS:
            if attempt == attempts - 1:
                raise
            _backoff(attempt)
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status < 500 or attempt == attempts - 1:
                raise
            _backoff(attempt)
    raise AssertionError("unreachable")


def _etag(response: Any) -> str | None:
    """S3 sends the ETag quoted, and some servers send none."""
    return str(response.get("ETag", "")).strip('"') or None


def normalize_endpoint(endpoint: str | None) -> str | None:
    if not endpoint:
        return None
    return endpoint if "://" in endpoint else f"https://{endpoint}"


class S3Provider(Provider):
    type = "s3"
    remote = True

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        signature_version: str | None = None,
        max_connections: int = 64,
        max_attempts: int = 8,
        stream_attempts: int = STREAM_ATTEMPTS,
    ) -> None:
        self.stream_attempts = stream_attempts
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix and prefix.strip("/") else ""
        self.endpoint = normalize_endpoint(endpoint)
        self.anonymous = anonymous = not access_key and not secret_key
        signature: Any = UNSIGNED if anonymous else _signature(signature_version)
        config = Config(
            signature_version=signature,
            max_pool_connections=max_connections,
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=10,
            read_timeout=120,
            # Custom endpoints (MinIO, moto, Ceph) rarely have wildcard DNS for virtual-host buckets.
            s3={"addressing_style": "path" if self.endpoint else "auto"},
            tcp_keepalive=True,
            # Integrity is ours (BLAKE3 of every byte read back), so botocore's default CRC32 on every
            # PUT is CPU spent twice; and some servers (rclone serve s3) send the whole object's
            # checksum with a ranged GET, which botocore would then reject.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session()
        self.client = session.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=region or "us-east-1",
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            aws_session_token=session_token or None,
            config=config,
        )
        self._parts = ThreadPoolExecutor(max_workers=MAX_PARTS_IN_FLIGHT, thread_name_prefix="dk-s3-part")
        self._budget = threading.BoundedSemaphore(MAX_PARTS_IN_FLIGHT)
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=PART_SIZE,
            max_concurrency=8,
            use_threads=True,
        )

    def describe(self) -> str:
        where = self.endpoint or "aws"
        return f"s3://{self.bucket}/{self.prefix} ({where})"

    def close(self) -> None:
        self._parts.shutdown(wait=False, cancel_futures=True)

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    def stat(self, key: str) -> ObjectInfo:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._k(key))
        except (ClientError, BotoCoreError) as exc:
            err = _os_error(exc, key)
            if isinstance(err, PermissionError) and self.anonymous:
                # Some servers refuse anonymous HEAD where a bucket policy allows GET: ask for one byte.
                return self._stat_by_get(key)
            raise err from exc
        return ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            etag=_etag(head),
            version_id=head.get("VersionId"),
            modified=head.get("LastModified"),
        )

    def _stat_by_get(self, key: str) -> ObjectInfo:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._k(key), Range="bytes=0-0")
            response["Body"].close()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return ObjectInfo(key=key, size=0)
            raise _os_error(exc, key) from exc
        except BotoCoreError as exc:
            raise _os_error(exc, key) from exc
        total = str(response.get("ContentRange", "")).rpartition("/")[2]
        return ObjectInfo(
            key=key,
            size=int(total) if total.isdigit() else int(response["ContentLength"]),
            etag=_etag(response),
            version_id=response.get("VersionId"),
            modified=response.get("LastModified"),
        )

    def list(self, prefix: str = "", *, recursive: bool = True) -> Iterator[ObjectInfo]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        if not recursive:
            params["Delimiter"] = "/"
        cut = len(self.prefix)
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**params):
                for common in page.get("CommonPrefixes", []):
                    yield ObjectInfo(key=common["Prefix"][cut:], size=0, is_dir=True)
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        key=obj["Key"][cut:],
                        size=int(obj["Size"]),
                        etag=_etag(obj),
                        modified=obj.get("LastModified"),
                    )
        except (ClientError, BotoCoreError) as exc:
            raise _os_error(exc, prefix or "/") from exc

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if length == 0:
            return b""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key)}
        if offset or length is not None:
            params["Range"] = f"bytes={offset}-" + ("" if length is None else str(offset + length - 1))

        def call() -> bytes:
            body = self.client.get_object(**params)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            if length is not None and len(data) != length:
                raise IncompleteReadError(actual_bytes=len(data), expected_bytes=length)
            return data

        try:
            return _retrying(key, call, self.stream_attempts)
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""
            raise _os_error(exc, key) from exc
        except _STREAM_ERRORS as exc:
            raise _os_error(exc, key) from exc

    def download(self, key: str, path: Path) -> None:
        # s3transfer: parallel ranged GETs, retries broken streams, writes a temp file then renames.
        try:
            self.client.download_file(self.bucket, self._k(key), str(path), Config=self._transfer)
        except (ClientError, BotoCoreError) as exc:
            raise _os_error(exc, key) from exc

    def write(self, key: str, data: bytes) -> None:
        k = self._k(key)
        try:
            _retrying(
                key,
                lambda: self.client.put_object(Bucket=self.bucket, Key=k, Body=data),
                self.stream_attempts,
            )
        except (ClientError, BotoCoreError, *_STREAM_ERRORS) as exc:
            raise _os_error(exc, key) from exc

    def upload(self, key: str, path: Path, *, expected_digest: str | None = None) -> None:
        size = path.stat().st_size
        if size <= MULTIPART_THRESHOLD:
            data = path.read_bytes()
            if expected_digest is not None and blake3.blake3(data).hexdigest() != expected_digest:
                raise IntegrityError(
                    f"{path} changed while it was being stored", hint="Run the command again"
                )
            self.write(key, data)
            return
        self._multipart(key, path, expected_digest)

    def _multipart(self, key: str, path: Path, expected_digest: str | None) -> None:
        k = self._k(key)
        try:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=k)["UploadId"]
        except (ClientError, BotoCoreError) as exc:
            raise _os_error(exc, key) from exc
        futures: list[Future[dict[str, Any]]] = []
        hasher = blake3.blake3()
        try:
            with open(path, "rb") as f:
                number = 0
                while True:
                    # Take a slot before reading the part: this is what bounds memory.
                    self._budget.acquire()
                    try:
                        chunk = f.read(PART_SIZE)
                    except BaseException:
                        self._budget.release()
                        raise
                    if not chunk and number > 0:
                        self._budget.release()
                        break
                    number += 1
                    hasher.update(chunk)
                    futures.append(self._parts.submit(self._upload_part, k, upload_id, number, chunk))
                    if len(chunk) < PART_SIZE:
                        break
            parts = [fut.result() for fut in futures]
            if expected_digest is not None and hasher.hexdigest() != expected_digest:
                raise IntegrityError(
                    f"{path} changed while it was being stored", hint="Run the command again"
                )
            _retrying(
                key,
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=k,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                ),
                self.stream_attempts,
            )
        except BaseException as exc:
            for fut in futures:
                fut.cancel()
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=k, UploadId=upload_id)
            if isinstance(exc, (ClientError, BotoCoreError, *_STREAM_ERRORS)):
                raise _os_error(exc, key) from exc
            raise

    def _upload_part(self, k: str, upload_id: str, number: int, chunk: bytes) -> dict[str, Any]:
        try:
            response = _retrying(
                k,
                lambda: self.client.upload_part(
                    Bucket=self.bucket, Key=k, UploadId=upload_id, PartNumber=number, Body=chunk
                ),
                self.stream_attempts,
            )
            return {"ETag": response["ETag"], "PartNumber": number}
        finally:
            self._budget.release()

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._k(key))
        except (ClientError, BotoCoreError) as exc:
            err = _os_error(exc, key)
            if not isinstance(err, FileNotFoundError):
                raise err from exc

    def copy(self, src: str, dst: str) -> None:
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": self._k(src)}, self.bucket, self._k(dst), Config=self._transfer
            )
        except (ClientError, BotoCoreError) as exc:
            raise _os_error(exc, src) from exc

    def presign(self, method: str, key: str, *, expires: int = 3600) -> str:
        operations = {
            "GET": "get_object",
            "PUT": "put_object",
            "HEAD": "head_object",
            "DELETE": "delete_object",
        }
        operation = operations.get(method.upper(), method)
        url: str = self.client.generate_presigned_url(
            operation, Params={"Bucket": self.bucket, "Key": self._k(key)}, ExpiresIn=expires
        )
        return url


def _signature(version: str | None) -> str:
    if not version or version.lower() in ("v4", "s3v4"):
        return "s3v4"
    if version.lower() in ("v2", "s3"):
        return "s3"
    return version
