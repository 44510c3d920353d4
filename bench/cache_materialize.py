"""Presenting a cached version must cost the same for 200 files as for 20,000.

Run: ``.venv/bin/python bench/cache_materialize.py [--files 20000]``. It builds two versions in
a throw-away cache (the first build is O(files): one hardlink per file), then times presenting
each again, which is what every later job pays, and, where a mount namespace can be made, a
job's start with that version bind-mounted read-only at ``/datasets/in`` (one mount whatever
the file count).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import blake3

from datakeep.cache import Cache, CacheEntry
from datakeep.runner.sandbox import Mount, SandboxSpec, run_sandboxed, sandbox_status


def make_version(n: int, salt: str) -> tuple[list[CacheEntry], dict[str, bytes]]:
    data = {f"d{i % 100:02d}/f{i}.txt": f"{salt} {i}\n".encode() for i in range(n)}
    by_digest = {blake3.blake3(b).hexdigest(): b for b in data.values()}
    entries = [CacheEntry(p, blake3.blake3(b).hexdigest(), len(b)) for p, b in data.items()]
    return entries, by_digest


def fetcher(by_digest: dict[str, bytes]) -> Callable[[Sequence[CacheEntry], Path], None]:
    def fetch(missing: Sequence[CacheEntry], into: Path) -> None:
        for e in missing:
            (into / e.digest).write_bytes(by_digest[e.digest])

    return fetch


def _discard(_chunk: bytes) -> None:
    pass


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--job-repeat", type=int, default=30)
    args = parser.parse_args()
    can_mount = sandbox_status()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(Path(tmp) / "cache")
        rows = []
        for n in (200, args.files):
            entries, by_digest = make_version(n, f"v{n}")
            key = f"dsbench{n:08d}/v1"
            start = time.perf_counter()
            cache.materialize(key, entries, fetcher(by_digest))
            first = time.perf_counter() - start
            fetch = fetcher(by_digest)
            again = timed(functools.partial(cache.materialize, key, entries, fetch), args.repeat)
            job = float("nan")
            if can_mount:
                spec = SandboxSpec(
                    "test -r /datasets/in/d00/f0.txt",
                    [Mount(cache.materialize(key, entries, fetch), "/datasets/in")],
                )
                job = statistics.median(
                    timed(functools.partial(run_sandboxed, spec, on_output=_discard), args.job_repeat)
                )
            rows.append((n, first, statistics.median(again), max(again), job))
        print(
            f"{'files':>8} {'first build':>12} {'cached median':>14} {'cached max':>11} {'job start (mounted)':>20}"
        )
        for n, first, median, worst, job in rows:
            print(
                f"{n:>8} {first * 1000:>10.1f}ms {median * 1e6:>12.1f}us {worst * 1e6:>9.1f}us {job * 1000:>18.1f}ms"
            )
        ratio = rows[1][2] / rows[0][2]
        print(
            f"cached cost ratio {args.files} vs 200 files: {ratio:.2f} (near 1 means independent of file count)"
        )
        if can_mount:
            print(f"job start ratio {args.files} vs 200 files: {rows[1][4] / rows[0][4]:.2f}")


if __name__ == "__main__":
    main()
