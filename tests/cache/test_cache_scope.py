"""A cache scoped to some of its versions (one team's, on a server): what it lists, plans,
frees and verifies never involves a version outside the scope (real files, real cache)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import blake3

from datakeep.cache import Cache, CacheEntry

MINE = "dsaaaaaaaaaaaaa"
THEIRS = "dsbbbbbbbbbbbbb"


def _mine(key: str) -> bool:
    return key.startswith(MINE + "/")


def _put(cache: Cache, key: str, files: dict[str, bytes]) -> Path:
    entries = [CacheEntry(p, blake3.blake3(b).hexdigest(), len(b)) for p, b in files.items()]
    by_digest = {e.digest: files[e.path] for e in entries}

    def fetch(missing: Sequence[CacheEntry], into: Path) -> None:
        for e in missing:
            (into / e.digest).write_bytes(by_digest[e.digest])

    return cache.materialize(key, entries, fetch)


def test_list_and_plan_see_only_the_scope(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    _put(cache, f"{MINE}/v1", {"a": b"a" * 10})
    _put(cache, f"{THEIRS}/v1", {"b": b"b" * 20})
    assert [v.key for v in cache.list(scope=_mine)] == [f"{MINE}/v1"]
    assert [v.key for v in cache.list()] == [f"{MINE}/v1", f"{THEIRS}/v1"]
    plan = cache.plan_clean(scope=_mine)
    assert [v.key for v in plan.versions] == [f"{MINE}/v1"]
    assert plan.freed_bytes == 10
    # Named outright, a version out of scope is still not planned.
    assert cache.plan_clean(keys=[f"{THEIRS}/v1"], scope=_mine).versions == []
    assert [v.key for v in cache.plan_clean(keys=[f"{MINE}/v1"]).versions] == [f"{MINE}/v1"]


def test_freed_bytes_within_a_scope_ignore_content_shared_outside_it(tmp_path: Path) -> None:
    """Unscoped, the shared blob stays on disk and is not counted; scoped, it counts as the
    scope's own, so the number reveals nothing of what lies outside the scope."""
    cache = Cache(tmp_path / "cache")
    same = os.urandom(300)
    _put(cache, f"{MINE}/v1", {"x": same, "own": b"o" * 7})
    theirs = _put(cache, f"{THEIRS}/v1", {"y": same})
    assert cache.plan_clean(dataset=MINE).freed_bytes == 7
    plan = cache.plan_clean(scope=_mine)
    assert plan.freed_bytes == 307
    assert plan.execute() == 307
    assert cache.snapshot_path(f"{MINE}/v1") is None
    assert (theirs / "y").read_bytes() == same


def test_a_scoped_verify_checks_only_the_scopes_versions_and_blobs(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    _put(cache, f"{MINE}/v1", {"a": b"mine\n"})
    theirs = _put(cache, f"{THEIRS}/v1", {"b": b"theirs\n"})
    os.chmod(theirs / "b", 0o644)
    (theirs / "b").write_bytes(b"broken\n")
    (cache.root / "tmp" / "deadhost~1~x~0").mkdir()  # left by a process of another host, long ago
    os.utime(cache.root / "tmp" / "deadhost~1~x~0", (0, 0))

    assert cache.verify(scope=_mine, repair=True) == []
    assert (theirs / "b").read_bytes() == b"broken\n"  # not repaired: not in scope
    assert (cache.root / "tmp" / "deadhost~1~x~0").is_dir()
    kinds = {p.kind for p in cache.verify()}
    assert kinds == {"corrupt_blob", "corrupt_file", "leftover_temp"}
