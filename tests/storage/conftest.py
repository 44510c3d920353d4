"""A ContentStore over a real catalog and a real provider (a directory, or moto over HTTP)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.catalog.store import Catalog
from datakeep.config import Settings
from datakeep.providers.base import Provider
from datakeep.providers.local import LocalProvider
from datakeep.providers.s3 import S3Provider
from datakeep.storage.content import ContentStore


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    home = tmp_path / "dk-home"
    home.mkdir(exist_ok=True)
    return Settings(home=home)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield cat
    cat.close()


def make_s3_provider(s3: Any, bucket: str, prefix: str = "") -> S3Provider:
    return S3Provider(
        bucket,
        prefix=prefix,
        endpoint=s3.endpoint_url,
        region=s3.region,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
    )


@pytest.fixture(params=["local", "s3"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Provider:
    if request.param == "local":
        return LocalProvider(tmp_path / "store")
    s3 = request.getfixturevalue("s3")
    return make_s3_provider(s3, request.getfixturevalue("make_bucket")("content"), "dk")


StoreFactory = Callable[..., ContentStore]


@pytest.fixture
def make_store(catalog: Catalog, settings: Settings) -> StoreFactory:
    """``make_store(provider)``: a ContentStore for ``provider``, registered in the catalog once."""
    ids: dict[int, str] = {}

    def make(provider: Provider, cat: Catalog | None = None) -> ContentStore:
        cat = cat or catalog
        key = id(provider) ^ id(cat)
        if key not in ids:
            config = (
                {"path": str(getattr(provider, "root", ""))} if provider.type == "local" else {"bucket": "x"}
            )
            ids[key] = cat.insert_provider(
                LOCAL_TEAM_ID, name=f"p{len(ids)}", type=provider.type, config=config
            ).id
        return ContentStore(cat, provider, ids[key], settings, progress=False)

    return make


@pytest.fixture
def store(make_store: StoreFactory, provider: Provider) -> ContentStore:
    return make_store(provider)


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
