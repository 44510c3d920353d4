"""A stat cache, like git's index: skip re-reading files whose inode, size and times are unchanged.

An entry is trusted only when device, inode, size, mtime and ctime are all unchanged *and* the
file's mtime was at least ``RACY_NS`` older than the moment it was hashed. Without that last rule a
file rewritten within the same timestamp tick right after being hashed (same size) would look
unchanged: that is git's "racy clean" problem, answered here by simply re-reading such files.

Entries are kept one row per directory (name -> entry, ``marshal``-encoded), not one row per
file: an incremental create of a 20,000-file folder reads about 200 rows instead of 20,000, and
compares each file's stat against a dict already in memory (docs/performance.md). A directory's
row is rewritten whole by a snapshot of that directory, so files deleted since drop out.

The cache is an optimisation only: any failure to read or write it, or a row that does not
decode, just means files are hashed. It lives in ``<home>/statcache.db`` (SQLite, WAL), shared
by every dataset and process. ``marshal`` reads only this file, which the user's own datakeep
wrote under their home: it is never given bytes from a provider or the network.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

#: Files modified less than this long before they were hashed are never trusted from the cache.
RACY_NS = 2_000_000_000

#: A row's encoding; a row of another format is ignored (its files are hashed again).
_FORMAT = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dirs (
    path BLOB PRIMARY KEY,
    data BLOB NOT NULL
) WITHOUT ROWID
"""


class StatKey(NamedTuple):
    """A tuple, not a dataclass: one is built per file per snapshot, so construction cost matters."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> StatKey:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


#: What the cache knows of one file: its stat key (a plain tuple equal to a ``StatKey``), when it
#: was hashed (ns since the epoch), and its digest.
CacheEntry = tuple[tuple[int, int, int, int, int], int, str]
#: A directory's entries by file name (``os.scandir`` names: str, surrogate-escaped if not UTF-8).
Directory = dict[str, CacheEntry]
#: The manifest node last built from exactly a directory's entries: its digest, total size, file
#: count, and the sub-directory entries it held (plain 5-tuples, sorted). Lets an unchanged
#: directory reuse its node without rebuilding it.
NodeRecord = tuple[str, int, int, tuple[tuple[str, int, str, int, int], ...]]


def trusted_digest(entry: CacheEntry | None, key: tuple[int, int, int, int, int]) -> str | None:
    """The cached digest if ``key`` matches it and the file was not racy when hashed, else None."""
    if entry is None:
        return None
    cached, hashed_ns, digest = entry
    if cached != key or key[3] + RACY_NS > hashed_ns:
        return None
    return digest


class StatCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=5, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            db.execute("DROP TABLE IF EXISTS stat")  # the per-file rows of earlier releases
            self._db = db
        except sqlite3.Error:
            self._db = None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # WHOLE DIRECTORIES (the snapshot of one source folder)

    def directory(self, path: bytes) -> tuple[Directory, NodeRecord | None]:
        """What the cache knows of the files directly in ``path``, and of the node built from them."""
        if self._db is None:
            return {}, None
        try:
            with self._lock:
                row = self._db.execute("SELECT data FROM dirs WHERE path = ?", (path,)).fetchone()
        except sqlite3.Error:
            return {}, None
        return _decode(row[0]) if row is not None else ({}, None)

    def put_directories(self, rows: Iterable[tuple[bytes, Directory, NodeRecord | None]]) -> None:
        """Replace the rows of these directories (each one's complete listing), in one transaction.

        A node record must have been built from exactly these entries (and its sub-directories).
        """
        self._write([(path, _encode(entries, node)) for path, entries, node in rows])

    # FILE BY FILE (several sources laid over a version)

    def lookup(self, paths: list[bytes]) -> dict[bytes, CacheEntry]:
        """The entries of these files, one query per directory they are in."""
        found: dict[bytes, CacheEntry] = {}
        for directory, names in _by_directory(paths).items():
            known, _node = self.directory(directory)
            for name in names:
                entry = known.get(name)
                if entry is not None:
                    found[directory + b"/" + os.fsencode(name)] = entry
        return found

    def store(self, rows: list[tuple[bytes, tuple[int, int, int, int, int], int, str]]) -> None:
        """Add or replace single files' entries in their directories' rows."""
        if self._db is None or not rows:
            return
        by_dir: dict[bytes, list[tuple[str, CacheEntry]]] = {}
        for path, key, hashed_ns, digest in rows:
            directory, _, name = path.rpartition(b"/")
            plain = (key[0], key[1], key[2], key[3], key[4])  # marshal takes plain tuples only
            by_dir.setdefault(directory, []).append((os.fsdecode(name), (plain, hashed_ns, digest)))
        updated: list[tuple[bytes, Directory, NodeRecord | None]] = []
        for directory, entries in by_dir.items():
            known, _node = self.directory(directory)
            known.update(entries)
            # The node record described the old entries: it no longer holds, so it is dropped.
            updated.append((directory, known, None))
        self.put_directories(updated)

    def _write(self, rows: list[tuple[bytes, bytes]]) -> None:
        if self._db is None or not rows:
            return
        with contextlib.suppress(sqlite3.Error), self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO dirs VALUES (?, ?)", rows)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise


def _by_directory(paths: list[bytes]) -> dict[bytes, list[str]]:
    grouped: dict[bytes, list[str]] = {}
    for path in paths:
        directory, _, name = path.rpartition(b"/")
        grouped.setdefault(directory, []).append(os.fsdecode(name))
    return grouped


def _encode(entries: Directory, node: NodeRecord | None) -> bytes:
    return marshal.dumps((_FORMAT, entries, node))


def _decode(data: bytes) -> tuple[Directory, NodeRecord | None]:
    try:
        fmt, entries, node = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return {}, None
    if fmt != _FORMAT or not isinstance(entries, dict) or not (node is None or isinstance(node, tuple)):
        return {}, None
    return entries, node
