"""The shared-storage cache on a real filesystem, with real concurrent processes.

The storage engine supplies ``fetch`` in production; here a fake fetch writes known bytes
(:class:`FakeRemote`), which is all the cache sees of a provider anyway.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import blake3
import pytest

from datakeep.cache import Cache, CacheEntry
from datakeep.cache.owners import FileLock, Owner
from datakeep.errors import IntegrityError, InvalidInput, InvalidPath, QuotaExceeded

SRC = str(Path(__file__).resolve().parents[2] / "src")


def entry(path: str, data: bytes) -> CacheEntry:
    return CacheEntry(path, blake3.blake3(data).hexdigest(), len(data))


class FakeRemote:
    """Stands in for a storage provider: serves known bytes and counts what it was asked for."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.by_digest = {blake3.blake3(b).hexdigest(): b for b in files.values()}
        self.calls: list[list[str]] = []
        self.corrupt: set[str] = set()

    def __call__(self, missing: Sequence[CacheEntry], into: Path) -> None:
        self.calls.append([e.path for e in missing])
        for e in missing:
            data = self.by_digest[e.digest]
            if e.digest in self.corrupt:
                data = b"X" + data[1:]
            (into / e.digest).write_bytes(data)


def version(files: dict[str, bytes]) -> tuple[list[CacheEntry], FakeRemote]:
    return [entry(p, b) for p, b in files.items()], FakeRemote(files)


FILES = {"hello.txt": b"hello\n", "a/b/c.bin": bytes(range(256)) * 4, "a/d.txt": b"d" * 100, "empty": b""}


def test_materialize_builds_a_read_only_hardlink_tree(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    entries, remote = version(FILES)
    path = cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)
    for rel, data in FILES.items():
        f = path / rel
        assert f.read_bytes() == data
        assert stat.S_IMODE(f.stat().st_mode) == 0o444
        blob = cache.blob_path(blake3.blake3(data).hexdigest())
        assert f.stat().st_ino == blob.stat().st_ino  # hardlink, no copy
    assert stat.S_IMODE(path.stat().st_mode) == 0o555
    assert stat.S_IMODE((path / "a").stat().st_mode) == 0o555
    # The empty file is never asked of the remote: storage engines do not store it.
    assert remote.calls == [["hello.txt", "a/b/c.bin", "a/d.txt"]]
    assert list((cache.root / "tmp").iterdir()) == []


def test_cached_version_is_reused_and_blobs_are_shared(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    entries, remote = version(FILES)
    first = cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)
    assert cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote) == first
    assert len(remote.calls) == 1
    # A second version sharing two files fetches only its new one.
    files2 = {"hello.txt": FILES["hello.txt"], "moved/d.txt": FILES["a/d.txt"], "new.txt": b"new"}
    entries2, remote2 = version(files2)
    second = cache.materialize("dsaaaaaaaaaaaaa/v2", entries2, remote2)
    assert remote2.calls == [["new.txt"]]
    assert (second / "moved/d.txt").read_bytes() == FILES["a/d.txt"]
    assert cache.usage() == sum(len(b) for b in FILES.values()) + 3


def test_bad_fetch_is_rejected_and_nothing_unverified_is_kept(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    entries, remote = version(FILES)
    bad = entries[1].digest
    remote.corrupt.add(bad)
    with pytest.raises(IntegrityError, match="a/b/c.bin"):
        cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)
    assert not cache.blob_path(bad).exists()
    assert cache.snapshot_path("dsaaaaaaaaaaaaa/v1") is None
    assert cache.blob_path(entries[0].digest).exists()  # verified work is not thrown away
    remote.corrupt.clear()
    path = cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)
    assert remote.calls[-1] == ["a/b/c.bin"]
    assert (path / "a/b/c.bin").read_bytes() == FILES["a/b/c.bin"]


def test_fetch_that_forgets_a_file_fails(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    entries, _ = version(FILES)
    with pytest.raises(IntegrityError, match="not delivered"):
        cache.materialize("dsaaaaaaaaaaaaa/v1", entries, lambda missing, into: None)


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a//b", "a/./b", ""])
def test_paths_escaping_the_version_are_refused(tmp_path: Path, path: str) -> None:
    cache = Cache(tmp_path / "cache")
    with pytest.raises(InvalidPath):
        cache.materialize("dsaaaaaaaaaaaaa/v1", [entry(path, b"x")], FakeRemote({path: b"x"}))


@pytest.mark.parametrize("key", ["", "../x", "ds/../x", "/abs", "ds/v 1"])
def test_bad_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidInput):
        Cache(tmp_path / "cache").materialize(key, [], FakeRemote({}))


