"""Safe expansion of dataset archives into the root of a volume.

Archives come from buckets we do not control, so each entry is checked before it touches the
disk: no absolute paths, no ``..``, no links leading outside, no devices or FIFOs, and a byte
budget counted on the bytes really written (declared sizes can lie). Expansion happens in a
temporary sibling directory that is renamed into place only when complete, so a failed or
interrupted expansion never leaves a half-filled dataset that a later run could mistake for
a finished one.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from datakeep.errors import InvalidInput, UnsafeArchive
from datakeep.experiments.budget import ByteBudget, disk_full_is_quota
from datakeep.experiments.options import archive_extension

_CHUNK = 1024 * 1024
_MAX_LINK_TARGET = 4096


def is_archive(filename: str) -> bool:
    return archive_extension(filename) is not None


def expand_archive(
    archive: Path,
    dest: Path,
    *,
    budget: ByteBudget | None = None,
    label: str | None = None,
) -> int:
    """Expand ``archive`` so its contents are the contents of ``dest`` (which must not exist).

    ``label`` is how errors name the archive (its S3 URI, say) instead of the local path.
    Returns the number of content bytes written.
    """
    label = label or archive.name
    ext = archive_extension(label) or archive_extension(archive.name)
    if ext is None:
        raise InvalidInput(f"{label} is not a recognised archive", hint="Supported: .zip, .tar, .tgz, …")
    budget = budget or ByteBudget(None, label=str(dest))
    tmp = dest.parent / f".{dest.name}.expanding-{uuid.uuid4().hex[:12]}"
    tmp.mkdir(parents=True)
    before = budget.used
    try:
        with disk_full_is_quota(f"Archive {label}", budget.label):
            if ext == ".zip":
                _expand_zip(archive, tmp, budget, label)
            else:
                _expand_tar(archive, tmp, budget, label)
        _check_links_stay_inside(tmp, label)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return budget.used - before


# ENTRY CHECKS


def _entry_path(root: Path, name: str, label: str) -> Path | None:
    """Where a member lands, or ``None`` for the archive root itself; refuses escapes outright.

    ``..`` is refused even when it would stay inside: no honest dataset needs it, and a
    simple rule is easier to trust than path arithmetic.
    """
    if "\x00" in name:
        raise UnsafeArchive(f"Archive {label}: entry {name!r} has a NUL byte in its name", entry=name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"Archive {label}: entry {name!r} has an absolute path", entry=name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"Archive {label}: entry {name!r} contains '..'", entry=name)
    if not parts:
        return None
    path = root.joinpath(*parts)
    _ensure_inside(root, path.parent, label, name)
    return path


def _ensure_inside(root: Path, path: Path, label: str, name: str) -> None:
    """Resolve symlinks already extracted: a parent that leads outside is an escape."""
    if not _within(os.path.realpath(root), os.path.realpath(path)):
        raise UnsafeArchive(
            f"Archive {label}: entry {name!r} would be written outside the dataset", entry=name
        )


def _within(real_root: str, real: str) -> bool:
    """Whether the resolved path ``real`` is the resolved root or below it."""
    return real == real_root or real.startswith(real_root + os.sep)


def _check_link_target(root: Path, path: Path, target: str, label: str, name: str) -> None:
    if target.startswith("/") or "\x00" in target:
        raise UnsafeArchive(f"Archive {label}: link {name!r} points to absolute path {target!r}", entry=name)
    if not _within(os.path.realpath(root), os.path.realpath(os.path.join(path.parent, target))):
        raise UnsafeArchive(
            f"Archive {label}: link {name!r} points outside the dataset ({target!r})", entry=name
        )


def _check_links_stay_inside(root: Path, label: str) -> None:
    """Judge every link again once all of them exist.

    Each link was checked when written, but a later link can change where an earlier one
    leads (``l -> e/..`` is inside until ``e -> .`` arrives, then it is the parent of the
    dataset), so only the finished tree says where links really go.
    """
    real_root = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            if not path.is_symlink():
                continue
            if not _within(real_root, os.path.realpath(path)):
                entry = path.relative_to(root).as_posix()
                raise UnsafeArchive(
                    f"Archive {label}: link {entry!r} points outside the dataset "
                    f"({os.readlink(path)!r}, through other links)",
                    entry=entry,
                )


def _clear(path: Path) -> None:
    """A later entry replaces an earlier one, as tar does; never write through an old symlink."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()


