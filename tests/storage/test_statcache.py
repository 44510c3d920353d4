"""The stat cache's directory rows on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from datakeep.storage.statcache import RACY_NS, StatCache, trusted_digest

KEY = (1, 2, 3, 4_000_000_000, 5)
ENTRY = (KEY, 4_000_000_000 + RACY_NS, "d" * 64)
NODE = ("n" * 64, 3, 1, ())


def test_rows_round_trip_and_file_updates_drop_the_node_record(tmp_path: Path) -> None:
    cache = StatCache(tmp_path / "c.db")
    cache.put_directories([(b"/src/a", {"f": ENTRY}, NODE)])
    assert cache.directory(b"/src/a") == ({"f": ENTRY}, NODE)
    assert cache.lookup([b"/src/a/f", b"/src/a/g", b"/src/b/f"]) == {b"/src/a/f": ENTRY}
    # A file stored one by one (several sources) changes the row: its node record no longer holds.
    cache.store([(b"/src/a/g", KEY, ENTRY[1], "e" * 64)])
    files, node = cache.directory(b"/src/a")
    assert set(files) == {"f", "g"}
    assert node is None
    cache.close()


def test_trusted_digest_refuses_changed_or_racy_entries() -> None:
    assert trusted_digest(ENTRY, KEY) == "d" * 64
    assert trusted_digest(ENTRY, (1, 2, 3, 4_000_000_001, 5)) is None  # mtime
    assert trusted_digest(ENTRY, (1, 9, 3, 4_000_000_000, 5)) is None  # inode
    assert trusted_digest((KEY, KEY[3] + RACY_NS - 1, "d" * 64), KEY) is None  # hashed too soon
    assert trusted_digest(None, KEY) is None


def test_unreadable_row_and_old_table_mean_an_empty_cache(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE stat (path BLOB PRIMARY KEY)")  # an earlier release's table
    db.execute("CREATE TABLE dirs (path BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID")
    db.execute("INSERT INTO dirs VALUES (?, ?)", (b"/x", b"\x00garbage"))
    db.commit()
    db.close()
    cache = StatCache(path)
    assert cache.directory(b"/x") == ({}, None)
    cache.close()
    names = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {"dirs"}
