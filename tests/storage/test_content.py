"""ContentStore against a real catalog and each real provider."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from datakeep.catalog.store import Catalog
from datakeep.errors import FileNotFoundInVersion, IntegrityError, InvalidInput, InvalidPath
from datakeep.providers.base import Provider
from datakeep.providers.local import LocalProvider
from datakeep.storage import content as content_module
from datakeep.storage.content import ContentStore
from datakeep.storage.hashing import digest_bytes

from .conftest import StoreFactory, read_tree, write_tree

OLD = time.time() - 3600  # an mtime old enough for the stat cache to trust


def _age(root: Path) -> None:
    for p in root.rglob("*"):
        os.utime(p, (OLD, OLD), follow_symlinks=False)


def _count_trees(store: ContentStore) -> int:
    with store.catalog.begin() as c:
        return int(c.exec_driver_sql("select count(*) from trees").scalar_one())


def _paths(store: ContentStore, root: str | None) -> dict[str, int]:
    return {p: size for p, _, size in store.entries(root)}


def test_put_key_mapping_follows_gradient(store: ContentStore, tmp_path: Path) -> None:
    write_tree(tmp_path / "d", {"x.txt": b"x", "sub/y.txt": b"yy"})
    (tmp_path / "f.bin").write_bytes(b"fff")
    s1 = store.snapshot([str(tmp_path / "f.bin")], target="/")
    assert _paths(store, s1.root) == {"f.bin": 3}
    s2 = store.snapshot([str(tmp_path / "d")], target="/t")
    assert _paths(store, s2.root) == {"t/d/x.txt": 1, "t/d/sub/y.txt": 2}
    s3 = store.snapshot([str(tmp_path / "d") + "/"], target="t/u/", base_root=s1.root)
    assert _paths(store, s3.root) == {"f.bin": 3, "t/u/x.txt": 1, "t/u/sub/y.txt": 2}
    assert (s3.file_count, s3.size) == (3, 6)


def test_missing_source_is_refused(store: ContentStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="Source path not found: .*nope"):
        store.snapshot([str(tmp_path / "nope")])


def test_roundtrip_small_large_empty(
    store: ContentStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(content_module, "PACK_THRESHOLD", 4096)
    files = {
        "a/one.txt": b"hello",
        "a/b/c/deep.bin": os.urandom(3000),
        "zero": b"",
        "large.bin": os.urandom(200_000),
        "dup1": b"same bytes",
        "a/dup2": b"same bytes",
    }
    src = write_tree(tmp_path / "src", files)
    (src / "empty-dir").mkdir()
    summary = store.snapshot([str(src) + "/"])
    assert summary.file_count == 6
    assert summary.size == sum(len(v) for v in files.values())
    out = tmp_path / "out"
    assert store.get(summary.root, out) == 6
    assert read_tree(out) == files
    assert not (out / "empty-dir").exists()


def test_identical_content_is_stored_once(
    store: ContentStore, provider: Provider, make_store: StoreFactory, tmp_path: Path
) -> None:
    files = {f"d{i % 5}/f{i}": os.urandom(2000) for i in range(200)}
    write_tree(tmp_path / "src", files)
    first = store.snapshot([str(tmp_path / "src") + "/"])
    objects_before = sorted(i.key for i in provider.list(""))
    # The same content again, and under another name (another dataset on the same provider).
    again = store.snapshot([str(tmp_path / "src") + "/"])
    assert again == first
    other = make_store(provider).snapshot([str(tmp_path / "src")], target="elsewhere")
    assert other.root != first.root
    new_objects = sorted(set(i.key for i in provider.list("")) - set(objects_before))
    assert all(k.startswith("trees/") for k in new_objects), new_objects
    assert len(new_objects) == 1


def test_one_percent_change_writes_one_percent(
    store: ContentStore, provider: Provider, tmp_path: Path
) -> None:
    files = {f"d{i % 20}/f{i}": os.urandom(1000) for i in range(1000)}
    src = write_tree(tmp_path / "src", files)
    first = store.snapshot([str(src) + "/"])
    before = {i.key: i.size for i in provider.list("")}
    trees_before = _count_trees(store)
    for i in range(0, 1000, 100):  # 10 files = 1%
        (src / f"d{i % 20}/f{i}").write_bytes(os.urandom(1000))
    second = store.snapshot([str(src) + "/"], hint_root=first.root)
    after = {i.key: i.size for i in provider.list("")}
    added = {k: v for k, v in after.items() if k not in before}
    content_bytes = sum(v for k, v in added.items() if k.startswith("packs/"))
    assert 10_000 <= content_bytes < 12_000  # 10 files of 1000 bytes, plus the pack index
    trees_after = _count_trees(store)
    assert trees_after - trees_before == 2  # the root and d0 (every changed file is in d0): not d1..d19
    assert [c.kind for c in store.diff(first.root, second.root)] == ["modified"] * 10


def test_list_directories_and_recursive(store: ContentStore, tmp_path: Path) -> None:
    write_tree(tmp_path / "s", {"top.txt": b"1", "sub/a.txt": b"22", "sub/deeper/b.txt": b"333"})
    root = store.snapshot([str(tmp_path / "s") + "/"]).root
    listed = store.list(root, "/")
    assert [(e.path, e.size, e.is_dir) for e in listed] == [("sub/", None, True), ("top.txt", 1, False)]
    assert [(e.path, e.size) for e in store.list(root, "/sub/", recursive=True)] == [
        ("a.txt", 2),
        ("deeper/b.txt", 3),
    ]
    assert [e.path for e in store.list(root, "sub/a.txt")] == ["a.txt"]
    with pytest.raises(FileNotFoundInVersion):
        store.list(root, "nothing/here")
    assert store.list(None, "/") == []
    with pytest.raises(FileNotFoundInVersion):
        store.list(None, "x")


def test_get_subset_file_or_prefix(store: ContentStore, tmp_path: Path) -> None:
    write_tree(tmp_path / "s", {"a/x": b"x", "a/y": b"y", "ab": b"ab", "b/z": b"z"})
    root = store.snapshot([str(tmp_path / "s") + "/"]).root
    assert store.get(root, tmp_path / "o1", ["a"]) == 2
    assert read_tree(tmp_path / "o1") == {"a/x": b"x", "a/y": b"y"}
    assert store.get(root, tmp_path / "o2", ["/ab", "b/"]) == 2
    assert read_tree(tmp_path / "o2") == {"ab": b"ab", "b/z": b"z"}
    with pytest.raises(FileNotFoundInVersion):
        store.get(root, tmp_path / "o3", ["missing"])


def test_get_never_writes_through_a_symlink(store: ContentStore, tmp_path: Path) -> None:
    write_tree(tmp_path / "s", {"a/x": b"x"})
    root = store.snapshot([str(tmp_path / "s") + "/"]).root
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (out / "a").symlink_to(outside)
    with pytest.raises(InvalidPath, match="already exists"):
        store.get(root, out)
    assert list(outside.iterdir()) == []


def test_get_detects_corruption_and_names_the_file(make_store: StoreFactory, tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path / "store")
    store = make_store(provider)
    write_tree(tmp_path / "s", {"good.txt": b"fine", "bad.txt": b"will be damaged"})
    root = store.snapshot([str(tmp_path / "s") + "/"]).root
    loc = store.index.locate([digest_bytes(b"will be damaged")])[digest_bytes(b"will be damaged")]
    path = provider.root / loc.key
    data = bytearray(path.read_bytes())
    data[loc.offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"bad\.txt"):
        store.get(root, tmp_path / "out")
    assert not (tmp_path / "out" / "bad.txt").exists()


def test_remove_files_prefixes_everything(store: ContentStore, tmp_path: Path) -> None:
    write_tree(tmp_path / "s", {"a/x": b"x", "a/y": b"y", "b": b"b"})
    root = store.snapshot([str(tmp_path / "s") + "/"]).root
    one = store.remove(root, ["a/x"])
    assert _paths(store, one.root) == {"a/y": 1, "b": 1}
    prefix = store.remove(root, ["a/"])
    assert _paths(store, prefix.root) == {"b": 1}
    assert store.remove(root, ["/"]).root is None
    with pytest.raises(FileNotFoundInVersion):
        store.remove(root, ["zzz"])


def test_diff_reports_changes_and_skips_equal_subtrees(store: ContentStore, tmp_path: Path) -> None:
    files = {f"same{i}/f{j}": f"{i}-{j}".encode() for i in range(10) for j in range(10)}
    files.update({"chg/keep": b"k", "chg/mod": b"old", "chg/gone": b"g"})
    src = write_tree(tmp_path / "s", files)
    old = store.snapshot([str(src) + "/"]).root
    (src / "chg/mod").write_bytes(b"newer")
    (src / "chg/gone").unlink()
    (src / "chg/new").write_bytes(b"n")
    new = store.snapshot([str(src) + "/"]).root
    loaded: list[str] = []
    real_load = store.load_node
    store._trees.clear()

    def counting(digest: str) -> list:  # type: ignore[type-arg]
        loaded.append(digest)
        return real_load(digest)

    store.load_node = counting  # type: ignore[method-assign]
    changes = list(store.diff(old, new))
    assert [(c.kind, c.path, c.old_size, c.new_size) for c in changes] == [
        ("removed", "chg/gone", 1, None),
        ("modified", "chg/mod", 3, 5),
        ("added", "chg/new", None, 1),
    ]
    assert len(loaded) == 4  # both roots and both versions of chg/, never same0..same9
    assert list(store.diff(old, old)) == []


def test_fetch_writes_verified_blobs(store: ContentStore, tmp_path: Path) -> None:
    write_tree(tmp_path / "s", {"a": b"alpha", "b": b"beta", "e": b""})
    store.snapshot([str(tmp_path / "s") + "/"])
    digests = [digest_bytes(b"alpha"), digest_bytes(b"beta"), digest_bytes(b"")]
    store.fetch(digests, tmp_path / "cache")
    assert {p.name: p.read_bytes() for p in (tmp_path / "cache").iterdir()} == {
        digests[0]: b"alpha",
        digests[1]: b"beta",
        digests[2]: b"",
    }
    with pytest.raises(IntegrityError, match="not on the storage provider"):
        store.fetch([digest_bytes(b"never stored")], tmp_path / "cache")


def test_symlinks_inside_followed_outside_refused(store: ContentStore, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "s", {"real/f.txt": b"data"})
    (src / "link.txt").symlink_to(src / "real/f.txt")
    (src / "linkdir").symlink_to("real")
    summary = store.snapshot([str(src) + "/"])
    assert _paths(store, summary.root) == {"link.txt": 4, "linkdir/f.txt": 4, "real/f.txt": 4}
    (tmp_path / "secret").write_bytes(b"outside")
    (src / "escape").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidPath, match="points outside"):
        store.snapshot([str(src) + "/"])
    (src / "escape").unlink()
    (src / "dangling").symlink_to(src / "nothing")
    with pytest.raises(InvalidPath, match="broken"):
        store.snapshot([str(src) + "/"])
    (src / "dangling").unlink()
    (src / "real" / "loop").symlink_to(src)
    with pytest.raises(InvalidPath, match="loop"):
        store.snapshot([str(src) + "/"])


def test_special_files_are_refused(store: ContentStore, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "s", {"ok": b"1"})
    os.mkfifo(src / "pipe")
    with pytest.raises(InvalidInput, match="pipe"):
        store.snapshot([str(src) + "/"])


def test_non_utf8_names_survive_the_round_trip(store: ContentStore, tmp_path: Path) -> None:
    src = tmp_path / "s"
    src.mkdir()
    raw = b"caf\xe9-latin1.txt"
    with open(os.path.join(os.fsencode(src), raw), "wb") as f:
        f.write(b"bytes")
    root = store.snapshot([str(src) + "/"]).root
    out = tmp_path / "out"
    store.get(root, out)
    assert os.listdir(os.fsencode(out)) == [raw]


def test_stat_cache_skips_unchanged_files(
    store: ContentStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_tree(tmp_path / "s", {f"f{i}": f"content {i}".encode() for i in range(50)})
    _age(src)
    hashed: list[str] = []
    real_hash = store._hash

    def spy(f):  # type: ignore[no-untyped-def]
        hashed.append(os.path.basename(f.path))
        return real_hash(f)

    monkeypatch.setattr(store, "_hash", spy)
    first = store.snapshot([str(src) + "/"])
    assert len(hashed) == 50
    hashed.clear()
    assert store.snapshot([str(src) + "/"]) == first
    assert hashed == []
    # Same size, older-but-different mtime: the cache must not be trusted for it.
    (src / "f7").write_bytes(b"content X")
    os.utime(src / "f7", (OLD - 100, OLD - 100))
    changed = store.snapshot([str(src) + "/"])
    assert hashed == ["f7"]
    assert [c.path for c in store.diff(first.root, changed.root)] == ["f7"]


def test_racy_files_are_always_read(
    store: ContentStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_tree(tmp_path / "s", {"fresh": b"just written"})  # mtime is now: racy
    hashed: list[str] = []
    real_hash = store._hash

    def spy(f):  # type: ignore[no-untyped-def]
        hashed.append(f.path)
        return real_hash(f)

    monkeypatch.setattr(store, "_hash", spy)
    store.snapshot([str(src) + "/"])
    store.snapshot([str(src) + "/"])
    assert len(hashed) == 2


def test_file_changing_while_read_is_an_error(
    store: ContentStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write_tree(tmp_path / "s", {"growing.log": b"line 1\n"})
    real_hash = store._hash

    def append_then_hash(f):  # type: ignore[no-untyped-def]
        with open(f.path, "ab") as fh:  # another process writes between the scan and the read
            fh.write(b"line 2\n")
        return real_hash(f)

    monkeypatch.setattr(store, "_hash", append_then_hash)
    with pytest.raises(InvalidInput, match="changed while it was being read"):
        store.snapshot([str(src) + "/"])


@pytest.mark.postgres
def test_dedup_on_postgresql(postgres_database: str, make_store: StoreFactory, tmp_path: Path) -> None:
    catalog = Catalog(postgres_database)
    try:
        provider = LocalProvider(tmp_path / "pgstore")
        store = make_store(provider, catalog)
        write_tree(tmp_path / "s", {"a": b"1", "b/c": b"2"})
        first = store.snapshot([str(tmp_path / "s") + "/"])
        # A second store (another process, say) inserting the same rows must not fail.
        second = make_store(provider, catalog).snapshot([str(tmp_path / "s") + "/"])
        assert first == second
        out = tmp_path / "out"
        store.get(first.root, out)
        assert read_tree(out) == {"a": b"1", "b/c": b"2"}
    finally:
        catalog.close()


def test_list_reads_only_the_nodes_on_the_path(store: ContentStore, tmp_path: Path) -> None:
    files = {f"top{i}/mid{j}/f{k}": b"x" for i in range(5) for j in range(5) for k in range(3)}
    root = store.snapshot([str(write_tree(tmp_path / "s", files)) + "/"]).root
    loaded: list[str] = []
    real_load = store.load_node
    store._trees.clear()

    def counting(digest: str) -> list:  # type: ignore[type-arg]
        loaded.append(digest)
        return real_load(digest)

    store.load_node = counting  # type: ignore[method-assign]
    assert [e.path for e in store.list(root, "top3/mid2/")] == ["f0", "f1", "f2"]
    assert len(loaded) == 3  # root, top3, top3/mid2: never the other 30 directories


def test_concurrent_snapshots_sharing_content(make_store: StoreFactory, tmp_path: Path) -> None:
    """Two creates at once (two jobs writing outputs) on one provider: both versions are whole."""
    from concurrent.futures import ThreadPoolExecutor

    provider = LocalProvider(tmp_path / "store")
    shared = {f"common/f{i}": os.urandom(3000) for i in range(100)}
    a = write_tree(tmp_path / "a", {**shared, "only-a": b"a"})
    b = write_tree(tmp_path / "b", {**shared, "only-b": b"b"})
    stores = [make_store(provider), make_store(provider)]
    with ThreadPoolExecutor(2) as pool:
        ra, rb = pool.map(
            lambda args: args[0].snapshot([str(args[1]) + "/"]), [(stores[0], a), (stores[1], b)]
        )
    stores[0].get(ra.root, tmp_path / "out-a")
    stores[1].get(rb.root, tmp_path / "out-b")
    assert read_tree(tmp_path / "out-a") == read_tree(a)
    assert read_tree(tmp_path / "out-b") == read_tree(b)
