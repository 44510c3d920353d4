"""The shared-storage cache: fetched content kept once, presented per version as a directory.

Gradient kept dataset data "on a cluster's shared storage for a period of time"; this is that
storage. It knows digests and relative paths, never providers: the caller passes a ``fetch``
function that writes the missing blobs, and the cache checks what it was given.

Layout under ``root`` (a local disk or an NFS directory shared by several machines)::

    blobs/ab/cdef...            one file per BLAKE3 digest, mode 0444, written once
    snapshots/<key>/manifest.json   what the version holds; its mtime is the last use
    snapshots/<key>/files/...       the version as a tree of hardlinks to blobs (dirs 0555)
    pins/<key>/<owner>~<id>.json    "a running job uses this version": never evicted
    locks/<hash>.lock               best-effort, only to avoid fetching twice
    tmp/<owner>~<id>/               work in progress; leftovers of dead owners are swept

Every publication is one atomic step, so a reader sees all or nothing, and two processes (or
machines) doing the same work at once both succeed with the same result:

- a blob is written under ``tmp/``, verified against its digest, then ``os.link``-ed to its
  final name. The link fails if the name exists, so the first verified copy wins and an
  existing blob (possibly hardlinked into snapshots) is never replaced;
- a snapshot (manifest + tree) is built under ``tmp/`` and ``os.rename``-d to
  ``snapshots/<key>``. The rename fails if another process published it first, and ours is
  thrown away;
- removal renames ``snapshots/<key>`` into ``tmp/`` first, so it vanishes at once.

Presenting a version that is already cached costs one ``stat`` and one ``utime``, whatever
its file count. Keys must name immutable content (a committed version), because a cached
snapshot is reused without being compared again.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from datakeep.cache.owners import FileLock, Owner, owner_gone
from datakeep.config import Settings
from datakeep.errors import IntegrityError, InvalidInput, InvalidPath, QuotaExceeded, StorageError
from datakeep.sizes import format_size
from datakeep.storage.hashing import EMPTY_DIGEST, digest_file, is_digest
from datakeep.storage.transfer import Progress

#: Fetch callback: write each entry's bytes to ``<dir>/<digest>``.
Fetch = Callable[[Sequence["CacheEntry"], Path], None]
#: Which cached versions (by key) a caller may see; ``None``: all of them.
Scope = Callable[[str], bool] | None

BLOB_MODE = 0o444
TREE_DIR_MODE = 0o555
_KEY_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._@+=-]*$")
_FICLONE = 0x40049409
#: A pin or temp dir of a process on another host is trusted while touched this recently.
FOREIGN_STALE_AFTER = 600.0
_PIN_HEARTBEAT = 60.0
_BUILD_ATTEMPTS = 5


@dataclass(frozen=True)
class CacheEntry:
    path: str  # relative POSIX path inside the version
    digest: str  # BLAKE3 hex digest of the bytes
    size: int


@dataclass(frozen=True)
class PinInfo:
    label: str
    host: str
    pid: int
    created: datetime


@dataclass(frozen=True)
class CachedVersion:
    key: str
    path: Path  # the directory to read or mount
    size: int  # bytes of the version's files (shared blobs counted in each version)
    files: int
    last_used: datetime
    created: datetime
    pins: tuple[PinInfo, ...] = ()

    @property
    def dataset(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def pinned(self) -> bool:
        return bool(self.pins)


@dataclass(frozen=True)
class Problem:
    kind: str  # corrupt_blob, corrupt_file, missing_file, unexpected_file, bad_manifest, leftover_temp
    path: Path
    detail: str
    repaired: bool = False
    key: str | None = None  # the cached version concerned, when there is one


@dataclass
class CleanPlan:
    """What a clean would remove; nothing happens until :meth:`execute` (``--dry-run`` stops before)."""

    cache: Cache
    versions: list[CachedVersion]
    kept_pinned: list[CachedVersion]
    freed_bytes: int
    #: Set when the plan was made for part of the cache: the bytes then counted are those the
    #: part no longer uses, whatever other versions outside it share (see :meth:`Cache.plan_clean`).
    scope: Scope = None

    def execute(self) -> int:
        """Remove the planned versions (re-checking pins now); return the bytes freed."""
        keys = [v.key for v in self.versions]
        if self.scope is None:
            removed = self.cache._remove_versions(keys)
        else:
            removed = self.cache._remove_scoped(keys, self.scope)
        self.cache._sweep_temp()
        return removed


@dataclass
class Pin:
    """A live pin: the version cannot be evicted until :meth:`release` (or this process dies)."""

    cache: Cache
    key: str
    label: str
    path: Path
    _stop: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self._stop.set()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> Pin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _BlobVanished(Exception):
    """A blob was evicted between the check and the link: fetch again."""


def _now() -> datetime:
    return datetime.now(UTC)


def _from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def remove_tree(path: Path) -> None:
    """Remove a tree even where its directories are read-only: the cache makes snapshot
    directories 0555 on purpose, and a job's command may leave its scratch or output so."""

    def fix_and_retry(func: Callable[..., object], target: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(target), 0o700)
            if not os.path.islink(target) and os.path.isdir(target):
                os.chmod(target, 0o700)
            func(target)

    if path.exists() or path.is_symlink():
        shutil.rmtree(path, onerror=fix_and_retry)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def check_key(key: str) -> tuple[str, ...]:
    parts = tuple(key.split("/"))
    if not key or not all(_KEY_PART.match(p) for p in parts):
        raise InvalidInput(f"Invalid cache key {key!r}", hint="Use names like dsXXXXXXXXXXXXX/version.")
    return parts


