"""kill -9 in the middle of a version create: no committed version appears, and a rerun completes.

The create runs in a real child process against a real catalog and a real local provider. Its
provider is wrapped to pause after each pack it stores, only so that the test can kill it at a known
point (half the packs stored) instead of relying on timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.catalog.store import Catalog
from datakeep.config import Settings
from datakeep.providers.local import LocalProvider
from datakeep.storage import content as content_module
from datakeep.storage.admin import fsck
from datakeep.storage.content import ContentStore

from .conftest import read_tree, write_tree

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from datakeep.catalog.schema import LOCAL_TEAM_ID
    from datakeep.catalog.store import Catalog
    from datakeep.config import Settings
    from datakeep.providers.local import LocalProvider
    from datakeep.storage import content
    from datakeep.storage.content import ContentStore

    url, store_dir, home, src, provider_id, dataset_id = sys.argv[1:]
    content.PACK_TARGET = 16 * 1024
    content.PACKS_IN_FLIGHT = 1

    class Paused(LocalProvider):
        def write(self, key, data):
            super().write(key, data)
            if key.startswith("packs/"):
                print("stored", key, flush=True)
                time.sleep(0.5)

    catalog = Catalog(url)
    store = ContentStore(catalog, Paused(Path(store_dir)), provider_id, Settings(home=Path(home)), progress=False)
    summary = store.snapshot([src + "/"])
    version = catalog.insert_version(LOCAL_TEAM_ID, dataset_id, root=summary.root, file_count=summary.file_count,
                                     size=summary.size, commit=True)
    store.write_version_record(version)
    print("committed", flush=True)
    """
)


def test_kill_9_mid_create_then_rerun(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(content_module, "PACK_TARGET", 16 * 1024)
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(url)
    store_dir = tmp_path / "store"
    provider_id = catalog.insert_provider(
        LOCAL_TEAM_ID, name="local", type="local", config={"path": str(store_dir)}
    ).id
    dataset_id = catalog.insert_dataset(LOCAL_TEAM_ID, name="crash", storage_provider_id=provider_id).id
    src = write_tree(tmp_path / "src", {f"d{i % 4}/f{i}": os.urandom(3000) for i in range(60)})
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [
            sys.executable,
            str(script),
            url,
            str(store_dir),
            str(tmp_path / "home"),
            str(src),
            provider_id,
            dataset_id,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    stored = 0
    deadline = time.monotonic() + 60
    while stored < 3 and time.monotonic() < deadline:
        line = child.stdout.readline()
        assert line, "the child exited before it could be killed"
        assert not line.startswith("committed"), "the child finished before it could be killed"
        stored += line.startswith("stored")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    assert catalog.list_versions(LOCAL_TEAM_ID, dataset_id) == []
    packs_before = set(os.listdir(store_dir / "packs"))
    assert len(packs_before) >= 3

    # The rerun, as a user would run the same command again.
    store = ContentStore(catalog, LocalProvider(store_dir), provider_id, Settings(home=tmp_path / "home"))
    summary = store.snapshot([str(src) + "/"])
    version = catalog.insert_version(
        LOCAL_TEAM_ID,
        dataset_id,
        root=summary.root,
        file_count=summary.file_count,
        size=summary.size,
        commit=True,
    )
    store.write_version_record(version)
    packs_after = set(os.listdir(store_dir / "packs"))
    assert packs_before <= packs_after
    # What the killed run stored was kept and not sent again: the rerun added fewer packs than a full run.
    assert len(packs_after - packs_before) < len(packs_after)
    store.get(version.root, tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(src)
    assert fsck(catalog, store.provider, provider_id).ok
    assert not [p for p in store_dir.rglob("*") if ".tmp-" in p.name]
    catalog.close()
