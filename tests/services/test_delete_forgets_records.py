"""Deleting a version or a dataset removes its recovery record from the provider too.

Otherwise ``admin rebuild-catalog`` would bring deleted versions back, and ``admin gc`` would
refuse to run (a record the catalog lacks looks like a lost catalog).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from datakeep import Client
from datakeep.storage.admin import gc, rebuild_catalog


def _version(client: Client, dataset_id: str, folder: Path, text: str) -> str:
    folder.mkdir()
    (folder / "hello.txt").write_text(text)
    return client.versions.create(dataset_id, source_paths=[f"{folder}/"]).ref


def _records(client: Client, provider_id: str) -> list[str]:
    return sorted(i.key for i in client.ctx.provider(provider_id).list("versions/") if not i.is_dir)


def test_deleted_version_and_dataset_leave_no_record(tmp_path: Path) -> None:
    client = Client(progress=False)
    kept = client.datasets.create(name="kept")
    gone = client.datasets.create(name="gone")
    provider_id = kept.storage_provider.id
    keep_ref = _version(client, kept.id, tmp_path / "a", "a\n")
    drop_ref = _version(client, kept.id, tmp_path / "b", "b\n")
    _version(client, gone.id, tmp_path / "c", "c\n")
    assert len(_records(client, provider_id)) == 3

    client.versions.delete(drop_ref)
    client.datasets.delete(gone.id)

    records = _records(client, provider_id)
    assert len(records) == 1
    assert keep_ref.replace(":", "/") in records[0]
    provider = client.ctx.provider(provider_id)
    # gc runs (it refuses when the provider records versions the catalog lacks) and frees b and c.
    report = gc(client.catalog, provider, provider_id, older_than=timedelta(0))
    assert report.objects
    assert report.bytes == sum(provider.stat(key).size for key in report.objects)
    # A rebuild brings back nothing that was deleted.
    rebuilt = rebuild_catalog(client.catalog, provider, provider_id)
    assert [v.ref for v in client.versions.list(kept.id)] == [keep_ref]
    assert rebuilt.versions == 0
    assert [d.name for d in client.datasets.list()] == ["kept"]
