"""The ``Catalog`` repository on SQLite and PostgreSQL: teams, immutability, latest, refs, cascades."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.catalog.store import Catalog
from datakeep.domain.models import StorageProvider, Version
from datakeep.domain.refs import DatasetRef
from datakeep.errors import (
    AlreadyExists,
    DatasetNotFound,
    InUse,
    StorageProviderNotFound,
    TagNotFound,
    VersionCommitted,
    VersionNotFound,
)

TEAM = LOCAL_TEAM_ID
OTHER_TEAM = "teother00000000"


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    c = Catalog(catalog_url)
    c.ensure_team(OTHER_TEAM, "other")
    yield c
    c.close()


@pytest.fixture
def dataset_id(catalog: Catalog) -> str:
    provider = catalog.insert_provider(
        TEAM, name="p", type="local", config={"path": "/data"}, is_default=True
    )
    return catalog.insert_dataset(TEAM, name="mnist", storage_provider_id=provider.id).id


def test_providers_and_secret_masking(catalog: Catalog) -> None:
    provider = catalog.insert_provider(
        TEAM, name="s3", type="s3", config={"bucket": "b", "secretAccessKey": "sealed-value"}
    )
    assert provider.config == {"bucket": "b", "secretAccessKey": "********"}
    assert catalog.get_provider(TEAM, provider.id, reveal=True).config["secretAccessKey"] == "sealed-value"
    assert catalog.default_provider(TEAM) is None
    renamed = catalog.update_provider(TEAM, provider.id, name="s3b")
    assert renamed.name == "s3b"
    assert renamed.modified is not None
    assert renamed.created is not None
    assert renamed.modified >= renamed.created
    with pytest.raises(StorageProviderNotFound):
        catalog.get_provider(OTHER_TEAM, provider.id)
    catalog.delete_provider(TEAM, provider.id)
    assert catalog.list_providers(TEAM) == []


def test_provider_in_use_cannot_be_deleted(catalog: Catalog, dataset_id: str) -> None:
    provider_id = catalog.get_dataset(TEAM, dataset_id).storage_provider.id
    with pytest.raises(InUse):
        catalog.delete_provider(TEAM, provider_id)
    catalog.delete_dataset(TEAM, dataset_id)
    catalog.delete_provider(TEAM, provider_id)


def test_dataset_names_are_unique_per_team(catalog: Catalog, dataset_id: str) -> None:
    provider_id = catalog.get_dataset(TEAM, dataset_id).storage_provider.id
    with pytest.raises(AlreadyExists):
        catalog.insert_dataset(TEAM, name="mnist", storage_provider_id=provider_id)
    other_provider = catalog.insert_provider(OTHER_TEAM, name="p", type="local", config={"path": "/o"})
    theirs = catalog.insert_dataset(OTHER_TEAM, name="mnist", storage_provider_id=other_provider.id)
    # Another team's IDs look exactly like IDs that do not exist.
    with pytest.raises(DatasetNotFound):
        catalog.get_dataset(TEAM, theirs.id)
    with pytest.raises(StorageProviderNotFound):
        catalog.insert_dataset(TEAM, name="x", storage_provider_id=other_provider.id)
    assert [d.id for d in catalog.list_datasets(TEAM)] == [dataset_id]


def test_version_lifecycle_and_immutability(catalog: Catalog, dataset_id: str) -> None:
    draft = catalog.insert_version(TEAM, dataset_id, message="draft")
    assert not draft.is_committed
    assert draft.committed is None
    assert catalog.swap_root(
        TEAM, dataset_id, draft.version, expected_root=None, root="r1", file_count=2, size=10
    )
    # A stale writer loses the race and is told so (it merges again), nothing is overwritten.
    assert not catalog.swap_root(
        TEAM, dataset_id, draft.version, expected_root=None, root="r2", file_count=1, size=1
    )
    catalog.update_version_message(TEAM, dataset_id, draft.version, "ready")
    committed = catalog.commit_version(TEAM, dataset_id, draft.version)
    assert committed.is_committed
    assert committed.committed is not None
    assert (committed.root, committed.file_count, committed.size, committed.message) == ("r1", 2, 10, "ready")

    for attempt in (
        lambda: catalog.commit_version(TEAM, dataset_id, draft.version),
        lambda: catalog.update_version_message(TEAM, dataset_id, draft.version, "changed"),
        lambda: catalog.swap_root(
            TEAM, dataset_id, draft.version, expected_root="r1", root="r3", file_count=0, size=0
        ),
    ):
        with pytest.raises(VersionCommitted):
            attempt()
    assert catalog.get_version(TEAM, dataset_id, draft.version) == committed


def test_a_writer_that_read_before_a_commit_changes_nothing(
    catalog: Catalog, dataset_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each write re-checks "uncommitted" in its own UPDATE, not only in the read before it.

    The race is arranged, not timed: every write is handed the version as read just before another
    process committed it (a stale read), as two racing commands would see it.
    """
    draft = catalog.insert_version(TEAM, dataset_id, message="draft")
    committed = catalog.commit_version(TEAM, dataset_id, draft.version)
    real_get_version = catalog.get_version
    reads = {"n": 0}

    def stale_first_read(team_id: str, ds: str, version: str) -> Version:
        reads["n"] += 1
        return draft if reads["n"] == 1 else real_get_version(team_id, ds, version)

    monkeypatch.setattr(catalog, "get_version", stale_first_read)
    for attempt in (
        lambda: catalog.commit_version(TEAM, dataset_id, draft.version),
        lambda: catalog.update_version_message(TEAM, dataset_id, draft.version, "changed"),
        lambda: catalog.swap_root(
            TEAM, dataset_id, draft.version, expected_root=None, root="r", file_count=1, size=1
        ),
    ):
        reads["n"] = 0
        with pytest.raises(VersionCommitted):
            attempt()
    monkeypatch.undo()
    assert catalog.get_version(TEAM, dataset_id, draft.version) == committed


