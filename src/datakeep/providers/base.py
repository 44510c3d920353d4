"""The provider interface: the few operations the storage engine needs from any store of bytes.

Keys are ``/``-separated relative strings (no leading ``/``, no ``..``). Providers raise built-in
``OSError``s (``FileNotFoundError`` for a missing key, ``PermissionError`` for refused access) so
the engine can translate them once, at its boundary, into datakeep errors.
"""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None = None
    version_id: str | None = None
    modified: datetime | None = None
    #: A common prefix (``sub/``) yielded by a non-recursive listing, not an object.
    is_dir: bool = False


def check_key(key: str) -> str:
    """Refuse keys that could leave the provider's root (``..``) or that S3 and a disk would read differently."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"Invalid storage key: {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
        raise ValueError(f"Invalid storage key: {key!r}")
    if posixpath.normpath(key) != key.rstrip("/"):
        raise ValueError(f"Invalid storage key: {key!r}")
    return key


class Provider(ABC):
    """A flat namespace of immutable-by-convention objects addressed by key."""

    #: Short type name, as in the storage provider's ``type`` (``local``, ``s3``).
    type: str = ""
    #: Whether a ranged read costs a request of its own (True on S3): the engine coalesces ranges then.
    remote: bool = False

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def list(self, prefix: str = "", *, recursive: bool = True) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``; non-recursive also yields ``sub/`` prefixes (``is_dir``)."""

    @abstractmethod
    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes: ...

    @abstractmethod
    def download(self, key: str, path: Path) -> None:
        """Write the whole object to ``path`` (temp name + rename: never a half file at ``path``)."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically: readers see the old object or the new one."""

    @abstractmethod
    def upload(self, key: str, path: Path, *, expected_digest: str | None = None) -> None:
        """Store the file at ``path``; with ``expected_digest`` (BLAKE3 hex) the bytes actually sent are
        hashed and the object is not published if they differ (the file changed while being read)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing a missing key is not an error (S3 semantics)."""

    @abstractmethod
    def copy(self, src: str, dst: str) -> None: ...

    def presign(self, method: str, key: str, *, expires: int = 3600) -> str:
        """A URL that grants ``method`` on ``key`` for ``expires`` seconds, without credentials."""
        raise NotImplementedError(f"{self.type or type(self).__name__} storage cannot presign URLs")

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:  # noqa: B027 - most providers hold nothing to release
        """Release connections and threads."""

    def describe(self) -> str:
        """Where the bytes are, for messages (never includes a secret)."""
        return self.type