def _make_dir(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
    path.mkdir(parents=True, exist_ok=True)


def _make_symlink(root: Path, path: Path, target: str, label: str, name: str) -> None:
    _check_link_target(root, path, target, label, name)
    _clear(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def _write_stream(src: IO[bytes], path: Path, mode: int, budget: ByteBudget, label: str, name: str) -> None:
    _clear(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(_CHUNK):
            out.write(chunk)
            budget.add(len(chunk), what=f"Archive {label} (at entry {name!r})")
    os.chmod(path, _file_mode(mode))


def _file_mode(mode: int) -> int:
    """Keep the execute bits; drop setuid/setgid/sticky and group/other write."""
    return (mode & 0o755) | 0o644 if mode else 0o644


# TAR


def _expand_tar(archive: Path, root: Path, budget: ByteBudget, label: str) -> None:
    # Members are read as they come (no second pass), so a damaged tail is found mid-way;
    # the caller's temporary directory absorbs what was already written.
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                _extract_tar_member(tar, member, root, budget, label)
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidInput(f"Archive {label} cannot be read as tar: {exc}") from exc


def _extract_tar_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, budget: ByteBudget, label: str
) -> None:
    name = member.name
    path = _entry_path(root, name, label)
    if (
        member.isdev()
        or member.isfifo()
        or not (member.isreg() or member.isdir() or member.issym() or member.islnk())
    ):
        raise UnsafeArchive(f"Archive {label}: entry {name!r} is a device or FIFO", entry=name)
    if path is None:
        return
    if member.isdir():
        _make_dir(path)
    elif member.issym():
        _make_symlink(root, path, member.linkname, label, name)
    elif member.islnk():
        # A hard link names another member by its archive path; copy it (counted again, as
        # the bytes are stored again) rather than link, so no inode is shared with anything.
        try:
            source = _entry_path(root, member.linkname, label)
        except UnsafeArchive as exc:
            reason = exc.message.split(": ", 1)[1]
            raise UnsafeArchive(
                f"Archive {label}: hard link {name!r} points to {member.linkname!r}: {reason}", entry=name
            ) from None
        if source is None or not source.is_file() or source.is_symlink():
            raise UnsafeArchive(
                f"Archive {label}: hard link {name!r} points to {member.linkname!r}, not an earlier file",
                entry=name,
            )
        _ensure_inside(root, source, label, name)
        with source.open("rb") as copied:
            _write_stream(copied, path, member.mode, budget, label, name)
    else:
        budget.check_announced(member.size, what=f"Archive {label} (entry {name!r})")
        src = tar.extractfile(member)
        if src is None:
            raise UnsafeArchive(f"Archive {label}: entry {name!r} has no data", entry=name)
        with src:
            _write_stream(src, path, member.mode, budget, label, name)


# ZIP


def _expand_zip(archive: Path, root: Path, budget: ByteBudget, label: str) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"Archive {label} cannot be read as zip: {exc}") from exc
    with zf:
        infos = zf.infolist()
        declared = sum(i.file_size for i in infos)
        budget.check_announced(declared, what=f"Archive {label} (declared contents)")
        try:
            for info in infos:
                _extract_zip_member(zf.open, info, root, budget, label)
        except (zipfile.BadZipFile, EOFError) as exc:
            raise InvalidInput(f"Archive {label} is damaged: {exc}") from exc


def _extract_zip_member(
    opener: Callable[[zipfile.ZipInfo], IO[bytes]],
    info: zipfile.ZipInfo,
    root: Path,
    budget: ByteBudget,
    label: str,
) -> None:
    name = info.filename
    path = _entry_path(root, name, label)
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
        raise UnsafeArchive(f"Archive {label}: entry {name!r} is a device, FIFO or socket", entry=name)
    if path is None:
        return
    if info.is_dir() or kind == stat.S_IFDIR:
        _make_dir(path)
        return
    if kind == stat.S_IFLNK:
        with opener(info) as src:
            raw = src.read(_MAX_LINK_TARGET + 1)
        if len(raw) > _MAX_LINK_TARGET:
            raise UnsafeArchive(f"Archive {label}: link {name!r} has an overlong target", entry=name)
        _make_symlink(root, path, raw.decode("utf-8", "surrogateescape"), label, name)
        return
    with opener(info) as src:
        _write_stream(src, path, stat.S_IMODE(mode), budget, label, name)