def test_a_version_of_a_dataset_deleted_meanwhile_is_not_found(
    catalog: Catalog, dataset_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``versions create`` checks the dataset, uploads for a while, then inserts; another process
    may delete the dataset in between (arranged: the first check sees it still there)."""
    real_get_dataset = catalog.get_dataset
    checks = {"n": 0}

    def deleted_after_first_check(team_id: str, ds: str) -> Any:
        checks["n"] += 1
        if checks["n"] == 1:
            found = real_get_dataset(team_id, ds)
            catalog.delete_dataset(team_id, ds)
            return found
        return real_get_dataset(team_id, ds)

    monkeypatch.setattr(catalog, "get_dataset", deleted_after_first_check)
    with pytest.raises(DatasetNotFound):
        catalog.insert_version(TEAM, dataset_id, message="late", commit=True)


def test_a_tag_on_a_version_deleted_meanwhile_is_not_found(
    catalog: Catalog, dataset_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arranged race: the version is deleted right after ``tags set`` checked that it exists."""
    version = catalog.insert_version(TEAM, dataset_id, commit=True).version
    real_get_version = catalog.get_version
    checks = {"n": 0}

    def deleted_after_first_check(team_id: str, ds: str, ver: str) -> Version:
        checks["n"] += 1
        found = real_get_version(team_id, ds, ver)
        if checks["n"] == 1:
            catalog.delete_version(team_id, ds, ver)
        return found

    monkeypatch.setattr(catalog, "get_version", deleted_after_first_check)
    with pytest.raises(VersionNotFound):
        catalog.set_tag(TEAM, dataset_id, "prod", version)
    monkeypatch.undo()
    assert catalog.list_tags(TEAM, dataset_id) == []


def test_a_dataset_on_a_provider_deleted_meanwhile_is_not_found(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Arranged race: the provider is deleted right after ``datasets create`` checked it."""
    provider = catalog.insert_provider(TEAM, name="gone", type="local", config={"path": "/gone"})
    real_get_provider = catalog.get_provider
    checks = {"n": 0}

    def deleted_after_first_check(team_id: str, provider_id: str, **kwargs: Any) -> StorageProvider:
        checks["n"] += 1
        found = real_get_provider(team_id, provider_id, **kwargs)
        if checks["n"] == 1:
            catalog.delete_provider(team_id, provider_id)
        return found

    monkeypatch.setattr(catalog, "get_provider", deleted_after_first_check)
    with pytest.raises(StorageProviderNotFound):
        catalog.insert_dataset(TEAM, name="new", storage_provider_id=provider.id)


def test_latest_is_the_last_committed_not_the_last_created(catalog: Catalog, dataset_id: str) -> None:
    assert catalog.latest_version(TEAM, dataset_id) is None
    with pytest.raises(VersionNotFound):
        catalog.resolve(TEAM, DatasetRef(dataset_id, "latest"))
    older = catalog.insert_version(TEAM, dataset_id)
    newer = catalog.insert_version(TEAM, dataset_id, commit=True)
    assert catalog.resolve(TEAM, DatasetRef(dataset_id, "latest")).version == newer.version
    catalog.commit_version(TEAM, dataset_id, older.version)  # committed later, so it becomes latest
    assert catalog.resolve(TEAM, DatasetRef(dataset_id)).version == older.version
    catalog.insert_version(TEAM, dataset_id)  # uncommitted: never latest
    latest = catalog.latest_version(TEAM, dataset_id)
    assert latest is not None
    assert latest.version == older.version


def test_version_wins_over_a_tag_of_the_same_name(catalog: Catalog, dataset_id: str) -> None:
    a = catalog.insert_version(TEAM, dataset_id, commit=True)
    b = catalog.insert_version(TEAM, dataset_id, commit=True)
    # The service refuses such names; the catalog still resolves safely if one exists.
    catalog.set_tag(TEAM, dataset_id, b.version, a.version)
    assert catalog.resolve(TEAM, DatasetRef(dataset_id, b.version)).version == b.version
    catalog.set_tag(TEAM, dataset_id, "prod", a.version)
    assert catalog.resolve(TEAM, DatasetRef(dataset_id, "prod")).version == a.version
    with pytest.raises(VersionNotFound):
        catalog.resolve(TEAM, DatasetRef(dataset_id, "nosuch"))


def test_tags_move_list_and_cascade(catalog: Catalog, dataset_id: str) -> None:
    a = catalog.insert_version(TEAM, dataset_id, message="a", commit=True)
    b = catalog.insert_version(TEAM, dataset_id, message="b", commit=True)
    catalog.set_tag(TEAM, dataset_id, "prod", a.version)
    moved = catalog.set_tag(TEAM, dataset_id, "prod", b.version)
    assert (moved.version, moved.message) == (b.version, "b")
    catalog.set_tag(TEAM, dataset_id, "alpha", b.version)
    assert [t.name for t in catalog.list_tags(TEAM, dataset_id)] == ["alpha", "prod"]
    assert catalog.get_version(TEAM, dataset_id, b.version).tags == ["alpha", "prod"]
    catalog.delete_version(TEAM, dataset_id, b.version)
    assert catalog.list_tags(TEAM, dataset_id) == []
    with pytest.raises(TagNotFound):
        catalog.delete_tag(TEAM, dataset_id, "prod")
    with pytest.raises(VersionNotFound):
        catalog.set_tag(TEAM, dataset_id, "prod", b.version)


def test_list_versions_order_filter_and_pages(catalog: Catalog, dataset_id: str) -> None:
    made = [catalog.insert_version(TEAM, dataset_id, message=str(i), commit=i % 2 == 0) for i in range(6)]
    committed = catalog.list_versions(TEAM, dataset_id, is_committed=True)
    assert [v.message for v in committed] == ["4", "2", "0"]  # newest first
    assert [v.message for v in catalog.list_versions(TEAM, dataset_id, is_committed=False)] == ["5", "3", "1"]
    every = catalog.list_versions(TEAM, dataset_id)
    assert len(every) == len(made)
    page = catalog.list_versions(TEAM, dataset_id, limit=2, offset=2)
    assert [v.version for v in page] == [v.version for v in every[2:4]]


def test_deleting_a_dataset_removes_versions_and_tags(catalog: Catalog, dataset_id: str) -> None:
    v = catalog.insert_version(TEAM, dataset_id, commit=True)
    catalog.set_tag(TEAM, dataset_id, "prod", v.version)
    catalog.delete_dataset(TEAM, dataset_id)
    with pytest.raises(DatasetNotFound):
        catalog.list_versions(TEAM, dataset_id)
    with pytest.raises(DatasetNotFound):
        catalog.get_tag(TEAM, dataset_id, "prod")


def test_version_ids_are_unique_and_gradient_shaped(catalog: Catalog, dataset_id: str) -> None:
    ids = {catalog.insert_version(TEAM, dataset_id).version for _ in range(30)}
    assert len(ids) == 30
    assert all(len(v) == 7 and v.isalnum() and v == v.lower() for v in ids)
