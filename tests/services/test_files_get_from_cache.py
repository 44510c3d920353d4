"""``files get`` reuses the shared-storage cache, and never trusts a cached copy blindly."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from datakeep import Client
from datakeep.errors import StorageError


def _setup(tmp_path: Path) -> tuple[Client, str, Path]:
    client = Client(progress=False)
    dataset = client.datasets.create(name="d")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # stored whole, not packed
    ref = client.versions.create(dataset.id, source_paths=[f"{src}/"]).ref
    storage = Path(client.ctx.revealed_provider(dataset.storage_provider.id).config["path"])
    return client, ref, storage


def _wipe_provider_objects(storage: Path) -> None:
    """Lose every byte the provider held (the manifest stays in the catalog)."""
    for child in storage.iterdir():
        if child.name != "versions":
            shutil.rmtree(child)


def test_get_reads_cached_content_when_the_provider_lost_it(tmp_path: Path) -> None:
    client, ref, storage = _setup(tmp_path)
    client.cache.materialize(ref)  # what a job using this version leaves behind
    _wipe_provider_objects(storage)

    assert client.files.get(ref, target_path=tmp_path / "out") == 2
    assert (tmp_path / "out" / "a.txt").read_text() == "alpha\n"
    assert (tmp_path / "out" / "sub" / "b.bin").stat().st_size == 3 * 1024 * 1024


def test_a_tampered_cached_copy_is_not_used(tmp_path: Path) -> None:
    client, ref, storage = _setup(tmp_path)
    client.cache.materialize(ref)
    (entry,) = [e for e in client.files.list(ref, recursive=True) if e.path == "a.txt"]
    assert entry.digest is not None
    blob = client.cache.store.blob_path(entry.digest)
    blob.chmod(0o644)
    blob.write_text("evil!\n")

    # With the provider intact, the tampered copy is skipped and the provider's bytes win.
    client.files.get(ref, target_path=tmp_path / "ok")
    assert (tmp_path / "ok" / "a.txt").read_text() == "alpha\n"

    # With the provider's copy gone too, nothing wrong is written: the read fails.
    _wipe_provider_objects(storage)
    with pytest.raises(StorageError):
        client.files.get(ref, target_path=tmp_path / "bad", source_paths=["a.txt"])
    assert not (tmp_path / "bad" / "a.txt").exists()
