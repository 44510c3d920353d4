"""The engine's public seams used by the server and the remote client: graft, scan_sources, lookup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datakeep.errors import Conflict, InvalidInput, InvalidPath
from datakeep.providers.local import LocalProvider
from datakeep.storage import manifest
from datakeep.storage.content import ContentStore, SourceFile, scan_sources
from datakeep.storage.hashing import EMPTY_DIGEST, digest_bytes
from datakeep.storage.manifest import FILE, Entry

from .conftest import StoreFactory, write_tree


@pytest.fixture
def local_store(make_store: StoreFactory, tmp_path: Path) -> ContentStore:
    return make_store(LocalProvider(tmp_path / "store"))


def test_graft_links_stored_content_into_the_same_tree_as_a_snapshot(
    local_store: ContentStore, tmp_path: Path
) -> None:
    files = {"a/x.txt": b"x" * 10, "a/b/y.txt": b"yy", "z": b""}
    src = write_tree(tmp_path / "s", files)
    snap = local_store.snapshot([str(src) + "/"])
    entries = [(p, digest_bytes(data), len(data)) for p, data in files.items()]
    grafted = local_store.graft(None, entries)
    assert grafted == snap  # same root digest: the manifest a local create would make
    # Laid over an existing tree, a later entry for a path wins.
    again = local_store.graft(
        snap.root, [("a/x.txt", digest_bytes(b"yy"), 2), ("new/y", digest_bytes(b"yy"), 2)]
    )
    assert {p: d for p, d, _ in local_store.entries(again.root)} == {
        "a/b/y.txt": digest_bytes(b"yy"),
        "a/x.txt": digest_bytes(b"yy"),
        "new/y": digest_bytes(b"yy"),
        "z": EMPTY_DIGEST,
    }
    assert (again.file_count, again.size) == (4, 6)


def test_graft_refuses_content_the_provider_lacks_or_a_wrong_size(
    local_store: ContentStore, tmp_path: Path
) -> None:
    snap = local_store.snapshot([str(write_tree(tmp_path / "s", {"f": b"abc"}))])
    stored = digest_bytes(b"abc")
    before = _tree_rows(local_store)
    with pytest.raises(Conflict, match="1 file"):
        local_store.graft(snap.root, [("g", stored, 3), ("h", digest_bytes(b"never stored"), 12)])
    with pytest.raises(InvalidInput, match="Wrong size"):
        local_store.graft(snap.root, [("g", stored, 4)])
    with pytest.raises(InvalidInput, match="Two sizes"):
        local_store.graft(snap.root, [("g", stored, 3), ("h", stored, 5)])
    with pytest.raises(InvalidInput, match="Wrong size"):
        local_store.graft(snap.root, [("e", EMPTY_DIGEST, 1)])
    with pytest.raises(InvalidPath):
        local_store.graft(snap.root, [("a/../g", stored, 3)])
    assert _tree_rows(local_store) == before  # nothing was written for a refused graft


def _tree_rows(store: ContentStore) -> int:
    with store.catalog.begin() as c:
        return int(c.exec_driver_sql("select count(*) from trees").scalar_one())


def test_scan_sources_yields_files_only_with_gradient_names(tmp_path: Path) -> None:
    write_tree(tmp_path / "d", {"x": b"1", "sub/y": b"22", "sub/deeper/z": b"333"})
    (tmp_path / "d" / "empty").mkdir()
    (tmp_path / "f").write_bytes(b"ffff")
    found = list(scan_sources([str(tmp_path / "d"), str(tmp_path / "f"), str(tmp_path / "d") + "/"], "t"))
    assert all(isinstance(f, SourceFile) for f in found)
    assert sorted(f.dest for f in found) == sorted(
        ["t/d/x", "t/d/sub/y", "t/d/sub/deeper/z", "t/f", "t/x", "t/sub/y", "t/sub/deeper/z"]
    )
    sizes = {f.dest: f.size for f in found}
    assert sizes["t/f"] == 4
    assert sizes["t/sub/deeper/z"] == 3
    assert all(os.path.isabs(f.path) for f in found)


def test_lookup_finds_every_name_of_a_sorted_node() -> None:
    names = ["a", "B", "é", "b", "\udcff-not-utf8", "a.b", "a0", "zz", ""]
    entries = manifest.decode(manifest.encode([Entry(n, FILE, "d" + n, 1, 1) for n in names if n]))
    for name in names:
        found = manifest.lookup(entries, name)
        if name:
            assert found is not None
            assert found.digest == "d" + name
        else:
            assert found is None
    assert manifest.lookup(entries, "a1") is None
    assert manifest.lookup(entries, "zzz") is None
    assert manifest.lookup([], "a") is None
