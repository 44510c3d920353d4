"""A stat cache, like git's index: skip re-reading files whose inode, size and times are unchanged.

An entry is trusted only when device, inode, size, mtime and ctime are all unchanged *and* the
file's mtime was at least ``RACY_NS`` older than the moment it was hashed. Without that last rule a
file rewritten within the same timestamp tick right after being hashed (same size) would look
unchanged: that is git's "racy clean" problem, answered here by simply re-reading such files.

The cache is an optimisation only: any failure to read or write it just means files are hashed.
It lives in ``<home>/statcache.db`` (SQLite, WAL), shared by every dataset and process.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import NamedTuple

#: Files modified less than this long before they were hashed are never trusted from the cache.
RACY_NS = 2_000_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stat (
    path BLOB PRIMARY KEY,
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    hashed_ns INTEGER NOT NULL, digest TEXT NOT NULL
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
            self._db = db
        except sqlite3.Error:
            self._db = None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def lookup(self, paths: list[bytes]) -> dict[bytes, tuple[StatKey, int, str]]:
        """The entries of these paths, a few hundred per query."""
        if self._db is None or not paths:
            return {}
        found: dict[bytes, tuple[StatKey, int, str]] = {}
        try:
            with self._lock:
                for start in range(0, len(paths), 500):
                    part = paths[start : start + 500]
                    rows = self._db.execute(
                        "SELECT path, dev, ino, size, mtime_ns, ctime_ns, hashed_ns, digest FROM stat "
                        f"WHERE path IN ({','.join('?' * len(part))})",
                        part,
                    ).fetchall()
                    found.update((bytes(r[0]), (StatKey(*r[1:6]), r[6], r[7])) for r in rows)
        except sqlite3.Error:
            return {}
        return found

    @staticmethod
    def trusted(entry: tuple[StatKey, int, str] | None, key: StatKey) -> str | None:
        if entry is None:
            return None
        cached, hashed_ns, digest = entry
        if cached != key or key.mtime_ns + RACY_NS > hashed_ns:
            return None
        return digest

    def store(self, rows: list[tuple[bytes, StatKey, int, str]]) -> None:
        if self._db is None or not rows:
            return
        with contextlib.suppress(sqlite3.Error), self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(p, k.dev, k.ino, k.size, k.mtime_ns, k.ctime_ns, h, d) for p, k, h, d in rows],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
