"""The behaviour every provider must share, run against each of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakeep.errors import IntegrityError
from datakeep.providers import s3 as s3_module
from datakeep.providers.base import Provider, check_key
from datakeep.storage.hashing import digest_bytes


def test_write_stat_read(provider: Provider) -> None:
    provider.write("a/b/c.bin", b"0123456789")
    info = provider.stat("a/b/c.bin")
    assert info.key == "a/b/c.bin"
    assert info.size == 10
    assert info.etag
    assert provider.read("a/b/c.bin") == b"0123456789"


def test_ranged_reads(provider: Provider) -> None:
    provider.write("r", b"0123456789")
    assert provider.read("r", 3, 4) == b"3456"
    assert provider.read("r", 7) == b"789"
    assert provider.read("r", 0, 0) == b""


def test_missing_key_raises_file_not_found(provider: Provider) -> None:
    with pytest.raises(FileNotFoundError):
        provider.stat("nope")
    with pytest.raises(FileNotFoundError):
        provider.read("nope")
    assert not provider.exists("nope")


def test_overwrite_replaces_whole_object(provider: Provider) -> None:
    provider.write("k", b"long old content")
    provider.write("k", b"new")
    assert provider.read("k") == b"new"


def test_list_recursive_and_not(provider: Provider) -> None:
    for key in ["d/x", "d/sub/y", "d/sub/deeper/z", "dx", "e/w"]:
        provider.write(key, key.encode())
    assert sorted(i.key for i in provider.list("d/")) == ["d/sub/deeper/z", "d/sub/y", "d/x"]
    shallow = list(provider.list("d/", recursive=False))
    assert sorted((i.key, i.is_dir) for i in shallow) == [("d/sub/", True), ("d/x", False)]
    # A prefix is a string prefix, as on S3.
    assert sorted(i.key for i in provider.list("d")) == ["d/sub/deeper/z", "d/sub/y", "d/x", "dx"]
    assert sorted(i.key for i in provider.list("")) == ["d/sub/deeper/z", "d/sub/y", "d/x", "dx", "e/w"]
    assert list(provider.list("missing/")) == []
    sizes = {i.key: i.size for i in provider.list("e/")}
    assert sizes == {"e/w": 3}


def test_delete_is_idempotent(provider: Provider) -> None:
    provider.write("gone", b"x")
    provider.delete("gone")
    assert not provider.exists("gone")
    provider.delete("gone")


def test_copy(provider: Provider) -> None:
    provider.write("src", b"payload")
    provider.copy("src", "dir/dst")
    assert provider.read("dir/dst") == b"payload"
    with pytest.raises(FileNotFoundError):
        provider.copy("missing", "other")


def test_upload_download_roundtrip(provider: Provider, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    provider.upload("up/file", src, expected_digest=digest_bytes(data))
    dest = tmp_path / "dest.bin"
    provider.download("up/file", dest)
    assert dest.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("dest")] == ["dest.bin"]


def test_upload_refuses_bytes_that_are_not_the_expected_ones(provider: Provider, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"what is on disk now")
    with pytest.raises(IntegrityError):
        provider.upload("never", src, expected_digest=digest_bytes(b"what was hashed before"))
    assert not provider.exists("never")


def test_multipart_upload(provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small parts keep the test fast while exercising the multipart path (S3's minimum part is 5 MiB).
    monkeypatch.setattr(s3_module, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3_module, "PART_SIZE", 5 * 1024 * 1024)
    data = (b"0123456789abcdef" * 65536) * 12 + b"tail"  # 12 MiB + 4 bytes: three parts
    src = tmp_path / "large.bin"
    src.write_bytes(data)
    provider.upload("large", src, expected_digest=digest_bytes(data))
    assert provider.stat("large").size == len(data)
    assert provider.read("large", len(data) - 10) == data[-10:]
    dest = tmp_path / "back.bin"
    provider.download("large", dest)
    assert digest_bytes(dest.read_bytes()) == digest_bytes(data)


def test_multipart_upload_aborted_when_file_changed(
    provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "MULTIPART_THRESHOLD", 6 * 1024 * 1024)
    monkeypatch.setattr(s3_module, "PART_SIZE", 5 * 1024 * 1024)
    src = tmp_path / "large.bin"
    src.write_bytes(b"x" * (11 * 1024 * 1024))
    with pytest.raises(IntegrityError):
        provider.upload("large", src, expected_digest=digest_bytes(b"something else"))
    assert not provider.exists("large")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "..", "a/./b", "a\\b"])
def test_invalid_keys_are_refused(provider: Provider, key: str) -> None:
    with pytest.raises(ValueError, match="Invalid storage key"):
        provider.write(key, b"x")


def test_check_key_accepts_plain_keys() -> None:
    assert check_key("packs/ab.pack") == "packs/ab.pack"
