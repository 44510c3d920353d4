"""``files list`` of one directory in a 1,000,000-file version: ``python -m bench.listing [FILES]``.

The manifest is built directly (1,000 directories of 1,000 files, made-up digests, no file bytes),
stored in a fresh SQLite catalog, and listed by a new ContentStore, so nothing is cached.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.catalog.store import Catalog
from datakeep.config import Settings
from datakeep.providers.local import LocalProvider
from datakeep.storage import manifest
from datakeep.storage.content import ContentStore
from datakeep.storage.hashing import digest_bytes


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    per_dir = 1000
    with tempfile.TemporaryDirectory(prefix="dk-listing-") as tmp:
        home = Path(tmp)
        catalog = Catalog(f"sqlite:///{home / 'catalog.db'}")
        provider_id = catalog.insert_provider(LOCAL_TEAM_ID, name="l", type="local", config={"path": tmp}).id
        store = ContentStore(
            catalog, LocalProvider(home / "store"), provider_id, Settings(home=home), progress=False
        )
        start = time.perf_counter()
        root = manifest.Node()
        for i in range(total):
            digest = digest_bytes(i.to_bytes(8, "big"))
            root.put(
                store.load_node,
                [f"part-{i // (per_dir * 100):03d}", f"dir-{i // per_dir:05d}", f"f{i:07d}.jpg"],
                digest,
                1000 + i % 5000,
            )
        summary = store.seal(root)
        print(
            f"built and stored a {summary.file_count:,}-file manifest in {time.perf_counter() - start:.1f} s"
        )
        fresh = ContentStore(
            catalog, LocalProvider(home / "store"), provider_id, Settings(home=home), progress=False
        )
        start = time.perf_counter()
        listed = fresh.list(summary.root, "/part-004/dir-00456/")
        first = time.perf_counter() - start
        start = time.perf_counter()
        top = fresh.list(summary.root, "/")
        second = time.perf_counter() - start
        print(f"files list of a 1,000-file directory: {len(listed)} entries in {first * 1000:.1f} ms (cold)")
        print(f"files list of the root: {len(top)} entries in {second * 1000:.1f} ms")
        catalog.close()


if __name__ == "__main__":
    main()
