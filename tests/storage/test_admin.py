"""rebuild-catalog recovers committed versions from storage alone; fsck finds missing and corrupt objects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.catalog.store import Catalog
from datakeep.cli.common import reset_client
from datakeep.cli.main import main
from datakeep.config import Settings
from datakeep.domain.models import Version
from datakeep.errors import InvalidInput
from datakeep.providers.base import Provider
from datakeep.providers.local import LocalProvider
from datakeep.services.context import Context
from datakeep.storage import content as content_module
from datakeep.storage.admin import fsck, rebuild_catalog
from datakeep.storage.content import ContentStore
from datakeep.storage.hashing import digest_bytes

from .conftest import StoreFactory, read_tree, write_tree


def commit(catalog: Catalog, store: ContentStore, src: Path, dataset_id: str | None = None) -> Version:
    if dataset_id is None:
        dataset_id = catalog.insert_dataset(
            LOCAL_TEAM_ID, name=f"ds-{src.name}", storage_provider_id=store.provider_id, description="d"
        ).id
    summary = store.snapshot([str(src) + "/"])
    version = catalog.insert_version(
        LOCAL_TEAM_ID,
        dataset_id,
        message=f"from {src.name}",
        root=summary.root,
        file_count=summary.file_count,
        size=summary.size,
        commit=True,
    )
    store.write_version_record(version)
    return version


def test_rebuild_recovers_every_committed_version(
    store: ContentStore,
    provider: Provider,
    tmp_path: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(content_module, "PACK_THRESHOLD", 1024)
    a = write_tree(tmp_path / "a", {"x.txt": b"x", "big.bin": os.urandom(5000), "sub/y": b"yy"})
    v1 = commit(store.catalog, store, a)
    (a / "x.txt").write_bytes(b"changed")
    v2 = commit(store.catalog, store, a, dataset_id=v1.dataset_id)
    b = write_tree(tmp_path / "b", {"other": b"o"})
    v3 = commit(store.catalog, store, b)

    fresh = Catalog(f"sqlite:///{tmp_path / 'new-catalog.db'}")
    fresh.insert_provider(
        LOCAL_TEAM_ID, name="again", type=provider.type, config={}, provider_id=store.provider_id
    )
    report = rebuild_catalog(fresh, provider, store.provider_id)
    assert report.problems == []
    assert (report.datasets, report.versions) == (2, 3)
    for old in (v1, v2, v3):
        new = fresh.get_version(LOCAL_TEAM_ID, old.dataset_id, old.version)
        assert (new.root, new.file_count, new.size, new.message, new.is_committed) == (
            old.root,
            old.file_count,
            old.size,
            old.message,
            True,
        )
    assert fresh.latest_version(LOCAL_TEAM_ID, v1.dataset_id).version == v2.version  # type: ignore[union-attr]
    assert fresh.get_dataset(LOCAL_TEAM_ID, v1.dataset_id).name == "ds-a"
    restored = ContentStore(fresh, provider, store.provider_id, settings, progress=False)
    restored.get(v2.root, tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(a)
    assert fsck(fresh, provider, store.provider_id).problems == []
    again = rebuild_catalog(fresh, provider, store.provider_id)  # idempotent
    assert (again.datasets, again.versions, again.problems) == (0, 0, [])


def test_fsck_finds_corrupt_and_missing_objects(make_store: StoreFactory, tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path / "store")
    store = make_store(provider)
    src = write_tree(tmp_path / "src", {"ok.txt": b"fine", "bad.txt": b"to be damaged"})
    version = commit(store.catalog, store, src)
    assert fsck(store.catalog, provider, store.provider_id).ok
    loc = store.index.locate([digest_bytes(b"to be damaged")])[digest_bytes(b"to be damaged")]
    path = provider.root / loc.key
    data = bytearray(path.read_bytes())
    data[loc.offset + 1] ^= 0x01
    path.write_bytes(bytes(data))
    report = fsck(store.catalog, provider, store.provider_id)
    assert len(report.problems) == 1
    assert f"{version.ref} bad.txt" in report.problems[0]
    assert fsck(store.catalog, provider, store.provider_id, verify_content=False).ok
    path.unlink()
    missing = fsck(store.catalog, provider, store.provider_id, verify_content=False)
    assert any("bad.txt" in p and "missing" in p for p in missing.problems)


def test_cli_fsck_and_rebuild_on_the_default_provider(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings.from_env()
    ctx = Context(settings=settings, catalog=Catalog(settings.catalog_url))
    default = ctx.ensure_default_provider()
    store = ContentStore(ctx.catalog, ctx.provider(default.id), default.id, settings, progress=False)
    version = commit(ctx.catalog, store, write_tree(tmp_path / "seed", {"hello.txt": b"hello world\n"}))
    assert main(["admin", "fsck"]) == 0
    assert "Checked 1 version(s), 1 file(s)" in capsys.readouterr().out
    # Lose the catalog: everything comes back from the default provider's directory.
    ctx.catalog.close()
    Path(settings.catalog_url.removeprefix("sqlite:///")).unlink()
    for suffix in ("-wal", "-shm"):
        Path(settings.catalog_url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    fresh = Catalog(settings.catalog_url)
    fresh.insert_provider(
        LOCAL_TEAM_ID,
        name="default",
        type="local",
        config=default.config,
        is_default=True,
        provider_id=default.id,
    )
    fresh.close()
    reset_client()  # a new process would open the new catalog; this test runs both commands in one
    assert main(["admin", "rebuild-catalog"]) == 0
    assert "Recovered 1 version(s) in 1 new dataset(s)" in capsys.readouterr().out
    again = Catalog(settings.catalog_url)
    assert again.get_version(LOCAL_TEAM_ID, version.dataset_id, version.version).root == version.root
    again.close()


def test_gc_deletes_only_what_no_version_needs(make_store: StoreFactory, tmp_path: Path) -> None:
    from datetime import timedelta

    from datakeep.storage.admin import gc

    provider = LocalProvider(tmp_path / "store")
    store = make_store(provider)
    old = commit(store.catalog, store, write_tree(tmp_path / "old", {"gone.txt": b"only in the old version"}))
    kept = commit(store.catalog, store, write_tree(tmp_path / "kept", {"stays.txt": b"still needed"}))
    orphan = provider.root / "packs" / ("0" * 64 + ".pack")
    orphan.write_bytes(b"left by a killed create")
    os.utime(orphan, (1_000_000_000, 1_000_000_000))
    assert gc(store.catalog, provider, store.provider_id, older_than=timedelta(0)).objects == [
        f"packs/{'0' * 64}.pack"
    ]
    store.catalog.delete_version(LOCAL_TEAM_ID, old.dataset_id, old.version)
    with pytest.raises(InvalidInput, match="the catalog does not know"):
        gc(store.catalog, provider, store.provider_id, older_than=timedelta(0))  # its record is still there
    store.delete_version_records(old.dataset_id, old.version)
    plan = gc(store.catalog, provider, store.provider_id, older_than=timedelta(0))
    assert plan.dry_run
    assert len(plan.objects) == 3  # the orphan, the old version's pack and its tree pack
    assert orphan.exists()
    done = gc(store.catalog, provider, store.provider_id, older_than=timedelta(0), dry_run=False)
    assert sorted(done.objects) == sorted(plan.objects)
    assert not orphan.exists()
    assert fsck(store.catalog, provider, store.provider_id).ok
    store.get(kept.root, tmp_path / "out")
    assert read_tree(tmp_path / "out") == {"stays.txt": b"still needed"}
    # The deleted content is forgotten, so storing it again uploads it again.
    again = store.snapshot([str(tmp_path / "old") + "/"])
    store.get(again.root, tmp_path / "out2")
    assert read_tree(tmp_path / "out2") == {"gone.txt": b"only in the old version"}
    # Recent objects are kept whatever they hold: the content of a version deleted just now stays.
    young = commit(store.catalog, store, write_tree(tmp_path / "young", {"new.txt": b"stored a moment ago"}))
    store.catalog.delete_version(LOCAL_TEAM_ID, young.dataset_id, young.version)
    store.delete_version_records(young.dataset_id, young.version)
    assert gc(store.catalog, provider, store.provider_id, dry_run=False).objects == []
    # Without the grace period: its pack and tree pack, and those of the unattached snapshot above.
    assert len(gc(store.catalog, provider, store.provider_id, older_than=timedelta(0)).objects) == 4