def test_file_under_a_file_is_refused(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    entries, remote = version({"a": b"1", "a/b": b"2"})
    with pytest.raises(InvalidPath):
        cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)
    assert cache.snapshot_path("dsaaaaaaaaaaaaa/v1") is None


# CONCURRENCY ACROSS PROCESSES

WORKER = textwrap.dedent("""
    import os, sys, time, uuid
    from pathlib import Path
    import blake3
    sys.path.insert(0, {src!r})
    from datakeep.cache import Cache, CacheEntry

    root, calls, go, max_wait = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
    files = {{f"dir{{i % 7}}/f{{i}}.txt": (f"file {{i}} " * (i + 1)).encode() for i in range(60)}}
    entries = [CacheEntry(p, blake3.blake3(b).hexdigest(), len(b)) for p, b in files.items()]
    by_digest = {{e.digest: files[e.path] for e in entries}}

    def fetch(missing, into):
        (calls / uuid.uuid4().hex).write_text(str(len(missing)))
        for e in missing:
            data = by_digest[e.digest]
            with open(into / e.digest, "wb") as f:   # written slowly, in two halves
                f.write(data[: len(data) // 2]); f.flush(); time.sleep(0.001)
                f.write(data[len(data) // 2 :])
        if sys.argv[5] == "hang":
            (calls.parent / "hanging").touch()
            time.sleep(600)

    while not go.exists():
        time.sleep(0.005)
    path = Cache(root, lock_max_wait=max_wait).materialize("dsaaaaaaaaaaaaa/v1", entries, fetch)
    for p, b in files.items():
        assert (path / p).read_bytes() == b, p
    print(path)
""")


