"""Where experiment datasets live while runs use them: shared storage, or dynamic volumes.

**Shared** (Gradient's default): ``<shared storage>/data/<NAME[-ETAG][-VERSIONID]>``,
downloaded once and reused by every later run. The name carries the pinned ETag and
VersionId (each omitted when not given), exactly as Gradient's docs promise, so users can
find and clean them by hand. A copy appears only by rename once complete and verified;
a small JSON record beside it (``.<dir>.datakeep.json``) keeps the source URI, the ETag seen
at download, size and last use. A run holds a shared ``flock`` on ``.<dir>.lock`` for as
long as it uses the copy, and ``clean`` only removes a copy it can lock exclusively: a
dataset in use by a running experiment is never removed.

Shared storage is a team's ("team shared storage" in Gradient): a server keeps each team's
under ``<shared storage>/teams/<team ID>/`` (see :func:`team_storage`); the embedded local team
uses ``<shared storage>`` itself, so its paths are the ones above.

**Dynamic**: a fresh volume per process, removed after the run. As root it is a tmpfs
mount limited to the volume size (a real limit: the kernel refuses the byte past it);
otherwise the bytes written are counted and the download stops at the limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.domain.ids import TEAM_ID
from datakeep.errors import AlreadyExists, InUse, InvalidInput, NotFound
from datakeep.experiments.archives import is_archive
from datakeep.experiments.budget import ByteBudget
from datakeep.experiments.etag import normalize_etag
from datakeep.experiments.fetch import FetchResult, RemoteDataset, fetch, resolve
from datakeep.experiments.options import DatasetSpec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from datakeep.storage.transfer import Progress

_UNSAFE = re.compile(r"[/\x00]")
_RECORD_SUFFIX = ".datakeep.json"


def shared_dir_name(name: str, etag: str | None, version_id: str | None) -> str:
    """``NAME[-ETAG][-VERSIONID]``: the parts the user pinned, in Gradient's order."""
    parts = [name]
    if etag:
        parts.append(normalize_etag(etag))
    if version_id:
        parts.append(version_id)
    return _UNSAFE.sub("_", "-".join(parts))


def _now() -> datetime:
    return datetime.now(UTC)


def team_storage(shared_storage: Path, team_id: str) -> Path:
    """A team's own shared storage: ``shared_storage`` itself for the embedded local team
    (its paths never change), ``<shared_storage>/teams/<team ID>`` for a server's teams.

    Each team's directory is separate so that listing and cleaning one team's datasets cannot
    reach another's, and two teams using the same ``--datasetName`` get two copies.
    """
    if team_id == LOCAL_TEAM_ID:
        return shared_storage
    if not TEAM_ID.match(team_id):
        raise InvalidInput(f"Invalid team ID {team_id!r}")
    return shared_storage / "teams" / team_id


@dataclass(frozen=True)
class SharedRecord:
    """The JSON kept beside each shared copy. No credentials, ever: only where it came from."""

    name: str
    directory: str
    uri: str
    endpoint: str | None
    kind: str
    etag: str | None  # pinned by the user (part of the directory name)
    version_id: str | None  # pinned by the user (part of the directory name)
    seen_etag: str | None  # what the store reported at download
    seen_version_id: str | None
    fingerprint: str  # changes when the object or any object of the folder changes
    size: int
    created: str
    last_used: str

    @classmethod
    def load(cls, path: Path) -> SharedRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        os.replace(tmp, path)

    @property
    def last_used_at(self) -> datetime:
        return datetime.fromisoformat(self.last_used)


@dataclass(frozen=True)
class SharedEntry:
    """One row of ``experiments datasets list``."""

    directory: str
    path: Path
    record: SharedRecord | None
    size: int
    last_used: datetime
    in_use: bool

    @property
    def name(self) -> str:
        return self.record.name if self.record else self.directory

    @property
    def uri(self) -> str | None:
        return self.record.uri if self.record else None


