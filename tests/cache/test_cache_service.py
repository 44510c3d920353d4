"""``client.cache``: the cache tied to the catalog and the storage providers (real local storage)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from datakeep.client import Client
from datakeep.config import Settings


@pytest.fixture
def client(hermetic_env: object) -> Iterator[Client]:
    c = Client(Settings.from_env(), progress=False)
    yield c
    c.close()


def test_a_cached_version_is_presented_without_its_storage_provider(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = client.datasets.create(name="in").id
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "hello.txt").write_text("hello\n")
    ref = client.versions.create(ds, source_paths=[f"{tmp_path / 'src'}/"]).ref
    path = client.cache.materialize(ref)

    def unreachable(*_: object) -> None:
        raise AssertionError("the storage provider was opened for a cached version")

    # Spy on the one door to the provider: a cached version must not need it (S3 credentials, network).
    monkeypatch.setattr(client.ctx, "content", unreachable)
    assert client.cache.materialize(ref) == path
    assert (path / "hello.txt").read_text() == "hello\n"