def _workers(
    tmp_path: Path, n: int, max_wait: float, mode: str = "ok", *, machines: bool = False
) -> list[subprocess.Popen[str]]:
    """``n`` processes materializing one version; with ``machines``, each in its own UTS
    namespace under its own hostname, which is all that tells machines apart on shared storage."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(src=SRC))
    (tmp_path / "calls").mkdir(exist_ok=True)
    args = [str(tmp_path / "cache"), str(tmp_path / "calls"), str(tmp_path / "go"), str(max_wait), mode]
    procs = []
    for i in range(n):
        argv = [sys.executable, str(script), *args]
        if machines:
            argv = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', f"node-{i}-{mode}", *argv]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
    return procs


MACHINES = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root to give processes other hostnames",
)


def _finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        outs.append(out.strip())
    return outs


def test_concurrent_processes_fetch_once_with_the_lock(tmp_path: Path) -> None:
    procs = _workers(tmp_path, 5, max_wait=120)
    (tmp_path / "go").touch()
    paths = _finish(procs)
    assert len(set(paths)) == 1
    assert len(list((tmp_path / "calls").iterdir())) == 1  # the lock avoided duplicate downloads
    cache = Cache(tmp_path / "cache")
    assert cache.verify() == []
    assert list((cache.root / "tmp").iterdir()) == []
    assert list((cache.root / "locks").iterdir()) == []


def test_concurrent_processes_are_correct_without_the_lock(tmp_path: Path) -> None:
    # max_wait=0: nobody waits for the lock holder, so all race through every step.
    procs = _workers(tmp_path, 5, max_wait=0)
    (tmp_path / "go").touch()
    paths = _finish(procs)
    assert len(set(paths)) == 1
    assert len(list((tmp_path / "calls").iterdir())) >= 1
    cache = Cache(tmp_path / "cache")
    assert cache.verify() == []
    assert [v.key for v in cache.list()] == ["dsaaaaaaaaaaaaa/v1"]
    assert list((cache.root / "tmp").iterdir()) == []


def test_kill_9_mid_fetch_leaves_the_cache_consistent(tmp_path: Path) -> None:
    (procs,) = [_workers(tmp_path, 1, max_wait=120, mode="hang")]
    (tmp_path / "go").touch()
    deadline = time.monotonic() + 60
    while not (tmp_path / "hanging").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    cache = Cache(tmp_path / "cache", lock_stale_after=3600)  # only the dead pid can free the lock
    assert cache.snapshot_path("dsaaaaaaaaaaaaa/v1") is None
    assert list(cache._iter_blobs()) == []  # nothing half-written was published
    assert [p.kind for p in cache.verify()] == ["leftover_temp"]
    # A new process proceeds at once (the lock's owner is dead) and sweeps the leftovers.
    procs = _workers(tmp_path, 1, max_wait=5)
    assert _finish(procs)[0].endswith("dsaaaaaaaaaaaaa/v1/files")
    assert cache.verify() == []
    assert list((cache.root / "tmp").iterdir()) == []


@MACHINES
def test_machines_sharing_the_cache_race_to_one_correct_result(tmp_path: Path) -> None:
    procs = _workers(tmp_path, 4, max_wait=0, machines=True)  # nobody waits: every step races
    (tmp_path / "go").touch()
    assert len(set(_finish(procs))) == 1
    cache = Cache(tmp_path / "cache")
    assert cache.verify() == []
    assert [v.key for v in cache.list()] == ["dsaaaaaaaaaaaaa/v1"]
    assert list((cache.root / "tmp").iterdir()) == []


@MACHINES
def test_a_crashed_machines_lock_holds_only_until_its_heartbeat_stops(tmp_path: Path) -> None:
    (procs,) = [_workers(tmp_path, 1, max_wait=120, mode="hang", machines=True)]
    (tmp_path / "go").touch()
    deadline = time.monotonic() + 60
    while not (tmp_path / "hanging").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (lock,) = (tmp_path / "cache" / "locks").iterdir()
    assert json.loads(lock.read_text())["host"] == "node-0-hang"  # its pid means nothing here
    procs[0].send_signal(signal.SIGKILL)  # the machine "crashes": its heartbeat stops
    procs[0].wait()
    # A lock never judged stale would be waited out (max_wait), then left behind: checked below.
    cache = Cache(tmp_path / "cache", lock_stale_after=1.0, lock_max_wait=30)
    files = {f"dir{i % 7}/f{i}.txt": (f"file {i} " * (i + 1)).encode() for i in range(60)}  # the worker's
    entries, remote = version(files)
    got = cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)  # breaks the dead lock, then fetches
    assert (got / "dir1" / "f1.txt").read_bytes() == files["dir1/f1.txt"]
    assert len(remote.calls) == 1
    assert list((cache.root / "locks").iterdir()) == []  # broken, taken, released: not waited out
    assert cache.verify() == []  # the crashed machine's work in progress is not ours to judge yet
    assert len(list((cache.root / "tmp").iterdir())) == 1


# VERIFY


def test_tampered_blob_is_caught_and_fetched_again(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    entries, remote = version(FILES)
    path = cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)
    assert cache.verify() == []
    victim = path / "a/d.txt"
    os.chmod(victim, 0o644)  # as root could; the inode is the blob's too
    victim.write_bytes(b"tampered")
    problems = cache.verify()
    assert {(p.kind, p.path.name) for p in problems} >= {
        ("corrupt_blob", entries[2].digest[2:]),
        ("corrupt_file", "d.txt"),
    }
    assert not any(p.repaired for p in problems)
    repaired = cache.verify(repair=True)
    assert all(p.repaired for p in repaired)
    assert cache.snapshot_path("dsaaaaaaaaaaaaa/v1") is None
    path = cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)
    assert remote.calls[-1] == ["a/d.txt"]  # only the corrupted file is fetched again
    assert (path / "a/d.txt").read_bytes() == FILES["a/d.txt"]
    assert cache.verify() == []


def test_verify_reports_missing_and_unexpected_files(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    entries, remote = version(FILES)
    path = cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)
    os.chmod(path, 0o755)
    (path / "hello.txt").unlink()
    (path / "intruder").write_text("x")
    kinds = sorted(p.kind for p in cache.verify())
    assert kinds == ["missing_file", "unexpected_file"]


# PINS, EVICTION, CLEAN


def _fill(cache: Cache, n: int, size: int = 1000) -> list[str]:
    keys = []
    for i in range(n):
        key = f"ds{chr(ord('a') + i) * 13}/v{i}"
        entries, remote = version({"data.bin": bytes([i]) * size})
        cache.materialize(key, entries, remote)
        # Explicit last-use times, oldest first, instead of relying on the clock.
        manifest = cache._unit(key) / "manifest.json"
        os.utime(manifest, (1_000_000 + i, 1_000_000 + i))
        keys.append(key)
    return keys


def test_lru_eviction_never_touches_a_pinned_version(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    keys = _fill(cache, 4)
    pin = cache.pin(keys[0], "job-1")  # the oldest, so the first LRU choice
    capped = Cache(tmp_path / "cache", max_size=3000)
    entries, remote = version({"data.bin": b"z" * 1000})
    capped.materialize("dszzzzzzzzzzzzz/v9", entries, remote)
    left = {v.key for v in capped.list()}
    assert left == {keys[0], keys[3], "dszzzzzzzzzzzzz/v9"}
    assert capped.usage() <= 3000
    pin.release()
    assert capped.evict_to_fit(1000) == [keys[0], keys[3]]
    assert [v.key for v in capped.list()] == ["dszzzzzzzzzzzzz/v9"]


def test_pin_of_another_live_process_holds_and_a_dead_one_does_not(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    keys = _fill(cache, 2)
    holder = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {SRC!r})
        from datakeep.cache import Cache
        Cache(__import__("pathlib").Path({str(cache.root)!r})).pin(sys.argv[1], "job-x")
        print("pinned", flush=True)
        time.sleep(600)
    """)
    procs = [
        subprocess.Popen([sys.executable, "-c", holder, k], stdout=subprocess.PIPE, text=True) for k in keys
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "pinned"
        assert [len(v.pins) for v in cache.list()] == [1, 1]
        assert cache.list()[0].pins[0].label == "job-x"
        procs[0].send_signal(signal.SIGKILL)  # the job on keys[0] crashed
        procs[0].wait()
        assert cache.evict_to_fit(0) == [keys[0]]
        assert [v.key for v in cache.list()] == [keys[1]]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_pins_from_another_host_expire_without_heartbeat(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    (key,) = _fill(cache, 1)
    pin_dir = cache._pin_dir(key)
    pin_dir.mkdir(parents=True, exist_ok=True)
    other = Owner(host="other-node", pid=1, started="1")
    fresh = pin_dir / f"{other.tag}~a.json"
    fresh.write_text(
        json.dumps({"label": "remote-job", "created": "2026-01-01T00:00:00+00:00", **other.to_json()})
    )
    assert [p.host for p in cache.pins(key)] == ["other-node"]  # cannot check its pid: trusted
    os.utime(fresh, (1_000_000, 1_000_000))  # its host stopped refreshing it long ago
    assert cache.pins(key) == []


def test_quota_exceeded_when_everything_is_pinned(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", max_size=1500)
    keys = _fill(cache, 1)
    cache.pin(keys[0], "job")
    entries, remote = version({"big": b"b" * 1000})
    with pytest.raises(QuotaExceeded, match="pinned"):
        cache.materialize("dszzzzzzzzzzzzz/v1", entries, remote)
    assert remote.calls == []  # refused before downloading anything
    assert cache.snapshot_path(keys[0]) is not None


def test_a_version_larger_than_the_cap_is_refused_as_such(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", max_size=500)
    entries, remote = version({"big": b"b" * 1000})
    with pytest.raises(
        QuotaExceeded, match=r"dszzzzzzzzzzzzz:v1 needs .* more than its whole size cap"
    ) as caught:
        cache.materialize("dszzzzzzzzzzzzz/v1", entries, remote)
    assert "pinned" not in str(caught.value)  # nothing is pinned: the cap itself is too small
    assert remote.calls == []


def test_materialize_with_pin_then_unpin(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    entries, remote = version(FILES)
    cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote, pin="job-7")
    assert [p.label for p in cache.list()[0].pins] == ["job-7"]
    assert cache.evict_to_fit(0) == []
    cache.unpin("dsaaaaaaaaaaaaa/v1", "job-7")
    assert cache.list()[0].pins == ()
    assert cache.evict_to_fit(0) == ["dsaaaaaaaaaaaaa/v1"]
    assert cache.usage() == 0


def test_plan_clean_filters_and_counts_shared_bytes_once(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    shared = b"s" * 500
    for key, own in (
        ("dsaaaaaaaaaaaaa/v1", b"1" * 100),
        ("dsaaaaaaaaaaaaa/v2", b"2" * 200),
        ("dsbbbbbbbbbbbbb/v1", b"3" * 300),
    ):
        entries, remote = version({"shared": shared, "own": own})
        cache.materialize(key, entries, remote)
    os.utime(cache._unit("dsaaaaaaaaaaaaa/v1") / "manifest.json", (1_000_000, 1_000_000))
    plan = cache.plan_clean(dataset="dsaaaaaaaaaaaaa")
    assert sorted(v.key for v in plan.versions) == ["dsaaaaaaaaaaaaa/v1", "dsaaaaaaaaaaaaa/v2"]
    assert plan.freed_bytes == 300  # the shared blob stays for dsbbb
    old = cache.plan_clean(older_than=timedelta(days=1))
    assert [v.key for v in old.versions] == ["dsaaaaaaaaaaaaa/v1"]
    assert old.freed_bytes == 100
    assert len(cache.list()) == 3  # planning removes nothing: --dry-run
    cache.pin("dsaaaaaaaaaaaaa/v2", "job")
    plan = cache.plan_clean()
    assert [v.key for v in plan.kept_pinned] == ["dsaaaaaaaaaaaaa/v2"]
    assert plan.freed_bytes == 100 + 300
    assert plan.execute() == 400
    assert [v.key for v in cache.list()] == ["dsaaaaaaaaaaaaa/v2"]
    assert cache.verify() == []


def test_a_version_pinned_after_the_plan_is_still_kept(tmp_path: Path) -> None:
    """A job may start between ``clean``'s plan (printed first) and its execution."""
    cache = Cache(tmp_path / "cache")
    keys = _fill(cache, 2)
    plan = cache.plan_clean()
    assert sorted(v.key for v in plan.versions) == sorted(keys)
    other = Cache(tmp_path / "cache")  # as another process would
    other.pin(keys[0], "job-started-meanwhile")
    plan.execute()
    assert [v.key for v in cache.list()] == [keys[0]]
    assert cache.verify() == []


def test_verify_shows_progress_and_finds_nothing_in_a_sound_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = Cache(tmp_path / "cache")
    entries, remote = version(FILES)
    cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)
    assert cache.verify(progress=True) == []
    assert "Verifying the cache" in capsys.readouterr().err


def test_list_shows_sizes_files_and_last_use(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    entries, remote = version(FILES)
    cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)
    (v,) = cache.list()
    assert (v.key, v.dataset, v.files, v.size) == (
        "dsaaaaaaaaaaaaa/v1",
        "dsaaaaaaaaaaaaa",
        4,
        sum(len(b) for b in FILES.values()),
    )
    os.utime(cache._unit(v.key) / "manifest.json", (1_000_000, 1_000_000))
    cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)  # a use refreshes last_used
    assert cache.list()[0].last_used.timestamp() > 1_000_000


# LOCKS


def test_lock_of_a_dead_process_is_broken_at_once(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "started": "1", "token": "t"}))
    # Waiting out max_wait would also "acquire"; a short one makes a lock that is not broken fail.
    lock = FileLock(path, stale_after=3600, max_wait=5)
    assert lock.acquire()
    lock.release()
    assert not path.exists()


def test_lock_of_another_host_is_broken_only_when_stale(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text(json.dumps({"host": "other-node", "pid": 1, "started": "1", "token": "t"}))
    assert not FileLock(path, stale_after=3600, max_wait=0).acquire()  # fresh: respected
    os.utime(path, (1_000_000, 1_000_000))
    lock = FileLock(path, stale_after=3600, max_wait=0)
    assert lock.acquire()
    lock.release()


def test_cached_version_is_presented_without_reading_its_entries(tmp_path: Path) -> None:
    """The constant-time claim without a clock: a cached version needs no entries and no fetch."""
    cache = Cache(tmp_path / "cache")
    entries, remote = version(FILES)
    path = cache.materialize("dsaaaaaaaaaaaaa/v1", entries, remote)

    def no_fetch(missing: Sequence[CacheEntry], into: Path) -> None:
        raise AssertionError("fetched again")

    class Unread(Sequence[CacheEntry]):
        """Entries a cached version must not even look at (20,000 of them would cost O(n))."""

        def __len__(self) -> int:
            raise AssertionError("entries counted")

        def __getitem__(self, index: Any) -> Any:
            raise AssertionError("entries read")

    assert cache.materialize("dsaaaaaaaaaaaaa/v1", Unread(), no_fetch) == path
    assert cache.lookup("dsaaaaaaaaaaaaa/v1") == path
    assert cache.lookup("dsaaaaaaaaaaaaa/v2") is None