def _check_entries(entries: Sequence[CacheEntry]) -> None:
    seen: set[str] = set()
    for e in entries:
        p = PurePosixPath(e.path)
        if not e.path or p.is_absolute() or any(part in ("", ".", "..") for part in e.path.split("/")):
            raise InvalidPath(f"Path {e.path!r} is not a relative path inside the version")
        if e.path in seen:
            raise InvalidPath(f"Path {e.path!r} appears twice")
        seen.add(e.path)
        if not is_digest(e.digest):
            raise InvalidInput(f"{e.digest!r} is not a BLAKE3 hex digest")
        if e.size < 0:
            raise InvalidInput(f"Negative size for {e.path!r}")


class Cache:
    def __init__(
        self,
        root: Path,
        *,
        max_size: int | None = None,
        lock_stale_after: float = 30.0,
        lock_max_wait: float = 3600.0,
    ) -> None:
        self.root = Path(root)
        self.max_size = max_size
        self.lock_stale_after = lock_stale_after
        self.lock_max_wait = lock_max_wait
        self._owner = Owner.me()
        self._pins: dict[tuple[str, str], Pin] = {}
        for sub in ("blobs", "snapshots", "pins", "locks", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # PATHS

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / digest[:2] / digest[2:]

    def _unit(self, key: str) -> Path:
        return self.root / "snapshots" / Path(*check_key(key))

    def snapshot_path(self, key: str) -> Path | None:
        """The cached tree of ``key``, or None when it is not cached."""
        files = self._unit(key) / "files"
        return files if files.is_dir() else None

    def _new_tmp(self) -> Path:
        tmp = self.root / "tmp" / f"{self._owner.tag}~{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        return tmp

    # MATERIALIZE

    def materialize(
        self,
        key: str,
        entries: Sequence[CacheEntry] | Callable[[], Sequence[CacheEntry]],
        fetch: Fetch,
        *,
        pin: str | None = None,
    ) -> Path:
        """The version as a read-only directory, fetching only the blobs not cached yet.

        ``entries`` may be a function listing them: it is called only when the version is not
        cached, since listing a large version costs far more than presenting a cached one.
        With ``pin``, the version is pinned (under that label) *before* it is looked up, so an
        eviction running meanwhile cannot take it away; release it with :meth:`unpin`.
        """
        check_key(key)
        if pin is not None:
            self.pin(key, pin)
        try:
            # A cached version is returned before the entries are even looked at: O(1).
            found = self._reuse(key)
            if found is not None:
                return found
            return self._materialize(key, entries() if callable(entries) else entries, fetch)
        except BaseException:
            if pin is not None:
                self.unpin(key, pin)
            raise

    def lookup(self, key: str) -> Path | None:
        """The cached tree of ``key`` (counted as a use), so a caller can skip listing its files."""
        return self._reuse(key)

    def _materialize(self, key: str, entries: Sequence[CacheEntry], fetch: Fetch) -> Path:
        _check_entries(entries)
        lock = FileLock(self._lock_path(key), stale_after=self.lock_stale_after, max_wait=self.lock_max_wait)
        with lock:
            found = self._reuse(key)
            if found is not None:
                return found
            for _ in range(_BUILD_ATTEMPTS):
                missing = self._missing(entries)
                if self.max_size is not None:
                    self._make_room(key, sum(e.size for e in missing))
                if missing:
                    self._sweep_temp()
                    self._fetch(missing, fetch)
                try:
                    return self._build(key, entries)
                except _BlobVanished:
                    continue  # evicted by another process meanwhile: fetch it again
        raise StorageError(
            f"Could not keep the blobs of {key} in the cache long enough to use them",
            hint="The cache is under heavy eviction; raise DATAKEEP_CACHE_MAX_SIZE.",
        )

    def _reuse(self, key: str) -> Path | None:
        unit = self._unit(key)
        files = unit / "files"
        if not files.is_dir():
            return None
        with contextlib.suppress(OSError):
            os.utime(unit / "manifest.json")  # last use, for LRU
        return files

    def _lock_path(self, key: str) -> Path:
        return self.root / "locks" / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")

    def _missing(self, entries: Sequence[CacheEntry]) -> builtins.list[CacheEntry]:
        missing: dict[str, CacheEntry] = {}
        for e in entries:
            if e.digest in missing or self.blob_path(e.digest).exists():
                continue
            if e.digest == EMPTY_DIGEST:
                # Storage engines never store empty files; the cache makes this blob itself.
                tmp = self._new_tmp()
                try:
                    (tmp / e.digest).touch()
                    self._publish_blob(tmp / e.digest, e.digest)
                finally:
                    remove_tree(tmp)
                continue
            missing[e.digest] = e
        return list(missing.values())

    def _fetch(self, missing: builtins.list[CacheEntry], fetch: Fetch) -> None:
        tmp = self._new_tmp()
        try:
            fetch(missing, tmp)
            bad: builtins.list[str] = []
            for e in missing:
                got = tmp / e.digest
                if not got.is_file():
                    bad.append(f"{e.path}: not delivered")
                    continue
                if got.stat().st_size != e.size:
                    bad.append(f"{e.path}: {got.stat().st_size} bytes instead of {e.size}")
                    continue
                actual = digest_file(got)
                if actual != e.digest:
                    bad.append(f"{e.path}: digest {actual[:12]}… instead of {e.digest[:12]}…")
                    continue
                self._publish_blob(got, e.digest)
            if bad:
                raise IntegrityError(
                    f"{len(bad)} fetched file(s) failed verification: " + "; ".join(bad[:5]),
                    hint="Nothing unverified was cached; run the command again.",
                )
        finally:
            remove_tree(tmp)

    def _publish_blob(self, src: Path, digest: str) -> None:
        dest = self.blob_path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(src, BLOB_MODE)
        try:
            os.link(src, dest)
        except FileExistsError:
            pass  # someone published the same verified bytes first
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            os.replace(src, dest)  # no hardlinks on this filesystem: rename is still atomic

    def _build(self, key: str, entries: Sequence[CacheEntry]) -> Path:
        unit = self._unit(key)
        tmp = self._new_tmp()
        try:
            tree = tmp / "unit" / "files"
            tree.mkdir(parents=True)
            made: set[Path] = {tree}
            for e in entries:
                target = tree.joinpath(*e.path.split("/"))
                parent = target.parent
                if parent not in made:
                    try:
                        parent.mkdir(parents=True, exist_ok=True)
                    except (FileExistsError, NotADirectoryError) as exc:
                        raise InvalidPath(f"Path {e.path!r} is under a file of the same version") from exc
                    made.update([parent, *parent.parents])
                _link_or_copy(self.blob_path(e.digest), target)
            manifest = {
                "key": key,
                "entries": [[e.path, e.digest, e.size] for e in entries],
                "size": sum(e.size for e in entries),
                "files": len(entries),
                "created": _now().isoformat(),
            }
            _write_atomic(tmp / "unit" / "manifest.json", json.dumps(manifest).encode())
            for d in sorted(made, key=lambda p: len(p.parts), reverse=True):
                if d == tree or tree in d.parents:
                    os.chmod(d, TREE_DIR_MODE)
            unit.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp / "unit", unit)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not (unit / "files").is_dir():
                    raise
                # Another process published the same version first: use theirs.
            return self._reuse(key) or unit / "files"
        finally:
            remove_tree(tmp)

    # SIZE CAP

    def _make_room(self, key: str, needed: int) -> None:
        assert self.max_size is not None
        ref = key.replace("/", ":", 1)
        if needed > self.max_size:
            # No eviction can help: say so instead of blaming other jobs' pins.
            raise QuotaExceeded(
                f"{ref} needs {format_size(needed)} in the cache, more than its whole size cap "
                f"({format_size(self.max_size)})",
                hint="Raise DATAKEEP_CACHE_MAX_SIZE above the largest version a job reads.",
            )
        self.evict_to_fit(self.max_size - needed, keep={key})
        usage = self.usage()
        if usage + needed > self.max_size:
            raise QuotaExceeded(
                f"{ref} needs {format_size(needed)} more in the cache, which holds "
                f"{format_size(usage)} of {format_size(self.max_size)}, pinned by running jobs",
                hint="Raise DATAKEEP_CACHE_MAX_SIZE or wait for the running jobs to finish.",
            )

    def usage(self) -> int:
        """Bytes held by blobs (snapshot hardlinks cost nothing more)."""
        return sum(_size(blob) for blob in self._iter_blobs())

    def evict_to_fit(self, max_size: int | None = None, *, keep: Iterable[str] = ()) -> builtins.list[str]:
        """Evict least-recently-used versions until blobs fit in ``max_size``; never a pinned one."""
        cap = self.max_size if max_size is None else max_size
        if cap is None:
            return []
        keep = set(keep)
        usage = self.usage()
        evicted: builtins.list[str] = []
        if usage > cap:
            usage -= self._collect_garbage(None)  # blobs of no version at all go first
        for version in sorted(self.list(), key=lambda v: v.last_used):
            if usage <= cap:
                break
            if version.key in keep or version.pinned:
                continue
            freed = self._remove_versions([version.key])
            if self.snapshot_path(version.key) is None:
                evicted.append(version.key)
            usage -= freed
        return evicted

    # PINS

    def _pin_dir(self, key: str) -> Path:
        return self.root / "pins" / Path(*check_key(key))

    def pin(self, key: str, label: str) -> Pin:
        """Keep ``key`` from eviction while this process lives (or until released)."""
        directory = self._pin_dir(key)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self._owner.tag}~{uuid.uuid4().hex}.json"
        body = {"label": label, "created": _now().isoformat(), **self._owner.to_json()}
        _write_atomic(path, json.dumps(body).encode())
        handle = Pin(self, key, label, path)

        def heartbeat() -> None:
            # Lets other hosts, which cannot see our pid, tell a live pin from a crashed one.
            while not handle._stop.wait(_PIN_HEARTBEAT):
                with contextlib.suppress(OSError):
                    os.utime(path)

        threading.Thread(target=heartbeat, name="datakeep-pin-heartbeat", daemon=True).start()
        self._pins[(key, label)] = handle
        return handle

    def unpin(self, key: str, label: str | None = None) -> None:
        """Release this process's pins of ``key`` (only those with ``label`` if given)."""
        for (k, lab), handle in list(self._pins.items()):
            if k == key and (label is None or lab == label):
                handle.release()
                del self._pins[(k, lab)]

    def pins(self, key: str) -> builtins.list[PinInfo]:
        """Live pins of ``key``; pins left by dead processes are removed on the way."""
        directory = self._pin_dir(key)
        live: builtins.list[PinInfo] = []
        try:
            files = list(directory.iterdir())
        except FileNotFoundError:
            return live
        for path in files:
            if not path.name.endswith(".json"):
                continue
            owner: Owner | None
            mtime = 0.0
            try:
                mtime = path.stat().st_mtime
                data = json.loads(path.read_text())
                owner = Owner.from_json(data)
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError):
                # Half-written by a process that died: its name still tells who made it.
                owner = Owner.from_tag(path.name)
                data = {"label": "?", "created": _from_ts(mtime).isoformat()}
            if owner_gone(owner, mtime, stale_after=FOREIGN_STALE_AFTER):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            if owner is None:
                continue
            live.append(
                PinInfo(str(data["label"]), owner.host, owner.pid, datetime.fromisoformat(data["created"]))
            )
        return live

    # LISTING AND CLEANING

    def _iter_units(self, scope: Scope = None) -> Iterator[tuple[str, Path]]:
        base = self.root / "snapshots"
        for dirpath, dirnames, _ in os.walk(base):
            if "files" in dirnames and os.path.isfile(os.path.join(dirpath, "manifest.json")):
                dirnames.clear()  # never descend into a version's own tree
                key = os.path.relpath(dirpath, base).replace(os.sep, "/")
                if scope is None or scope(key):
                    yield key, Path(dirpath)

    def _manifest(self, unit: Path) -> dict[str, Any] | None:
        try:
            data = json.loads((unit / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def list(self, *, scope: Scope = None) -> builtins.list[CachedVersion]:
        """The cached versions (only those ``scope`` accepts, when given)."""
        versions: builtins.list[CachedVersion] = []
        for key, unit in self._iter_units(scope):
            manifest = self._manifest(unit)
            try:
                mtime = (unit / "manifest.json").stat().st_mtime
            except OSError:
                continue
            if manifest is None:
                continue
            versions.append(
                CachedVersion(
                    key=key,
                    path=unit / "files",
                    size=int(manifest.get("size", 0)),
                    files=int(manifest.get("files", 0)),
                    last_used=_from_ts(mtime),
                    created=datetime.fromisoformat(str(manifest.get("created"))),
                    pins=tuple(self.pins(key)),
                )
            )
        return sorted(versions, key=lambda v: v.key)

    def _digests(self, unit: Path) -> dict[str, int]:
        manifest = self._manifest(unit)
        entries = manifest.get("entries", []) if manifest else []
        return {str(d): int(s) for _, d, s in entries}

    def plan_clean(
        self,
        *,
        older_than: timedelta | None = None,
        dataset: str | None = None,
        keys: Iterable[str] | None = None,
        scope: Scope = None,
    ) -> CleanPlan:
        """Which versions a clean removes and how many bytes that frees; see :class:`CleanPlan`.

        ``keys`` limits the plan to versions chosen earlier (a plan shown, then confirmed).
        With ``scope``, versions outside it are neither removed nor counted: the bytes a
        plan frees are those no other version *in scope* uses. Counting the others would
        let one team learn, from the number, that another team caches the same content.
        """
        cutoff = _now() - older_than if older_than is not None else None
        wanted = None if keys is None else set(keys)
        chosen: builtins.list[CachedVersion] = []
        pinned: builtins.list[CachedVersion] = []
        for v in self.list(scope=scope):
            if dataset is not None and v.dataset != dataset:
                continue
            if wanted is not None and v.key not in wanted:
                continue
            if cutoff is not None and v.last_used >= cutoff:
                continue
            (pinned if v.pinned else chosen).append(v)
        freed = self._freed_by({v.key for v in chosen}, scope)
        return CleanPlan(self, chosen, pinned, freed, scope)

    def _freed_by(self, keys: set[str], scope: Scope) -> int:
        """Bytes of the blobs only ``keys`` use, among the versions in ``scope``."""
        kept: set[str] = set()
        candidates: dict[str, int] = {}
        for key, unit in self._iter_units(scope):
            digests = self._digests(unit)
            if key in keys:
                candidates.update(digests)
            else:
                kept.update(digests)
        return sum(size for digest, size in candidates.items() if digest not in kept)

    def _remove_scoped(self, keys: Sequence[str], scope: Scope) -> int:
        """Remove versions as :meth:`_remove_versions` does, counting freed bytes within ``scope``."""
        before: dict[str, dict[str, int]] = {}
        for key in keys:
            with contextlib.suppress(InvalidInput):
                before[key] = self._digests(self._unit(key))
        self._remove_versions(keys)
        gone: dict[str, int] = {}
        for key, digests in before.items():
            if self.snapshot_path(key) is None:  # a pinned one stayed
                gone.update(digests)
        still_used: set[str] = set()
        for _, unit in self._iter_units(scope):
            still_used.update(self._digests(unit))
        return sum(size for digest, size in gone.items() if digest not in still_used)

    def _remove_versions(self, keys: Sequence[str]) -> int:
        """Remove versions (never a pinned one), then the blobs only they used; bytes freed."""
        candidates: set[str] = set()
        for key in keys:
            unit = self._unit(key)
            if self.pins(key) or not (unit / "files").is_dir():
                continue
            digests = set(self._digests(unit))
            trash = self._new_tmp() / "unit"
            try:
                os.rename(unit, trash)
            except FileNotFoundError:
                continue
            if self.pins(key):
                # Pinned while we were moving it: put it back unless it was rebuilt meanwhile.
                with contextlib.suppress(OSError):
                    os.rename(trash, unit)
            candidates |= digests
            remove_tree(trash.parent)
        return self._collect_garbage(candidates) if candidates else 0

    def _collect_garbage(self, candidates: set[str] | None) -> int:
        """Delete blobs no cached version uses (among ``candidates``, or all); bytes freed."""
        used: set[str] = set()
        for _, unit in self._iter_units():
            used.update(self._digests(unit))
        freed = 0
        blobs = (self.blob_path(d) for d in candidates) if candidates is not None else self._iter_blobs()
        for blob in blobs:
            digest = blob.parent.name + blob.name
            if digest in used:
                continue
            with contextlib.suppress(FileNotFoundError):
                size = blob.stat().st_size
                blob.unlink()
                freed += size
        return freed

    def _iter_blobs(self) -> Iterator[Path]:
        base = self.root / "blobs"
        for prefix in sorted(base.iterdir()) if base.is_dir() else []:
            if len(prefix.name) == 2 and prefix.is_dir():
                for blob in prefix.iterdir():
                    if not blob.name.startswith("."):
                        yield blob

    def _sweep_temp(self) -> builtins.list[Path]:
        """Remove work left in ``tmp/`` by processes that died; return what was removed."""
        removed = self._stale_temp()
        for path in removed:
            remove_tree(path)
        return removed

    def _stale_temp(self) -> builtins.list[Path]:
        """Work in ``tmp/`` whose owner died. A foreign host's is judged by age only, and a
        fetch may legitimately run for hours, hence the day before it counts as abandoned."""
        stale = []
        for path in (self.root / "tmp").iterdir():
            owner = Owner.from_tag(path.name.rsplit("~", 1)[0])
            with contextlib.suppress(OSError):
                if owner_gone(owner, path.stat().st_mtime, stale_after=max(FOREIGN_STALE_AFTER, 86400.0)):
                    stale.append(path)
        return stale

    # VERIFY

    def verify(
        self, *, repair: bool = False, progress: bool | None = False, scope: Scope = None
    ) -> builtins.list[Problem]:
        """Rehash every blob and check every snapshot against its manifest.

        With ``repair``, corrupted blobs and the snapshots that expose them are removed, so the
        next use fetches them again; a pinned snapshot is reported but left to its job.
        Rehashing a large cache takes a while, hence ``progress`` (None: when on a terminal).
        With ``scope``, only the versions it accepts and the blobs they use are checked, and
        leftover work in ``tmp/`` (whose owner no scope can tell) is left to a whole-cache verify.
        """
        problems: builtins.list[Problem] = []
        bad: set[str] = set()
        units = list(self._iter_units(scope))
        if scope is None:
            blobs = list(self._iter_blobs())
        else:
            used = {d for _, unit in units for d in self._digests(unit) if is_digest(d)}
            blobs = [b for b in map(self.blob_path, sorted(used)) if b.exists()]
        with Progress("Verifying the cache", enabled=progress) as bar:
            bar.expect(len(blobs), sum(_size(b) for b in blobs))
            for blob in blobs:
                problem = self._verify_blob(blob, repair=repair)
                if problem is not None:
                    problems.append(problem)
                    bad.add(blob.parent.name + blob.name)
                bar.advance(1, _size(blob))
        for key, unit in units:
            found = self._verify_unit(unit, bad)
            if not found:
                continue
            fix = repair and not self.pins(key)
            if fix:
                self._remove_versions_force(key)
            problems.extend(
                Problem(p.kind, p.path, p.detail + ("" if fix or not repair else " (pinned: kept)"), fix, key)
                for p in found
            )
        if scope is None:
            for path in self._sweep_temp() if repair else self._stale_temp():
                problems.append(Problem("leftover_temp", path, "left by a process that died", repair))
        return problems

    @staticmethod
    def _verify_blob(blob: Path, *, repair: bool) -> Problem | None:
        """Rehash one blob (named by its digest); a corrupt one is removed on repair."""
        try:
            actual = digest_file(blob)
        except FileNotFoundError:
            return None  # evicted meanwhile
        except OSError as exc:
            actual = f"unreadable ({exc.strerror})"
        if actual == blob.parent.name + blob.name:
            return None
        if repair:
            with contextlib.suppress(FileNotFoundError):
                blob.unlink()
        return Problem("corrupt_blob", blob, f"content hashes to {actual[:16]}…", repair)

    def _remove_versions_force(self, key: str) -> None:
        unit = self._unit(key)
        trash = self._new_tmp()
        with contextlib.suppress(FileNotFoundError):
            os.rename(unit, trash / "unit")
        remove_tree(trash)

    def _verify_unit(self, unit: Path, bad: set[str]) -> builtins.list[Problem]:
        manifest = self._manifest(unit)
        if manifest is None or not isinstance(manifest.get("entries"), list):
            return [Problem("bad_manifest", unit / "manifest.json", "unreadable manifest")]
        files = unit / "files"
        problems: builtins.list[Problem] = []
        expected: set[str] = set()
        for rel, digest, size in manifest["entries"]:
            expected.add(rel)
            path = files.joinpath(*rel.split("/"))
            try:
                st = path.stat()
            except FileNotFoundError:
                problems.append(Problem("missing_file", path, "listed in the manifest but absent"))
                continue
            if digest in bad:
                problems.append(Problem("corrupt_file", path, "shares the corrupted blob"))
                continue
            with contextlib.suppress(OSError):
                blob = self.blob_path(digest).stat()
                if (blob.st_ino, blob.st_dev) == (st.st_ino, st.st_dev):
                    continue  # the very inode just verified
            if st.st_size != size or digest_file(path) != digest:
                problems.append(Problem("corrupt_file", path, "content does not match its digest"))
        for dirpath, _, names in os.walk(files):
            for name in names:
                rel = os.path.relpath(os.path.join(dirpath, name), files).replace(os.sep, "/")
                if rel not in expected:
                    problems.append(Problem("unexpected_file", Path(dirpath) / name, "not in the manifest"))
        return problems

    @classmethod
    def from_settings(cls, settings: Settings) -> Cache:
        return cls(settings.cache_path, max_size=settings.cache_max_size)


def _link_or_copy(blob: Path, target: Path) -> None:
    """Hardlink (O(1)); else reflink; else copy, for filesystems that cannot do better."""
    try:
        os.link(blob, target)
        return
    except FileNotFoundError as exc:
        raise _BlobVanished(str(blob)) from exc
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    try:
        src = os.open(blob, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise _BlobVanished(str(blob)) from exc
    try:
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                fcntl.ioctl(dst, _FICLONE, src)
            except OSError:
                with os.fdopen(os.dup(src), "rb") as fin, os.fdopen(os.dup(dst), "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1024 * 1024)
        finally:
            os.close(dst)
        os.chmod(tmp, BLOB_MODE)
        os.replace(tmp, target)
    finally:
        os.close(src)