@dataclass(frozen=True)
class CleanPlan:
    """What ``clean`` removes (or, with ``--dry-run``, would remove) and what it must keep."""

    remove: list[SharedEntry] = field(default_factory=list)
    in_use: list[SharedEntry] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(e.size for e in self.remove)


@dataclass(frozen=True)
class Placed:
    """A dataset ready to mount: where it is, and what the run record keeps about it."""

    spec: DatasetSpec
    path: Path
    volume: str  # "shared" or "dynamic"
    reused: bool
    uri: str | None
    etag: str | None
    version_id: str | None
    size: int
    warnings: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "uri": self.uri,
            "id": self.spec.id,
            "etag": self.etag,
            "versionId": self.version_id,
            "size": self.size,
            "volumeKind": self.volume,
            "path": str(self.path),
            "mountPath": f"/data/{self.spec.name}",
            "reused": self.reused,
        }


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                total += st.st_size
    return total


class SharedStore:
    """The ``data/`` directory of shared storage."""

    def __init__(self, shared_storage: Path) -> None:
        self.root = shared_storage / "data"

    def path(self, directory: str) -> Path:
        return self.root / directory

    def _record_path(self, directory: str) -> Path:
        return self.root / f".{directory}{_RECORD_SUFFIX}"

    def _lock_path(self, directory: str) -> Path:
        return self.root / f".{directory}.lock"

    def has_complete(self, spec: DatasetSpec) -> bool:
        """Whether the copy ``spec`` names is there with its record (only then is it reused)."""
        directory = shared_dir_name(spec.name, spec.etag, spec.version_id)
        return self.path(directory).is_dir() and self._record_path(directory).exists()

    def _open_lock(self, directory: str) -> IO[bytes]:
        self.root.mkdir(parents=True, exist_ok=True)
        return self._lock_path(directory).open("a+b")

    @contextlib.contextmanager
    def use(
        self,
        spec: DatasetSpec,
        *,
        client: S3Client,
        refresh: bool = False,
        progress: Progress | None = None,
        workers: int = 8,
        on_warning: Callable[[str], None] | None = None,
        remote: RemoteDataset | None = None,
    ) -> Iterator[Placed]:
        """Make the shared copy of ``spec`` exist and keep it from being cleaned while inside.

        A copy whose name pins an ETag or VersionId is content-addressed and reused without
        asking the store. Otherwise the store is asked for the current ETag (or folder
        listing): a change is a warning, or with ``refresh`` a new download.
        """
        warn = on_warning or (lambda _m: None)
        directory = shared_dir_name(spec.name, spec.etag, spec.version_id)
        dest = self.path(directory)
        lock = self._open_lock(directory)
        try:
            fcntl.flock(lock, fcntl.LOCK_SH)
            record = SharedRecord.load(self._record_path(directory))
            complete = dest.is_dir() and record is not None
            pinned = bool(spec.etag or spec.version_id)
            reused = False
            result: FetchResult | None = None
            if complete and not pinned:
                assert record is not None
                moved = not _same_source(record, spec)
                if moved and not refresh:
                    # Gradient's names carry no source: the same name from another bucket or
                    # key must not silently mount the data that happens to be there.
                    raise AlreadyExists(
                        f"Dataset {spec.name!r}: shared copy {directory!r} holds {record.uri}, not {spec.uri}",
                        hint="Give this dataset another --datasetName, or pass --datasetRefresh to replace that copy",
                    )
                remote = remote or resolve(client, spec)
                if moved or remote.fingerprint != record.fingerprint:
                    change = (
                        f"ETag {record.seen_etag} -> {remote.etag}"
                        if remote.kind == "object"
                        else "folder listing"
                    )
                    if not refresh:
                        warn(
                            f"Dataset {spec.name!r}: {spec.uri} changed since its shared copy was downloaded "
                            f"({change}); using the old copy. Pass --datasetRefresh to fetch it again, "
                            "or pin --datasetEtag to be sure which data a run uses"
                        )
                        reused = True
                    else:
                        result = self._replace(lock, spec, remote, dest, client, progress, workers, warn)
                else:
                    reused = True
            elif complete:
                reused = True
            else:
                result = self._download(spec, dest, client, progress, workers, warn, remote)
                if result is None:  # another run finished the same download while we waited
                    record = SharedRecord.load(self._record_path(directory))
                    reused = record is not None
                    if record is None:
                        raise NotFound(f"Dataset {spec.name!r}: shared copy {dest} vanished while waiting")
            if reused:
                assert record is not None
                record = replace(record, last_used=_now().isoformat())
            else:
                assert result is not None
                record = self._new_record(spec, result)
            record.save(self._record_path(directory))
            if spec.etag is None and not pinned and not reused and result and result.kind == "object":
                warn(
                    f"Dataset {spec.name!r} is on shared storage without --datasetEtag; a later run may "
                    "reuse it after the object changes (you will be warned). Pinning the ETag is strongly recommended"
                )
            yield Placed(
                spec=spec,
                path=dest,
                volume="shared",
                reused=reused,
                uri=spec.uri,
                etag=record.seen_etag,
                version_id=record.seen_version_id,
                size=record.size,
                warnings=result.warnings if result else (),
            )
        finally:
            lock.close()  # releases the flock

    def _download(
        self,
        spec: DatasetSpec,
        dest: Path,
        client: S3Client,
        progress: Progress | None,
        workers: int,
        warn: Callable[[str], None],
        remote: RemoteDataset | None,
    ) -> FetchResult | None:
        # Two runs starting together download once: the second waits here, then finds the copy.
        with self._open_lock(dest.name + ".download") as dl:
            fcntl.flock(dl, fcntl.LOCK_EX)
            if dest.is_dir() and SharedRecord.load(self._record_path(dest.name)) is not None:
                return None
            remote = remote or resolve(client, spec)
            if dest.is_dir():
                shutil.rmtree(dest)  # a copy without its record: left by a crash between the two
            return self._fetch(remote, dest, client, progress, workers, warn)

    def _fetch(
        self,
        remote: RemoteDataset,
        dest: Path,
        client: S3Client,
        progress: Progress | None,
        workers: int,
        warn: Callable[[str], None],
    ) -> FetchResult:
        """Shared storage has no size of its own; the free disk is the limit a zip bomb meets."""
        budget = ByteBudget(_free_space(self.root), label=f"shared storage ({self.root})")
        return fetch(
            remote, dest, client=client, budget=budget, progress=progress, workers=workers, on_warning=warn
        )

    def _replace(
        self,
        lock: IO[bytes],
        spec: DatasetSpec,
        remote: RemoteDataset,
        dest: Path,
        client: S3Client,
        progress: Progress | None,
        workers: int,
        warn: Callable[[str], None],
    ) -> FetchResult:
        """``--datasetRefresh``: swap in a new copy, but never under a running experiment."""
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InUse(
                f"Dataset {spec.name!r}: cannot refresh {dest.name}: a running experiment uses it",
                hint="Wait for it to finish, or run without --datasetRefresh",
            ) from None
        try:
            fresh = dest.with_name(f".{dest.name}.refresh")
            shutil.rmtree(fresh, ignore_errors=True)
            result = self._fetch(remote, fresh, client, progress, workers, warn)
            old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(dest, old)
            os.replace(fresh, dest)
            shutil.rmtree(old, ignore_errors=True)
            return replace(result, path=dest)
        finally:
            fcntl.flock(lock, fcntl.LOCK_SH)

    @staticmethod
    def _new_record(spec: DatasetSpec, result: FetchResult) -> SharedRecord:
        now = _now().isoformat()
        return SharedRecord(
            name=spec.name,
            directory=result.path.name,
            uri=result.uri,
            endpoint=spec.aws_endpoint,
            kind=result.kind,
            etag=spec.etag,
            version_id=spec.version_id,
            seen_etag=result.etag,
            seen_version_id=result.version_id,
            fingerprint=result.fingerprint,
            size=result.size,
            created=now,
            last_used=now,
        )

    # LISTING AND CLEANING

    def _is_in_use(self, directory: str) -> bool:
        path = self._lock_path(directory)
        if not path.exists():
            return False
        with path.open("a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(lock, fcntl.LOCK_UN)
            return False

    def entries(self) -> list[SharedEntry]:
        """Every dataset directory.

        Hidden directories are downloads, refreshes or removals in progress, unless a record
        says otherwise: a dataset may be named ``.cache`` and must still be listed and cleaned.
        """
        if not self.root.is_dir():
            return []
        found: list[SharedEntry] = []
        for path in sorted(self.root.iterdir()):
            if not path.is_dir():
                continue
            record = SharedRecord.load(self._record_path(path.name))
            if path.name.startswith(".") and record is None:
                continue
            last = record.last_used_at if record else datetime.fromtimestamp(path.stat().st_mtime, UTC)
            found.append(
                SharedEntry(
                    directory=path.name,
                    path=path,
                    record=record,
                    size=record.size if record else _dir_size(path),
                    last_used=last,
                    in_use=self._is_in_use(path.name),
                )
            )
        return found

    def plan_clean(self, *, name: str | None = None, older_than: timedelta | None = None) -> CleanPlan:
        entries = self.entries()
        if name is not None:
            entries = [e for e in entries if name in (e.name, e.directory)]
            if not entries:
                raise NotFound(
                    f"No shared dataset named {name!r}", hint="See: datakeep experiments datasets list"
                )
        if older_than is not None:
            cutoff = _now() - older_than
            entries = [e for e in entries if e.last_used < cutoff]
        return CleanPlan(remove=[e for e in entries if not e.in_use], in_use=[e for e in entries if e.in_use])

    def clean(self, plan: CleanPlan) -> CleanPlan:
        """Remove what the plan lists, re-checking each under an exclusive lock; returns what went."""
        removed: list[SharedEntry] = []
        busy = list(plan.in_use)
        for entry in plan.remove:
            with self._open_lock(entry.directory) as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    busy.append(entry)  # a run started since the plan was made
                    continue
                trash = self.root / f".{entry.directory}.removing-{uuid.uuid4().hex[:8]}"
                with contextlib.suppress(FileNotFoundError):
                    os.replace(entry.path, trash)
                self._record_path(entry.directory).unlink(missing_ok=True)
                shutil.rmtree(trash, ignore_errors=True)
                removed.append(entry)
            # The lock file stays: deleting it would let a run waiting on the old inode and a
            # new run on a fresh file both believe they hold the only lock.
        return CleanPlan(remove=removed, in_use=busy)


def _same_source(record: SharedRecord, spec: DatasetSpec) -> bool:
    """Whether a copy came from the URI and endpoint ``spec`` names (a trailing slash aside)."""

    def key(uri: str | None, endpoint: str | None) -> tuple[str, str]:
        return (uri or "").rstrip("/"), (endpoint or "").rstrip("/")

    return key(record.uri, record.endpoint) == key(spec.uri, spec.aws_endpoint)


def _free_space(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free


def parse_age(text: str) -> timedelta:
    """``--older-than``: ``30d``, ``12h``, ``90m``, ``2w`` (a bare number is days)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not match:
        raise InvalidInput(f"Invalid age {text!r}", hint="Use e.g. 30d, 12h, 90m or 2w")
    number, unit = int(match.group(1)), match.group(2) or "d"
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    return timedelta(seconds=number * seconds)


# DYNAMIC VOLUMES


class DynamicVolume:
    """One process's private volume for one dataset, limited to ``size`` bytes of data.

    ``room`` is what the kernel limit allows beyond the data: an archive being expanded and
    the per-file rounding of tmpfs. The data itself is held to ``size`` by the byte count,
    so the limit a user asked for is the one they get.
    """

    def __init__(self, path: Path, size: int, *, label: str, room: int = 0) -> None:
        self.path = path
        self.size = size
        self.label = label
        self.room = room
        self.mounted = False
        self.note: str | None = None

    @property
    def data(self) -> Path:
        return self.path / "data"

    def budget(self) -> ByteBudget:
        return ByteBudget(self.size, label=self.label)

    def __enter__(self) -> DynamicVolume:
        self.path.mkdir(parents=True, exist_ok=False)
        self.mounted, self.note = _mount_tmpfs(self.path, self.size + self.room)
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        if self.mounted:
            _unmount(self.path)
            self.mounted = False
        shutil.rmtree(self.path, ignore_errors=True)


def _unmount(path: Path) -> None:
    done = subprocess.run(["umount", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        # Something still holds it open: detach now, the kernel frees it when released.
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _mount_points_under(root: Path) -> list[Path]:
    """Mount points at or below ``root``, deepest first (``/proc/self/mounts`` escapes spaces as \\040)."""
    prefix = os.path.realpath(root)
    found: list[Path] = []
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        if point == prefix or point.startswith(prefix + os.sep):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_volumes(root: Path) -> None:
    """Unmount and delete every dynamic volume under ``root``: what a killed run left behind."""
    for point in _mount_points_under(root):
        _unmount(point)
    shutil.rmtree(root, ignore_errors=True)


def _mount_tmpfs(path: Path, size: int) -> tuple[bool, str | None]:
    """A size-limited tmpfs at ``path`` as root; else the reason the byte count is the limit."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False, "not root: the dynamic volume's size is enforced by counting bytes"
    pages = max(1, -(-size // 4096))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={pages * 4096},mode=0755", "datakeep-dynamic", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        why = done.stderr.strip() or f"mount exit status {done.returncode}"
        return False, f"cannot mount a tmpfs ({why}): the size is enforced by counting bytes"
    return True, None


def dynamic_room(remote: RemoteDataset) -> int:
    """Kernel-limit headroom over the data size: the archive while it expands, plus page rounding."""
    archive = remote.size if _is_archive_object(remote) else 0
    return archive + 4096 * (len(remote.objects) + 256) + 2**20


def _is_archive_object(remote: RemoteDataset) -> bool:
    """An archive is judged by what it expands to, not by its own size."""
    return remote.kind == "object" and is_archive(remote.objects[0].key)


@contextlib.contextmanager
def dynamic_dataset(
    spec: DatasetSpec,
    remote: RemoteDataset,
    path: Path,
    *,
    client: S3Client,
    progress: Progress | None = None,
    workers: int = 8,
    on_warning: Callable[[str], None] | None = None,
) -> Iterator[Placed]:
    """Download ``remote`` into a fresh dynamic volume at ``path``; remove it all on exit."""
    label = f"the dynamic volume of dataset {spec.name!r}"
    volume = DynamicVolume(path, spec.dynamic_size, label=label, room=dynamic_room(remote))
    with volume:
        budget = volume.budget()
        # Refuse early what cannot fit, before a byte is fetched (archives are judged as they expand).
        if not _is_archive_object(remote):
            budget.check_announced(remote.size, what=f"Dataset {spec.name!r} ({spec.uri})")
        if volume.note and on_warning:
            on_warning(f"Dataset {spec.name!r}: {volume.note}")
        result = fetch(
            remote,
            volume.data,
            client=client,
            budget=budget,
            progress=progress,
            workers=workers,
            on_warning=on_warning,
        )
        yield Placed(
            spec=spec,
            path=volume.data,
            volume="dynamic",
            reused=False,
            uri=result.uri,
            etag=result.etag,
            version_id=result.version_id,
            size=result.size,
            warnings=result.warnings,
        )
