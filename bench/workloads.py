"""Deterministic workloads: the same seed gives the same files, sizes, bytes and mtimes on every run."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

#: Every generated file gets this mtime (2024-01-01), so that a run's stat cache sees settled files.
FIXED_MTIME = 1_704_067_200


def many_small(root: Path, count: int, seed: int = 3) -> Path:
    """``count`` files of 1 to 16 KiB in nested folders (about 100 files per leaf folder)."""
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(seed)
    for i in range(count):
        folder = root / f"a{i // 2000:02d}" / f"b{(i // 100) % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img{i:07d}.bin"
        path.write_bytes(rng.randbytes(rng.randint(1024, 16 * 1024)))
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    (root / ".complete").touch()
    os.utime(root / ".complete", (FIXED_MTIME, FIXED_MTIME))
    return root


def few_large(root: Path, count: int, size: int, seed: int = 5) -> Path:
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = random.Random(seed)
    block = 8 * 1024 * 1024
    for i in range(count):
        path = root / f"shard-{i:03d}.bin"
        with open(path, "wb") as f:
            left = size
            while left:
                n = min(block, left)
                f.write(rng.randbytes(n))
                left -= n
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    (root / ".complete").touch()
    return root


def mutate(root: Path, fraction: float = 0.01, seed: int = 7) -> tuple[int, int]:
    """Modify ``fraction`` of the files and add as many new ones: the incremental workload."""
    rng = random.Random(seed)
    files = sorted(p for p in root.rglob("*.bin"))
    n = max(1, int(len(files) * fraction))
    for path in rng.sample(files, n):
        path.write_bytes(rng.randbytes(rng.randint(1024, 16 * 1024)))
    for i in range(n):
        folder = files[rng.randrange(len(files))].parent
        (folder / f"new{i:06d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 16 * 1024)))
    return n, n
