"""A local directory as a provider: the embedded default, and any mounted disk or NFS share."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat as stat_module
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import blake3

from datakeep.errors import IntegrityError
from datakeep.providers.base import ObjectInfo, Provider, check_key

#: Files being written carry this in their name; listings skip them.
TEMP_MARK = ".tmp-"
_CHUNK = 8 * 1024 * 1024


def _temp_for(path: Path) -> Path:
    return path.with_name(f"{path.name}{TEMP_MARK}{uuid.uuid4().hex[:12]}")


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is; a failure here must not fail the write.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LocalProvider(Provider):
    type = "local"
    remote = False

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync

    def describe(self) -> str:
        return f"local:{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _info(self, key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
            modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def stat(self, key: str) -> ObjectInfo:
        st = self._path(key).stat()
        if not stat_module.S_ISREG(st.st_mode):
            raise FileNotFoundError(f"No such object: {key}")
        return self._info(key, st)

    def list(self, prefix: str = "", *, recursive: bool = True) -> Iterator[ObjectInfo]:
        # A prefix is a string prefix, as on S3: "a/b" matches "a/b.txt" and "a/bc/d".
        base_dir, _, _ = prefix.rpartition("/")
        start = self.root / base_dir if base_dir else self.root
        if not start.is_dir():
            return
        yield from self._walk(start, base_dir + "/" if base_dir else "", prefix, recursive)

    def _walk(self, directory: Path, rel: str, prefix: str, recursive: bool) -> Iterator[ObjectInfo]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for entry in entries:
            if TEMP_MARK in entry.name:
                continue
            key = rel + entry.name
            if entry.is_dir(follow_symlinks=False):
                sub = key + "/"
                if not (sub.startswith(prefix) or prefix.startswith(sub)):
                    continue
                if recursive or prefix.startswith(sub):
                    yield from self._walk(Path(entry.path), sub, prefix, recursive)
                else:
                    yield ObjectInfo(key=sub, size=0, is_dir=True)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                with contextlib.suppress(FileNotFoundError):
                    yield self._info(key, entry.stat(follow_symlinks=False))

    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        with open(self._path(key), "rb") as f:
            if offset:
                f.seek(offset)
            return f.read() if length is None else f.read(length)

    def download(self, key: str, path: Path) -> None:
        source = self._path(key)
        temp = _temp_for(path)
        try:
            shutil.copyfile(source, temp)  # sendfile/copy_file_range on Linux: no bytes through Python
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    def _publish(self, path: Path, write: Callable[[BinaryIO], object]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = _temp_for(path)
        try:
            with open(temp, "wb") as f:
                write(f)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        if self.fsync:
            _fsync_dir(path.parent)

    def write(self, key: str, data: bytes) -> None:
        self._publish(self._path(key), lambda f: f.write(data))

    def upload(self, key: str, path: Path, *, expected_digest: str | None = None) -> None:
        def copy(dst: BinaryIO) -> None:
            hasher = blake3.blake3()
            with open(path, "rb") as src:
                while chunk := src.read(_CHUNK):
                    hasher.update(chunk)
                    dst.write(chunk)
            if expected_digest is not None and hasher.hexdigest() != expected_digest:
                raise IntegrityError(
                    f"{path} changed while it was being stored", hint="Run the command again"
                )

        self._publish(self._path(key), copy)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def copy(self, src: str, dst: str) -> None:
        source = self._path(src)
        if not source.is_file():
            raise FileNotFoundError(f"No such object: {src}")
        self.upload(dst, source)
