"""Transfers survive 500/503 answers and dropped connections; what cannot be retried fails cleanly and
resumes on the next run. The S3 server is real (moto over HTTP); faults come from a proxy in front."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datakeep.errors import StorageError
from datakeep.providers import s3 as s3_module
from datakeep.providers.s3 import S3Provider
from datakeep.storage import content as content_module
from datakeep.storage.admin import fsck
from datakeep.storage.content import ContentStore

from .conftest import StoreFactory, read_tree, write_tree
from .faultproxy import FaultProxy


@pytest.fixture
def proxy(s3: Any) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(s3.endpoint_url)
    fault_proxy.start()
    yield fault_proxy
    fault_proxy.stop()


@pytest.fixture
def flaky_store(proxy: FaultProxy, s3: Any, make_bucket: Any, make_store: StoreFactory) -> ContentStore:
    bucket = make_bucket("flaky")
    provider = S3Provider(
        bucket,
        endpoint=proxy.server and f"http://127.0.0.1:{proxy.server.server_address[1]}",
        region=s3.region,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        max_attempts=3,
        stream_attempts=3,
    )
    return make_store(provider)


@pytest.fixture(autouse=True)
def small_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Several packs and a real multipart upload out of a few hundred KiB / a few MiB of data.
    monkeypatch.setattr(content_module, "PACK_TARGET", 64 * 1024)
    monkeypatch.setattr(content_module, "PACK_THRESHOLD", 64 * 1024)
    monkeypatch.setattr(s3_module, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3_module, "PART_SIZE", 5 * 1024 * 1024)


def _tree(tmp_path: Path) -> Path:
    files = {f"d{i % 7}/f{i}.bin": os.urandom(4000 + i) for i in range(120)}
    files["large.bin"] = os.urandom(11 * 1024 * 1024)
    return write_tree(tmp_path / "src", files)


def _puts(proxy: FaultProxy, part: str) -> int:
    return sum(1 for method, path in proxy.requests if method == "PUT" and part in path)


@pytest.mark.parametrize("status", ["500", "503"])
def test_server_errors_are_retried(
    flaky_store: ContentStore, proxy: FaultProxy, tmp_path: Path, status: str
) -> None:
    src = _tree(tmp_path)
    pack_fault = proxy.add("PUT", r"/packs/", status, times=2)
    part_fault = proxy.add("PUT", r"partNumber=2", status, times=1)
    get_fault = proxy.add("GET", r"/packs/", status, times=2)
    summary = flaky_store.snapshot([str(src) + "/"])
    flaky_store.get(summary.root, tmp_path / "out")
    assert (pack_fault.hits, part_fault.hits, get_fault.hits) == (2, 1, 2)
    assert read_tree(tmp_path / "out") == read_tree(src)


def test_dropped_connections_mid_upload_and_mid_download(
    flaky_store: ContentStore, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = _tree(tmp_path)
    upload_drop = proxy.add("PUT", r"/packs/", "drop-request", times=1)
    part_drop = proxy.add("PUT", r"partNumber=1", "drop-request", times=1)
    summary = flaky_store.snapshot([str(src) + "/"])
    download_drop = proxy.add("GET", r"/packs/", "drop-response", times=2)
    large_drop = proxy.add("GET", r"/blobs/", "drop-response", times=1)
    flaky_store.get(summary.root, tmp_path / "out")
    assert (upload_drop.hits, part_drop.hits, download_drop.hits, large_drop.hits) == (1, 1, 2, 1)
    assert read_tree(tmp_path / "out") == read_tree(src)


def test_failure_that_outlasts_retries_resumes_on_rerun(
    flaky_store: ContentStore, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = _tree(tmp_path)
    proxy.add("POST", r"/blobs/.*uploads", "503", times=1000)  # the large file cannot be stored
    with pytest.raises(StorageError, match="large.bin"):
        flaky_store.snapshot([str(src) + "/"])
    packs_first_run = _puts(proxy, "/packs/")
    assert packs_first_run > 0
    proxy.clear()
    summary = flaky_store.snapshot([str(src) + "/"])
    # The rerun stores only what the first run could not: the large file and the manifest.
    assert _puts(proxy, "/packs/") == 0
    assert _puts(proxy, "/blobs/") >= 1
    flaky_store.get(summary.root, tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(src)


def test_download_that_keeps_failing_leaves_no_partial_file(
    flaky_store: ContentStore, proxy: FaultProxy, tmp_path: Path
) -> None:
    src = write_tree(tmp_path / "src", {"a.txt": b"a" * 5000, "b.txt": b"b" * 5000})
    summary = flaky_store.snapshot([str(src) + "/"])
    proxy.add("GET", r"/packs/", "drop-response", times=1000)
    with pytest.raises(StorageError):
        flaky_store.get(summary.root, tmp_path / "out")
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []
    proxy.clear()
    assert fsck(flaky_store.catalog, flaky_store.provider, flaky_store.provider_id).ok
