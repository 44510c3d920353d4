"""Incremental create against a full create, local provider, in one process:
``python -m bench.incremental [--files N] [--profile] [--repeat K]``.

The many-small workload (bench/workloads.py) is copied with ``cp -a`` (new inodes, same mtimes,
as the full benchmark does), created once, mutated (1% of files modified, as many added), then
created again with the first version as ``hint_root``. Prints both operation times and their
ratio (the issue-3 target is <= 0.10). ``--profile`` prints the top functions of the last create timed.
``--repeat`` runs further creates of the unchanged tree, 2 s later (the steady state of a user
re-creating a folder that did not change since: every directory's node is reused).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import workloads
from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.catalog.store import Catalog
from datakeep.config import Settings
from datakeep.providers.local import LocalProvider
from datakeep.storage.content import ContentStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--repeat", type=int, default=0)
    parser.add_argument("--sort", default="tottime", help="cProfile sort key for --profile")
    args = parser.parse_args()
    work = Path(__file__).resolve().parent / ".work"
    source = workloads.many_small(work / f"many-small-{args.files}", args.files)
    with tempfile.TemporaryDirectory(prefix="dk-inc-", dir=work) as tmp:
        home = Path(tmp) / "home"
        data = Path(tmp) / "data"
        subprocess.run(["cp", "-a", str(source), str(data)], check=True)
        catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
        provider_id = catalog.insert_provider(
            LOCAL_TEAM_ID, name="l", type="local", config={"path": str(Path(tmp) / "store")}
        ).id

        def store() -> ContentStore:
            return ContentStore(
                catalog, LocalProvider(Path(tmp) / "store"), provider_id, Settings(home=home), progress=False
            )

        start = time.perf_counter()
        full = store().snapshot([str(data) + "/"])
        full_s = time.perf_counter() - start
        modified, added = workloads.mutate(data)
        profiler = cProfile.Profile() if args.profile else None
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        inc = store().snapshot([str(data) + "/"], hint_root=full.root)
        if profiler:
            profiler.disable()
        inc_s = time.perf_counter() - start
        print(f"full create:        {full.file_count:,} files in {full_s:.3f} s")
        print(
            f"incremental create: {inc.file_count:,} files ({modified} modified, {added} added) in "
            f"{inc_s:.3f} s = {inc_s / full_s:.3f} of the full create"
        )
        if args.repeat:
            time.sleep(2.1)  # past the stat cache's racy window: the files just changed are settled
        for i in range(args.repeat):
            if profiler:  # profile the last unchanged re-create instead
                profiler = cProfile.Profile()
                profiler.enable()
            start = time.perf_counter()
            again = store().snapshot([str(data) + "/"], hint_root=inc.root)
            if profiler:
                profiler.disable()
            assert again.root == inc.root
            print(f"unchanged re-create {i + 1}: {time.perf_counter() - start:.3f} s")
        catalog.close()
        shutil.rmtree(data, ignore_errors=True)
    if profiler:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(25)


if __name__ == "__main__":
    main()
