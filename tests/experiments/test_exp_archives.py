"""Archive expansion on real files: every extension, and the archives that must be refused."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from datakeep.errors import InvalidInput, QuotaExceeded, UnsafeArchive
from datakeep.experiments.archives import expand_archive
from datakeep.experiments.budget import ByteBudget
from datakeep.experiments.options import ARCHIVE_EXTENSIONS


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An empty directory of our own (``tmp_path`` also holds the hermetic datakeep home)."""
    path = tmp_path / "work"
    path.mkdir()
    return path


FILES = {"train/a.txt": b"alpha\n", "train/b.txt": b"beta\n", "README": b"read me\n"}


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_archive(path: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` in the format ``path``'s extension names (tar compressions by hand)."""
    name = path.name
    if name.endswith(".zip"):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for member, data in files.items():
                zf.writestr(member, data)
        return path
    raw = _tar_bytes(files)
    if name.endswith((".tar.gz", ".tgz", ".tar.gz2")):
        raw = gzip.compress(raw)
    elif name.endswith((".tar.bz2", ".tbz", ".tbz2")):
        raw = bz2.compress(raw)
    elif name.endswith((".tar.xz", ".txz")):
        raw = lzma.compress(raw)
    path.write_bytes(raw)
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("ext", sorted(ARCHIVE_EXTENSIONS))
def test_every_extension_expands_into_the_root(work: Path, ext: str) -> None:
    archive = make_archive(work / f"dataset{ext}", FILES)
    dest = work / "out" / "dataset"
    dest.parent.mkdir()
    written = expand_archive(archive, dest)
    assert tree(dest) == FILES
    assert written == sum(len(v) for v in FILES.values())
    assert list(dest.parent.iterdir()) == [dest]


def _tar_with(work: Path, *members: tarfile.TarInfo, data: bytes = b"x") -> Path:
    path = work / "evil.tar"
    with tarfile.open(path, "w") as tar:
        for info in members:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_info("../escape.txt"), "contains '..'"),
        (_info("ok/../../escape.txt"), "contains '..'"),
        (_info("/etc/escape.txt"), "absolute path"),
        (_info("link", tarfile.SYMTYPE, "/etc/passwd"), "absolute path '/etc/passwd'"),
        (_info("sub/link", tarfile.SYMTYPE, "../../outside"), "points outside"),
        (_info("hard", tarfile.LNKTYPE, "../outside"), "points to '../outside'"),
        (_info("dev", tarfile.CHRTYPE), "device or FIFO"),
        (_info("blk", tarfile.BLKTYPE), "device or FIFO"),
        (_info("fifo", tarfile.FIFOTYPE), "device or FIFO"),
    ],
)
def test_unsafe_tar_entries_are_refused(work: Path, member: tarfile.TarInfo, message: str) -> None:
    archive = _tar_with(work, _info("fine.txt"), member)
    dest = work / "out"
    with pytest.raises(UnsafeArchive) as info:
        expand_archive(archive, dest, label="s3://bucket/evil.tar")
    assert "s3://bucket/evil.tar" in str(info.value)
    assert repr(member.name) in str(info.value)
    assert message in str(info.value)
    assert not dest.exists()
    assert list(work.iterdir()) == [archive]
    assert not (work / "escape.txt").exists()


def test_symlink_then_write_through_it_is_refused(work: Path) -> None:
    # The link alone points outside; the classic trick then writes "link/x" through it.
    archive = _tar_with(work, _info("link", tarfile.SYMTYPE, ".."), _info("link/x"))
    with pytest.raises(UnsafeArchive, match="points outside"):
        expand_archive(archive, work / "out")
    assert not (work / "x").exists()


def test_link_made_to_escape_by_a_later_link_is_refused(work: Path) -> None:
    # "l1 -> e/.." is inside while e does not exist; "e -> ." then makes l1 the dataset's parent.
    archive = _tar_with(work, _info("l1", tarfile.SYMTYPE, "e/.."), _info("e", tarfile.SYMTYPE, "."))
    dest = work / "out"
    with pytest.raises(UnsafeArchive) as info:
        expand_archive(archive, dest, label="s3://bucket/chain.tar")
    assert "s3://bucket/chain.tar" in str(info.value)
    assert "link 'l1' points outside" in str(info.value)
    assert not dest.exists()


def test_links_inside_the_dataset_are_kept(work: Path) -> None:
    archive = _tar_with(
        work,
        _info("data/real.txt"),
        _info("data/alias", tarfile.SYMTYPE, "real.txt"),
        _info("top", tarfile.SYMTYPE, "data"),
        _info("copy.txt", tarfile.LNKTYPE, "data/real.txt"),
        data=b"payload",
    )
    dest = work / "out"
    expand_archive(archive, dest)
    assert (dest / "data" / "alias").read_bytes() == b"payload"
    assert (dest / "top" / "real.txt").read_bytes() == b"payload"
    assert (dest / "copy.txt").read_bytes() == b"payload"
    assert not (dest / "copy.txt").is_symlink()


def test_zip_traversal_and_symlink_are_refused(work: Path) -> None:
    path = work / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../escape.txt", b"x")
    with pytest.raises(UnsafeArchive, match=r"evil.zip: entry '../../escape.txt' contains '..'"):
        expand_archive(path, work / "out")

    link = work / "link.zip"
    with zipfile.ZipFile(link, "w") as zf:
        info = zipfile.ZipInfo("etc")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc")
    with pytest.raises(UnsafeArchive, match=r"link 'etc' points to absolute path '/etc'"):
        expand_archive(link, work / "out2")

    fifo = work / "fifo.zip"
    with zipfile.ZipFile(fifo, "w") as zf:
        info = zipfile.ZipInfo("pipe")
        info.external_attr = (stat.S_IFIFO | 0o644) << 16
        zf.writestr(info, b"")
    with pytest.raises(UnsafeArchive, match="'pipe' is a device, FIFO or socket"):
        expand_archive(fifo, work / "out3")


def test_zip_bomb_is_stopped(work: Path) -> None:
    bomb = work / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (20 * 2**20))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(QuotaExceeded, match="bomb.zip") as info:
        expand_archive(bomb, work / "out", budget=ByteBudget(2**20, label="dynamic volume"))
    assert "dynamic volume" in str(info.value)
    assert not (work / "out").exists()
    assert list(work.iterdir()) == [bomb]


def test_bytes_really_written_are_counted_across_entries(work: Path) -> None:
    # Each entry fits on its own; the third pushes the real total past the budget.
    archive = make_archive(work / "parts.tgz", {f"p{i}.bin": b"\1" * 400_000 for i in range(3)})
    budget = ByteBudget(1_000_000, label="dynamic volume")
    with pytest.raises(QuotaExceeded, match=r"parts.tgz \(entry 'p2.bin'\)"):
        expand_archive(archive, work / "out", budget=budget)
    assert budget.used == 800_000


def test_hard_link_bomb_is_stopped_by_the_bytes_written(work: Path) -> None:
    # Hard links declare no size, yet each is expanded into a copy: only counting what is
    # really written sees 6 x 40 kB behind 40 kB of declared data.
    members = [_info("data.bin")] + [_info(f"copy{i}", tarfile.LNKTYPE, "data.bin") for i in range(5)]
    archive = _tar_with(work, *members, data=b"\1" * 40_000)
    with pytest.raises(QuotaExceeded, match=r"evil.tar \(at entry 'copy1'\)"):
        expand_archive(archive, work / "out", budget=ByteBudget(100_000, label="dynamic volume"))
    assert not (work / "out").exists()


def test_damaged_archive_is_an_input_error(work: Path) -> None:
    path = work / "broken.tgz"
    path.write_bytes(b"not a tarball at all")
    with pytest.raises(InvalidInput, match="broken.tgz"):
        expand_archive(path, work / "out")
    assert not (work / "out").exists()
