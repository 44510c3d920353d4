"""Incremental create of one source folder: the stat cache by directory and reused directory nodes.

A directory whose files all match the stat cache reuses its earlier node without reading a file
or rebuilding the node; any change to one of its files (content, size, mtime, inode, name) must
still be picked up. Real files, a real catalog, a real local provider.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datakeep.providers.local import LocalProvider
from datakeep.storage import manifest
from datakeep.storage.content import ContentStore, TreeSummary

from .conftest import StoreFactory, read_tree, write_tree

OLD = time.time() - 3600  # old enough for the stat cache to trust


def _age(root: Path, when: float = OLD) -> None:
    for p in root.rglob("*"):
        os.utime(p, (when, when), follow_symlinks=False)


class Spy:
    """Which files are read and how many manifest nodes are encoded during a snapshot."""

    def __init__(self, store: ContentStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hashed: list[str] = []
        self.encoded = 0
        real_hash = store._hash
        real_encode = manifest.encode

        def spy_hash(f: Any) -> Any:
            self.hashed.append(f.dest)
            return real_hash(f)

        def spy_encode(entries: Any) -> bytes:
            self.encoded += 1
            return real_encode(entries)

        monkeypatch.setattr(store, "_hash", spy_hash)
        monkeypatch.setattr(manifest, "encode", spy_encode)

    def reset(self) -> None:
        self.hashed.clear()
        self.encoded = 0


@pytest.fixture
def local(make_store: StoreFactory, tmp_path: Path) -> ContentStore:
    return make_store(LocalProvider(tmp_path / "store"))


FILES = {f"d{i}/f{j}": f"content {i} {j}".encode() for i in range(4) for j in range(5)}


def _create(store: ContentStore, src: Path, parent: TreeSummary | None = None) -> TreeSummary:
    return store.snapshot([str(src) + "/"], hint_root=parent.root if parent else None)


@pytest.fixture
def first(local: ContentStore, tmp_path: Path) -> tuple[Path, TreeSummary]:
    src = write_tree(tmp_path / "src", FILES)
    _age(src)
    return src, _create(local, src)


def test_unchanged_folder_reuses_every_node_and_reads_nothing(
    local: ContentStore, first: tuple[Path, TreeSummary], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, v1 = first
    spy = Spy(local, monkeypatch)
    again = _create(local, src, v1)
    assert again == v1
    assert spy.hashed == []
    assert spy.encoded == 0  # no node rebuilt: 4 directories and the root reused


def _check_change(
    local: ContentStore,
    src: Path,
    v1: TreeSummary,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    change: Callable[[Path], None],
    expected: dict[str, bytes],
) -> None:
    spy = Spy(local, monkeypatch)
    change(src)
    v2 = _create(local, src, v1)
    assert v2.root != v1.root
    out = tmp_path / "out"
    local.get(v2.root, out)
    assert read_tree(out) == expected
    # Only d1 changed: the other three directories reuse their nodes (d1 and the root are new).
    assert spy.encoded == 2
    # And the next create of the same folder sees nothing new.
    spy.reset()
    assert _create(local, src, v2) == v2
    assert spy.hashed == []


def test_same_size_new_mtime_is_picked_up(
    local: ContentStore, first: tuple[Path, TreeSummary], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    src, v1 = first

    def change(src: Path) -> None:
        path = src / "d1" / "f2"
        path.write_bytes(b"CONTENT 1 2")  # same length
        os.utime(path, (OLD + 60, OLD + 60))

    _check_change(local, src, v1, monkeypatch, tmp_path, change, {**FILES, "d1/f2": b"CONTENT 1 2"})


def test_same_mtime_new_size_is_picked_up(
    local: ContentStore, first: tuple[Path, TreeSummary], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    src, v1 = first

    def change(src: Path) -> None:
        path = src / "d1" / "f2"
        path.write_bytes(b"content 1 2 and more")
        os.utime(path, (OLD, OLD))

    _check_change(local, src, v1, monkeypatch, tmp_path, change, {**FILES, "d1/f2": b"content 1 2 and more"})


def test_replaced_by_same_size_and_mtime_new_inode_is_picked_up(
    local: ContentStore, first: tuple[Path, TreeSummary], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    src, v1 = first

    def change(src: Path) -> None:
        path = src / "d1" / "f2"
        before = path.stat()
        other = src / "d1" / ".new"
        other.write_bytes(b"CONTENT 1 2")
        os.utime(other, ns=(before.st_mtime_ns, before.st_mtime_ns))
        os.replace(other, path)
        after = path.stat()
        assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        assert after.st_ino != before.st_ino

    _check_change(local, src, v1, monkeypatch, tmp_path, change, {**FILES, "d1/f2": b"CONTENT 1 2"})


def test_rename_is_picked_up(
    local: ContentStore, first: tuple[Path, TreeSummary], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    src, v1 = first

    def change(src: Path) -> None:
        os.rename(src / "d1" / "f2", src / "d1" / "g2")  # same inode, size, mtime; new name

    expected = {k: v for k, v in FILES.items() if k != "d1/f2"} | {"d1/g2": FILES["d1/f2"]}
    _check_change(local, src, v1, monkeypatch, tmp_path, change, expected)


def test_added_and_removed_files_are_picked_up(
    local: ContentStore, first: tuple[Path, TreeSummary], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    src, v1 = first

    def change(src: Path) -> None:
        (src / "d1" / "f0").unlink()
        (src / "d1" / "new").write_bytes(b"new")
        os.utime(src / "d1" / "new", (OLD, OLD))

    expected = {k: v for k, v in FILES.items() if k != "d1/f0"} | {"d1/new": b"new"}
    _check_change(local, src, v1, monkeypatch, tmp_path, change, expected)


def test_racy_file_in_unchanged_directory_is_read_again(
    local: ContentStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_tree(tmp_path / "src", FILES)
    _age(src)
    os.utime(src / "d2" / "f3")  # modified "now": within the racy window of any hash done now
    spy = Spy(local, monkeypatch)
    v1 = _create(local, src)
    spy.reset()
    assert _create(local, src, v1) == v1
    assert spy.hashed == ["d2/f3"]  # never trusted, so its directory's node is rebuilt too...
    assert spy.encoded == 1  # ...to the same digest: the root, whose entries are unchanged, is reused


def test_new_subdirectory_rebuilds_its_parents_only(
    local: ContentStore, first: tuple[Path, TreeSummary], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, v1 = first
    write_tree(src, {"d3/sub/x": b"x"})
    _age(src / "d3" / "sub")
    spy = Spy(local, monkeypatch)
    v2 = _create(local, src, v1)
    assert spy.hashed == ["d3/sub/x"]
    assert spy.encoded == 3  # d3/sub, d3 (same files, new sub-directory) and the root
    assert {p for p, _, _ in local.entries(v2.root)} == set(FILES) | {"d3/sub/x"}


def test_node_is_reused_only_when_the_earlier_version_holds_it(
    make_store: StoreFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stat cache is shared by every provider: a folder created on one provider and then on
    another (same cache) must have its content stored on the second one too."""
    src = write_tree(tmp_path / "src", FILES)
    _age(src)
    first = make_store(LocalProvider(tmp_path / "one"))
    v1 = _create(first, src)
    second = make_store(LocalProvider(tmp_path / "two"))
    spy = Spy(second, monkeypatch)
    v2 = _create(second, src)  # no earlier version on this provider
    assert v2 == v1
    assert spy.hashed == []  # digests came from the cache...
    out = tmp_path / "out"
    second.get(v2.root, out)  # ...but the content was stored on the second provider
    assert read_tree(out) == FILES
    # An earlier version that does not hold the node (another folder) does not allow reuse either.
    other = _create(second, write_tree(tmp_path / "other", {"d0/f0": b"something else"}))
    spy.reset()
    v3 = _create(second, src, other)
    assert v3 == v1
    assert spy.encoded == 5


def test_same_root_as_the_general_path(local: ContentStore, tmp_path: Path) -> None:
    """One folder (the fast walk) and the same folder plus an empty one (the general path) give
    the same manifest, for a tree with nesting, an empty file, an empty directory and a symlink."""
    src = write_tree(tmp_path / "src", {**FILES, "d0/deep/er/x": b"x", "empty": b""})
    (src / "nothing").mkdir()
    (src / "link").symlink_to(src / "d1")
    empty = tmp_path / "none"
    empty.mkdir()
    fast = local.snapshot([str(src) + "/"], target="/t")
    general = local.snapshot([str(src) + "/", str(empty) + "/"], target="/t")
    assert fast == general
    paths = {p for p, _, _ in local.entries(fast.root)}
    assert "t/link/f0" in paths
    assert "t/empty" in paths
    assert not any(p.startswith("t/nothing") for p in paths)
