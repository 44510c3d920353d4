"""The library API (``datakeep.Client``) that the CLI and the server are thin layers over."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import datakeep
from datakeep.config import Settings
from datakeep.errors import (
    AlreadyExists,
    InvalidInput,
    InvalidReference,
    ReservedName,
    VersionCommitted,
    VersionNotFound,
)


@pytest.fixture
def client(catalog_url: str) -> Iterator[datakeep.Client]:
    settings = Settings.from_env({**os.environ, "DATAKEEP_DATABASE_URL": catalog_url})
    c = datakeep.Client(settings, progress=False)
    yield c
    c.close()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "some-data"
    folder.mkdir()
    (folder / "hello.txt").write_text("hello world\n")
    return folder


def test_readme_example(client: datakeep.Client, data: Path) -> None:
    ds = client.datasets.create(name="mnist")
    v = client.versions.create(ds.id, source_paths=[f"{data}/"], message="first")
    client.tags.set(v.ref, name="prod")
    entries = client.files.list(f"{ds.id}:prod", recursive=True)
    assert [(e.path, e.size) for e in entries] == [("hello.txt", 12)]
    assert v.is_committed
    assert (v.file_count, v.size, v.message) == (1, 12, "first")
    # Created committed in one step: both times are set, and they are the same instant.
    assert v.created is not None
    assert v.committed == v.created


def test_connect_gives_the_embedded_client_without_a_server(catalog_url: str) -> None:
    settings = Settings.from_env({**os.environ, "DATAKEEP_DATABASE_URL": catalog_url})
    c = datakeep.connect(settings)
    try:
        assert isinstance(c, datakeep.Client)
        assert [p.name for p in c.storage_providers.list()] == ["default"]
    finally:
        c.close()


def test_uncommitted_version_from_sources_then_edit_and_commit(
    client: datakeep.Client, data: Path, tmp_path: Path
) -> None:
    ds = client.datasets.create(name="d")
    draft = client.versions.create(ds.id, source_paths=[f"{data}/"], commit=False)
    assert not draft.is_committed
    extra = tmp_path / "extra.txt"
    extra.write_text("x")
    client.files.put(draft.ref, source_paths=[extra], target_path="/more")
    client.files.delete(draft.ref, paths=["hello.txt"])
    client.versions.update(draft.ref, message="edited")
    with pytest.raises(InvalidInput):
        client.files.delete(draft.ref)  # no paths and no all=True
    committed = client.versions.commit(draft.ref)
    assert [e.path for e in client.files.list(committed.ref, recursive=True)] == ["more/extra.txt"]
    assert client.versions.get(ds.id).version == committed.version  # a bare ID is latest
    with pytest.raises(VersionCommitted):
        client.versions.commit(draft.ref)
    with pytest.raises(VersionCommitted):
        client.files.put(draft.ref, source_paths=[extra])


def test_a_failed_recovery_record_does_not_fail_a_committed_create(
    client: datakeep.Client, data: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The provider refuses the one write that comes after the catalog commit (fault injected)."""
    from datakeep.storage.content import ContentStore

    def refuse(self: Any, version: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ContentStore, "write_version_record", refuse)
    ds = client.datasets.create(name="d")
    with caplog.at_level(logging.WARNING, logger="datakeep.services.versions"):
        v = client.versions.create(ds.id, source_paths=[f"{data}/"])
    assert v.is_committed
    assert client.versions.get(f"{ds.id}:latest").version == v.version
    assert "recovery record" in caplog.text


def test_input_errors_are_typed(client: datakeep.Client, tmp_path: Path) -> None:
    ds = client.datasets.create(name="d")
    with pytest.raises(AlreadyExists):
        client.datasets.create(name="d")
    with pytest.raises(InvalidReference):
        client.versions.get("ds:")
    with pytest.raises(InvalidReference):
        client.datasets.create(name="x", storage_provider_id="not-an-id")
    with pytest.raises(InvalidInput, match="Source path not found"):
        client.versions.create(ds.id, source_paths=[tmp_path / "missing"])
    v = client.versions.create(ds.id, commit=False)
    with pytest.raises(ReservedName):
        client.tags.set(v.ref, name="latest")
    with pytest.raises(VersionNotFound):
        client.versions.get(f"{ds.id}:latest")
    # Each is also the built-in exception it resembles.
    with pytest.raises(LookupError):
        client.datasets.get("dsaaaaaaaaaaaaa")
    with pytest.raises(ValueError, match="dataset ID"):
        client.datasets.get("nope")


def test_storage_provider_update_merges_and_clears(client: datakeep.Client) -> None:
    p = client.storage_providers.create(
        name="s3",
        type="s3",
        config={"bucket": "b", "accessKey": "a", "secretAccessKey": "s", "region": "r", "prefix": "x"},
    )
    assert p.config["secretAccessKey"] == "********"
    updated = client.storage_providers.update(p.id, config={"region": "", "endpoint": "http://e"})
    assert updated.config == {
        "bucket": "b",
        "accessKey": "a",
        "secretAccessKey": "********",
        "prefix": "x",
        "endpoint": "http://e",
    }
    with pytest.raises(InvalidInput, match="Unknown s3 storage provider setting"):
        client.storage_providers.update(p.id, config={"path": "/x"})
    with pytest.raises(InvalidInput, match="Unknown storage provider type"):
        client.storage_providers.create(name="x", type="ftp", config={})


def test_diff_between_versions(client: datakeep.Client, data: Path) -> None:
    ds = client.datasets.create(name="d")
    old = client.versions.create(ds.id, source_paths=[f"{data}/"])
    (data / "hello.txt").write_text("changed\n")
    (data / "new.txt").write_text("n")
    new = client.versions.create(ds.id, source_paths=[f"{data}/"])
    assert new.parent == old.version
    changes = sorted((c.kind, c.path, c.old_size, c.new_size) for c in client.versions.diff(old.ref, new.ref))
    assert changes == [("added", "new.txt", None, 1), ("modified", "hello.txt", 12, 8)]
    assert list(client.versions.diff(new.ref, f"{ds.id}:latest")) == []


def test_free_text_with_nul_is_refused_alike_on_both_catalogs(client: datakeep.Client) -> None:
    """PostgreSQL cannot store NUL in text and SQLite can: refused up front, the same on both."""
    ds = client.datasets.create(name="d", description="fine")
    draft = client.versions.create(ds.id, commit=False, message="fine")
    for attempt in (
        lambda: client.datasets.create(name="e", description="a\x00b"),
        lambda: client.datasets.update(ds.id, description="a\x00b"),
        lambda: client.versions.create(ds.id, message="a\x00b"),
        lambda: client.versions.update(draft.ref, message="a\x00b"),
    ):
        with pytest.raises(InvalidInput, match="NUL"):
            attempt()
    assert client.datasets.get(ds.id).description == "fine"
    assert client.versions.get(draft.ref).message == "fine"
    assert [d.name for d in client.datasets.list()] == ["d"]
