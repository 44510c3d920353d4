"""Version content on one storage provider: snapshot a folder, list, get, remove, diff.

How a snapshot stays cheap (see docs/performance.md for the measurements behind each choice):

- every file is known by its BLAKE3 digest; the ``blobs`` table says where each digest already
  lives on the provider, so content already stored (by any version of any dataset on the same
  provider) is never sent again, and a rerun after an interruption skips what was stored;
- the stat cache skips reading files whose inode, size and times did not change, and with one
  source folder a directory whose files all match it reuses its node from the parent version
  (``_TreeWalk``);
- files under ``PACK_THRESHOLD`` are concatenated into packs of about ``PACK_TARGET`` bytes, one
  request per pack instead of one per file; larger files are stored whole (multipart on S3);
- the manifest is a tree of content-addressed nodes, so only the nodes on the paths to changed
  files are new, in the catalog and on the provider.

Ordering makes interruption safe: content first, then the tree nodes, then the catalog rows that
point at them; the caller moves a version's root only after :meth:`ContentStore.snapshot` returns.
So a committed version never names bytes that are not stored.

Symbolic links in a source tree are followed when they point inside the source (a file link
stores the target's bytes at the link's path; a directory link is walked) and refused when they
point outside it, dangle, or loop. Empty directories are not kept (a version holds files, as an S3
prefix does). Sockets, FIFOs and devices are refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat as stat_module
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import blake3
from sqlalchemy import select

from datakeep.catalog import schema as t
from datakeep.catalog.store import Catalog
from datakeep.config import Settings
from datakeep.domain.models import Change, FileEntry, Version
from datakeep.errors import (
    Conflict,
    DatakeepError,
    FileNotFoundInVersion,
    IntegrityError,
    InvalidInput,
    InvalidPath,
    StorageError,
)
from datakeep.providers.base import Provider
from datakeep.storage import manifest, objects
from datakeep.storage.hashing import EMPTY_DIGEST, digest_bytes, digest_file
from datakeep.storage.index import Index, Location
from datakeep.storage.manifest import DIR, FILE, Entry, Node
from datakeep.storage.statcache import RACY_NS, Directory, NodeRecord, StatCache, StatKey, trusted_digest
from datakeep.storage.transfer import Progress, parallel, return_buffers_to_the_os

#: Files smaller than this go into packs.
PACK_THRESHOLD = 1024 * 1024
#: A pack is flushed once it holds this many bytes: 8 MiB measured faster than 4 or 32 against S3
#: (enough packs to keep several requests in flight, few enough requests; docs/performance.md).
PACK_TARGET = 8 * 1024 * 1024
#: Packs being uploaded at once (bounds memory to about 2 * PACKS_IN_FLIGHT * PACK_TARGET).
PACKS_IN_FLIGHT = 6
#: Hashed files are checked against the index in groups of about this many bytes or files.
CHUNK_BYTES = 16 * 1024 * 1024
CHUNK_FILES = 4096
#: Large objects uploaded or downloaded at once (each one with several parts in flight).
WHOLE_DOWNLOADS = 2
#: Files hashed per task given to a worker thread (a large file is a batch of its own, in effect).
HASH_BATCH_FILES = 64
HASH_BATCH_BYTES = 4 * 1024 * 1024
#: Files written per batch by ``get`` (what memory holds of a version being downloaded).
GET_BATCH_FILES = 20_000
#: Ranged reads of a pack are merged when the gap between them is at most this (remote providers).
COALESCE_GAP = 1024 * 1024
#: A coalesced read stays under this, so that several reads (threads) share a pack.
MAX_RANGE = 16 * 1024 * 1024
#: Decoded manifest entries kept in memory (about 30 MB); past it the cache starts over.
_TREE_CACHE_ENTRIES = 100_000
#: Manifest nodes loaded by one prefetch query at most.
_PREFETCH_MAX = 256


@dataclass(frozen=True)
class TreeSummary:
    root: str | None  # None = empty tree
    file_count: int
    size: int


@dataclass(frozen=True)
class _DirDone:
    """Yielded by the walk once every file under ``parts`` has been yielded."""

    parts: list[str]


@dataclass
class SourceFile:
    """A regular file found in a source folder, as the snapshot and the remote client see it."""

    path: str  # where to read it (os path)
    parts: list[str]  # where it goes in the version
    key: StatKey
    digest: str | None = None
    hashed_ns: int = 0

    @property
    def size(self) -> int:
        return self.key.size

    @property
    def dest(self) -> str:
        return "/".join(self.parts)


def _check_parts(parts: list[str], original: str) -> list[str]:
    for part in parts:
        if part in (".", "..") or "\x00" in part or "\\" in part and os.sep == "\\":
            raise InvalidPath(
                f"Invalid path in a dataset version: {original!r}",
                hint="Use a relative path without '.' or '..' components",
            )
    return parts


def _storage_error(exc: OSError, provider: Provider, what: str) -> StorageError:
    if isinstance(exc, DatakeepError):
        return exc  # type: ignore[return-value]
    return StorageError(
        f"Storage provider {provider.describe()} failed while {what}: {exc}",
        hint="Check the storage provider (datakeep storageProviders details) and run the command again; "
        "work already done is kept",
    )


def scan_sources(sources: Iterable[Path | str], target: str = "/") -> Iterator[SourceFile]:
    """Every regular file the sources hold, with its place in the version, in walk order.

    The one definition of what a ``--source-path`` means (Gradient's mapping, symlink rules,
    refused file types), shared by the embedded snapshot and the remote client so both modes
    store the same files under the same names. A path given by two sources is yielded twice: the
    later one wins, as a later upload would.
    """
    target_parts = _check_parts(manifest.split(target), target)
    for source in sources:
        for item in _scan_source(source, target_parts):
            if isinstance(item, SourceFile):
                yield item


def _scan_source(source: Path | str, target_parts: list[str]) -> Iterator[SourceFile | _DirDone]:
    resolved = _resolve_source(source, target_parts)
    if isinstance(resolved, SourceFile):
        yield resolved
        return
    real, base = resolved
    yield from _walk_dir(real, real, base, frozenset({real}))


def _resolve_source(source: Path | str, target_parts: list[str]) -> SourceFile | tuple[str, list[str]]:
    """A file source as its one file, or a folder source as (its real path, its place in the version)."""
    raw = os.fspath(source)
    if not os.path.lexists(raw):
        raise InvalidInput(f"Source path not found: {raw}", hint="Check the --source-path value")
    real = os.path.realpath(raw)
    if not os.path.exists(real):
        raise InvalidPath(f"Source path is a broken symbolic link: {raw}", hint="Fix or remove the link")
    name = os.path.basename(os.path.normpath(raw))
    st = os.stat(real)
    if stat_module.S_ISREG(st.st_mode):
        if not name or name in (".", ".."):
            name = os.path.basename(real)
        return SourceFile(os.path.abspath(raw), [*target_parts, name], StatKey.of(st))
    if not stat_module.S_ISDIR(st.st_mode):
        raise InvalidInput(f"Source path is not a file or a directory: {raw}", hint="Give a file or a folder")
    contents = raw.endswith(("/", os.sep)) or name in ("", ".", "..")
    return real, list(target_parts) if contents else [*target_parts, name]


def _follow_link(entry: os.DirEntry[str], top: str, ancestors: frozenset[str]) -> tuple[str, os.stat_result]:
    """Where a symbolic link in a source folder leads, and its stat, if the rules allow it.

    Allowed: a link to a regular file or a directory inside ``top`` that is not an ancestor (a
    loop). Refused with an error naming the link: outside, broken, a loop, or a special file.
    """
    target = os.path.realpath(entry.path)
    if target != top and not target.startswith(top.rstrip(os.sep) + os.sep):
        raise InvalidPath(
            f"Symbolic link {entry.path} points outside the source folder ({target})",
            hint="Copy what it points to into the folder, or remove the link",
        )
    try:
        st = os.stat(target)
    except FileNotFoundError:
        raise InvalidPath(f"Symbolic link {entry.path} is broken", hint="Fix or remove the link") from None
    if stat_module.S_ISDIR(st.st_mode):
        if target in ancestors or any(a.startswith(target + os.sep) for a in ancestors):
            raise InvalidPath(
                f"Symbolic link {entry.path} makes a loop", hint="Remove the link or point it elsewhere"
            )
    elif not stat_module.S_ISREG(st.st_mode):
        raise InvalidInput(f"Not a regular file: {entry.path}", hint="Remove it from the source folder")
    return target, st


def _not_regular(path: str) -> InvalidInput:
    return InvalidInput(
        f"Not a regular file: {path} (a socket, FIFO or device)", hint="Remove it from the source folder"
    )


def _changed_while_read(path: str) -> InvalidInput:
    return InvalidInput(
        f"{path} changed while it was being read", hint="Run the command again once it stops changing"
    )


def _scandir(directory: str) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(directory))
    except PermissionError as exc:
        raise InvalidInput(
            f"Cannot read directory {directory}: {exc.strerror}", hint="Check its permissions"
        ) from exc


def _walk_dir(
    directory: str, top: str, parts: list[str], ancestors: frozenset[str]
) -> Iterator[SourceFile | _DirDone]:
    for entry in _scandir(directory):
        child = [*parts, entry.name]
        if entry.is_symlink():
            target, st = _follow_link(entry, top, ancestors)
            if stat_module.S_ISDIR(st.st_mode):
                yield from _walk_dir(target, top, child, ancestors | {target})
            else:
                yield SourceFile(entry.path, child, StatKey.of(st))
            continue
        st = entry.stat(follow_symlinks=False)
        if stat_module.S_ISDIR(st.st_mode):
            yield from _walk_dir(entry.path, top, child, ancestors | {entry.path})
        elif stat_module.S_ISREG(st.st_mode):
            yield SourceFile(entry.path, child, StatKey.of(st))
        else:
            raise _not_regular(entry.path)
    yield _DirDone(parts)


@dataclass
class _Packer:
    """Collects small blobs into packs and uploads full ones in the background, bounded."""

    store: ContentStore
    pool: ThreadPoolExecutor
    progress: Progress
    #: Digests queued or being stored and not yet in the index: a second copy must not be queued.
    pending: set[str] = field(default_factory=set)
    items: list[tuple[str, bytes]] = field(default_factory=list)
    size: int = 0
    futures: list[Future[None]] = field(default_factory=list)
    slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(PACKS_IN_FLIGHT)
    )

    def add(self, digest: str, data: bytes) -> None:
        self.items.append((digest, data))
        self.size += len(data)
        if self.size >= PACK_TARGET:
            self.flush()

    def flush(self) -> None:
        if not self.items:
            return
        items, self.items, self.size = self.items, [], 0
        self.slots.acquire()
        self._raise_failed()
        self.futures.append(self.pool.submit(self._upload, items))

    def _upload(self, items: list[tuple[str, bytes]]) -> None:
        try:
            key, body, entries = objects.build_pack(items)
            self.store._call(lambda: self.store.provider.write(key, body), "storing a pack")
            self.store.index.add_blobs(Location(e.digest, key, e.offset, e.size) for e in entries)
            self.pending.difference_update(e.digest for e in entries)
            self.progress.advance(len(items), sum(e.size for e in entries))
        finally:
            self.slots.release()

    def _raise_failed(self) -> None:
        for fut in self.futures:
            if fut.done() and fut.exception() is not None:
                fut.result()

    def wait(self) -> None:
        self.flush()
        errors = []
        for fut in self.futures:
            try:
                fut.result()
            except BaseException as exc:  # noqa: BLE001 - every failure is reported, first one raised
                errors.append(exc)
        self.futures.clear()
        if errors:
            raise errors[0]


class _Hints:
    """The previous version's entry at a path, one directory at a time (walk order keeps it cheap).

    A file whose digest equals the previous version's at the same path is stored already: no index
    look-up needed. That is most files of an incremental create.
    """

    def __init__(self, store: ContentStore, roots: list[str]) -> None:
        self.store = store
        self.roots = roots
        self._dirs: dict[tuple[str, ...], dict[str, Entry]] = {}

    def _listing(self, root: str, directory: tuple[str, ...]) -> dict[str, Entry] | None:
        digest = root
        for name in directory:
            entries = self.store.load_node(digest)
            # The walk will want the sibling directories next: one query for all of them.
            self.store._prefetch(e.digest for e in entries if e.is_dir)
            match = manifest.lookup(entries, name)
            if match is None or not match.is_dir:
                return None
            digest = match.digest
        return {e.name: e for e in self.store.load_node(digest)}

    def directory(self, parts: list[str]) -> dict[str, Entry]:
        """The earlier versions' entries in the directory at ``parts`` (the first root's win)."""
        key = tuple(parts)
        found = self._dirs.get(key)
        if found is not None:
            return found
        found = {}
        for root in reversed(self.roots):
            listing = self._listing(root, key)
            if listing is not None:
                found.update(listing)
        if len(self._dirs) >= 64:  # the walk moves on: a few recent directories are enough
            self._dirs.clear()
        self._dirs[key] = found
        return found

    def node_at(self, parts: list[str]) -> set[str]:
        """The digests of the directory nodes the earlier versions hold at ``parts``.

        By binary search from each root, without decoding the directory itself: an unchanged
        directory is recognised from its parent's node alone.
        """
        found: set[str] = set()
        for root in self.roots:
            entry = manifest.find(self.store.load_node, root, parts)
            if entry is not None and entry.is_dir:
                found.add(entry.digest)
        return found

    def stored(self, parts: list[str], digest: str) -> bool:
        if not self.roots:
            return False
        e = self.directory(parts[:-1]).get(parts[-1])
        return e is not None and e.digest == digest and not e.is_dir


class _Pipeline:
    """Hash, deduplicate and store batches of files, with bounded memory and a progress bar."""

    def __init__(self, store: ContentStore, cache: StatCache, hints: _Hints) -> None:
        self.store = store
        self.cache = cache
        self.hints = hints
        self.progress = Progress("Storing files", enabled=store.progress)
        self.pool = ThreadPoolExecutor(max_workers=max(2, store.workers // 2), thread_name_prefix="dk-upload")
        self.packer = _Packer(store, self.pool, self.progress)
        self.large: list[Future[None]] = []
        #: Check the earlier versions' entries before the index. The one-folder walk turns it off:
        #: it sends only files whose content changed (rarely in the parent), and reading the
        #: parent's node for each of their directories cost more than one index query per batch.
        self.use_hints = True

    def __enter__(self) -> _Pipeline:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for fut in self.large:
                with contextlib.suppress(BaseException):
                    fut.result()
            self.pool.shutdown(wait=True)
        finally:
            self.progress.__exit__(None, None, None)

    def run(self, batch: list[SourceFile], *, use_cache: bool = True) -> list[SourceFile]:
        """Give every file of the batch its digest and make sure its content is (being) stored.

        A file whose digest is set already (the caller read it from the stat cache) is not read
        unless its content must be stored. With ``use_cache`` the stat cache is consulted and
        updated here, file by file; without, the caller does it (a directory at a time).
        """
        if not batch:
            return batch
        self.progress.expect(len(batch), sum(f.size for f in batch))
        cached = self.cache.lookup([os.fsencode(f.path) for f in batch]) if use_cache else {}
        to_hash: list[SourceFile] = []
        ready: list[tuple[SourceFile, bytes | None]] = []
        for f in batch:
            digest = f.digest or trusted_digest(cached.get(os.fsencode(f.path)), f.key)
            if digest is None:
                to_hash.append(f)
            else:
                f.digest = digest
                ready.append((f, None))
        try:
            self._store(ready)
            # Small files go to the workers in groups: a future per file cost as much as its read.
            groups: list[list[SourceFile]] = []
            group: list[SourceFile] = []
            group_bytes = 0
            for f in to_hash:
                group.append(f)
                group_bytes += f.size
                if len(group) >= HASH_BATCH_FILES or group_bytes >= HASH_BATCH_BYTES:
                    groups.append(group)
                    group, group_bytes = [], 0
            if group:
                groups.append(group)
            chunk: list[tuple[SourceFile, bytes | None]] = []
            chunk_bytes = 0
            for hashed in parallel(lambda g: [self.store._hash(f) for f in g], groups, self.store.workers):
                for f, data in hashed:
                    chunk.append((f, data))
                    chunk_bytes += len(data) if data else 0
                    if chunk_bytes >= CHUNK_BYTES:
                        self._store(chunk)
                        chunk, chunk_bytes = [], 0
            self._store(chunk)
        finally:
            # Digests stay true whatever fails after hashing: a rerun need not read these files again.
            if use_cache:
                self.cache.store(
                    [(os.fsencode(f.path), f.key, f.hashed_ns, f.digest) for f in to_hash if f.digest]
                )
        return batch

    def _store(self, chunk: list[tuple[SourceFile, bytes | None]]) -> None:
        if not chunk:
            return
        pending = self.packer.pending
        todo = [
            (f, data)
            for f, data in chunk
            if f.digest != EMPTY_DIGEST
            and f.digest not in pending
            and not (self.use_hints and self.hints.stored(f.parts, f.digest or ""))
        ]
        self.progress.advance(
            len(chunk) - len(todo), sum(f.size for f, _ in chunk) - sum(f.size for f, _ in todo)
        )
        known = self.store.index.locate(f.digest for f, _ in todo if f.digest)
        for f, data in todo:
            digest = f.digest
            assert digest is not None
            if digest in known or digest in pending:
                self.progress.advance(1, f.size)
                continue
            pending.add(digest)
            if f.size < PACK_THRESHOLD:
                if data is None:
                    data = self.store._read_checked(f)
                    if digest_bytes(data) != digest:
                        raise InvalidInput(
                            f"{f.path} changed since it was last read",
                            hint="Run the command again once it stops changing",
                        )
                self.packer.add(digest, data)
            else:
                self.large.append(self.pool.submit(self.store._store_large, f, digest, self.progress))

    def finish(self) -> None:
        self.packer.wait()
        for fut in self.large:
            fut.result()


_IFMT = 0o170000
_IFREG = stat_module.S_IFREG
_IFDIR = stat_module.S_IFDIR


@dataclass(eq=False)
class _Dir:
    """A source directory being snapshot: its node is sealed once its files all have digests."""

    path: str  # the directory read (os path)
    parts: list[str]  # where it goes in the version
    parent: _Dir | None
    cached: Directory  # what the stat cache held for its files
    node: NodeRecord | None  # and for the node built from them
    rows: Directory = field(default_factory=dict)  # what it will hold: every file, with its digest
    piped: set[str] = field(default_factory=set)  # files sent through the pipeline (stored by it)
    subdirs: list[Entry] = field(default_factory=list)


class _TreeWalk:
    """One source folder made into manifest nodes, the ``versions create`` case, built for speed.

    An incremental create of a mostly unchanged folder is dominated by per-file work that reads
    no content (docs/performance.md), so a file whose stat matches the stat cache (and is not
    racy) costs one ``stat``, a dict look-up and a tuple comparison: no ``SourceFile``, no trip
    through the pipeline, no per-file catalog query. The cache is read and written a directory at
    a time. New, changed and racy files go through the pipeline as in the general case.

    A directory whose files all match the cache exactly (same names; device, inode, size, mtime
    and ctime of each; none racy) and whose sub-directories sealed to the same entries as when
    its node was last built reuses that node's digest without rebuilding it, provided the earlier
    version (``hint_root``) holds that very node at the same path, which proves its content is on
    this provider. Otherwise the node is built, and files known only from the cache are checked
    against the earlier version's entries, then the index, before the node may name them.

    Each directory is sealed once the walk has left it and its files have digests, so memory
    holds the path being walked plus what awaits hashing, not the whole manifest.
    """

    #: Files held by finished directories waiting for a batch before they are sealed.
    HELD_FILES = 50_000

    def __init__(
        self,
        store: ContentStore,
        pipeline: _Pipeline,
        cache: StatCache,
        hints: _Hints,
        new_trees: dict[str, bytes],
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        pipeline.use_hints = False
        self.cache = cache
        self.hints = hints
        self.new_trees = new_trees
        self.tree_bytes = 0
        self.batch: list[tuple[_Dir, SourceFile]] = []
        self.done: list[_Dir] = []
        self.held = 0
        self.top: Entry | None = None
        #: Directories whose node was reused, and built (for tests and the benchmark).
        self.reused = 0
        self.built = 0

    def run(self, real: str, parts: list[str]) -> Entry | None:
        """Walk the folder at ``real`` (placed at ``parts``); its sealed entry, None if no file."""
        self._walk(real, real, self._dir(real, parts, None), frozenset({real}))
        self._flush()
        return self.top

    def _dir(self, path: str, parts: list[str], parent: _Dir | None) -> _Dir:
        files, node = self.cache.directory(os.fsencode(path))
        return _Dir(path, parts, parent, files, node)

    def _walk(self, directory: str, top: str, d: _Dir, ancestors: frozenset[str]) -> None:
        cached, rows, parts = d.cached, d.rows, d.parts
        racy = RACY_NS
        for entry in _scandir(directory):
            name = entry.name
            if entry.is_symlink():
                real, st = _follow_link(entry, top, ancestors)
                if stat_module.S_ISDIR(st.st_mode):
                    self._walk(real, top, self._dir(real, [*parts, name], d), ancestors | {real})
                    continue
            else:
                st = entry.stat(follow_symlinks=False)
                kind = st.st_mode & _IFMT  # inline S_ISREG/S_ISDIR: this loop runs once per file
                if kind != _IFREG:
                    if kind == _IFDIR:
                        path = entry.path
                        self._walk(path, top, self._dir(path, [*parts, name], d), ancestors | {path})
                        continue
                    raise _not_regular(entry.path)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            known = cached.get(name)
            if known is not None and known[0] == key and key[3] + racy <= known[1]:
                rows[name] = known
                continue
            d.piped.add(name)
            self.batch.append((d, SourceFile(entry.path, [*parts, name], StatKey(*key))))
            if len(self.batch) >= CHUNK_FILES:
                self._flush()
        self.done.append(d)
        self.held += len(rows)
        if self.held >= self.HELD_FILES or not self.batch:
            self._flush()

    def _flush(self) -> None:
        """Hash and store the batch, then seal every finished directory (children come first)."""
        if self.batch:
            self.pipeline.run([f for _, f in self.batch], use_cache=False)
            for d, f in self.batch:
                digest = f.digest
                assert digest is not None
                k = f.key
                d.rows[f.parts[-1]] = ((k.dev, k.ino, k.size, k.mtime_ns, k.ctime_ns), f.hashed_ns, digest)
            self.batch = []
        changed: list[tuple[bytes, Directory, NodeRecord | None]] = []
        for d in self.done:
            sealed, node = self._seal(d)
            if d.rows != d.cached or node != d.node:
                changed.append((os.fsencode(d.path), d.rows, node))
            if d.parent is None:
                self.top = sealed
            elif sealed is not None:
                d.parent.subdirs.append(sealed)
        self.cache.put_directories(changed)
        self.done = []
        self.held = 0
        if self.tree_bytes >= PACK_TARGET:
            self.store._store_trees(self.new_trees)
            self.new_trees.clear()
            self.tree_bytes = 0

    def _seal(self, d: _Dir) -> tuple[Entry | None, NodeRecord | None]:
        name = d.parts[-1] if d.parts else ""
        rows = d.rows
        subdirs = tuple(sorted((e.name, e.kind, e.digest, e.size, e.files) for e in d.subdirs))
        progress = self.pipeline.progress
        node = d.node
        if (
            node is not None
            and not d.piped
            and node[3] == subdirs
            and rows == d.cached
            and self._node_proven(d)
        ):
            self.reused += 1
            count = len(rows)
            size = sum(row[0][2] for row in rows.values())
            progress.expect(count, size)
            progress.advance(count, size)
            return Entry(name, DIR, node[0], node[1], node[2]), node
        if not rows and not subdirs:
            return None, None
        self.built += 1
        self._check_stored(d)
        entries: list[manifest.Row] = [(n, FILE, row[2], row[0][2], 1) for n, row in rows.items()]
        entries.extend(subdirs)
        data = manifest.encode(entries)
        digest = digest_bytes(data)
        self.new_trees[digest] = data
        self.tree_bytes += len(data)
        size = sum(e[3] for e in entries)
        files = sum(e[4] for e in entries)
        return Entry(name, DIR, digest, size, files), (digest, size, files, subdirs)

    def _node_proven(self, d: _Dir) -> bool:
        """Whether the directory's recorded node is the one an earlier version holds at its path,
        which proves that node's content is on this provider."""
        node = d.node
        return node is not None and bool(self.hints.roots) and node[0] in self.hints.node_at(d.parts)

    def _check_stored(self, d: _Dir) -> None:
        """Files known from the stat cache alone may name content this provider lacks (the cache
        is shared by every provider). A file is known to be stored when its cache entry is the one
        the directory's recorded node was built from and the earlier version holds that node at
        this path, or when the earlier version holds the same digest at the same path; the others
        go through the pipeline, which checks the index and stores what is missing."""
        roots = self.hints.roots
        proven = self._node_proven(d)
        cached = d.cached
        earlier: dict[str, Entry] | None = None
        unverified: list[SourceFile] = []
        quick = quick_bytes = 0
        for name, row in d.rows.items():
            if name in d.piped:
                continue
            key, hashed_ns, digest = row
            if digest == EMPTY_DIGEST or (proven and cached.get(name) is row):
                quick += 1
                quick_bytes += key[2]
                continue
            if earlier is None:
                earlier = self.hints.directory(d.parts) if roots else {}
            e = earlier.get(name)
            if e is not None and e[2] == digest and e[1] == FILE:
                quick += 1
                quick_bytes += key[2]
                continue
            path = f"{d.path}{os.sep}{name}"
            unverified.append(SourceFile(path, [*d.parts, name], StatKey(*key), digest, hashed_ns))
        progress = self.pipeline.progress
        progress.expect(quick, quick_bytes)
        progress.advance(quick, quick_bytes)
        self.pipeline.run(unverified, use_cache=False)


class ContentStore:
    """Version content of the datasets kept on one storage provider."""

    def __init__(
        self,
        catalog: Catalog,
        provider: Provider,
        provider_id: str,
        settings: Settings,
        *,
        progress: bool | None = None,
    ) -> None:
        self.catalog = catalog
        self.provider = provider
        self.provider_id = provider_id
        self.settings = settings
        self.progress = progress
        self.index = Index(catalog, provider_id)
        self.workers = 16 if provider.remote else 4
        self._trees: dict[str, list[Entry]] = {}
        self._trees_entries = 0
        self._trees_lock = threading.Lock()
        self._whole_slots = threading.BoundedSemaphore(WHOLE_DOWNLOADS)
        return_buffers_to_the_os()

    # TREES

    def _call(self, fn: object, what: str) -> object:
        try:
            return fn()  # type: ignore[operator]
        except DatakeepError:
            raise
        except OSError as exc:
            raise _storage_error(exc, self.provider, what) from exc

    def load_node(self, digest: str) -> list[Entry]:
        """The entries of one manifest node (a directory), sorted by name; cached, read back from
        the provider if the catalog lost it. Treat the list as read-only: it is shared."""
        with self._trees_lock:
            cached = self._trees.get(digest)
        if cached is not None:
            return cached
        data = self.index.get_trees([digest]).get(digest)
        if data is None:
            data = self._tree_from_provider(digest)
        entries = manifest.decode(data)
        self._remember(digest, entries)
        return entries

    def _remember(self, digest: str, entries: list[Entry]) -> None:
        with self._trees_lock:
            if self._trees_entries + len(entries) > _TREE_CACHE_ENTRIES:
                self._trees.clear()
                self._trees_entries = 0
            self._trees[digest] = entries
            self._trees_entries += len(entries)

    def _prefetch(self, digests: Iterable[str]) -> None:
        """Load several manifest nodes in one catalog query (a query per node dominated walks)."""
        with self._trees_lock:
            missing = [d for d in dict.fromkeys(digests) if d not in self._trees][:_PREFETCH_MAX]
        if len(missing) < 2:
            return
        for digest, data in self.index.get_trees(missing).items():
            self._remember(digest, manifest.decode(data))

    def _tree_from_provider(self, digest: str) -> bytes:
        """A node missing from the catalog (say, after a partial restore) is read back from its pack."""
        loc = self.index.locate([digest]).get(digest)
        if loc is None:
            raise IntegrityError(
                f"Manifest node {digest} is missing from the catalog and the storage provider",
                hint="Run: datakeep admin fsck",
            )
        data = self._call(lambda: self.provider.read(loc.key, loc.offset, loc.size), "reading the manifest")
        assert isinstance(data, bytes)
        if digest_bytes(data) != digest:
            raise IntegrityError(
                f"Manifest node {digest} is corrupt on the storage provider", hint="Run: datakeep admin fsck"
            )
        self.index.add_trees({digest: data})
        return data

    def _store_trees(self, new_trees: dict[str, bytes]) -> None:
        """Write the nodes this provider does not hold yet: in tree packs, then in the catalog."""
        if not new_trees:
            return
        present = self.index.locate(new_trees)
        missing = [(d, data) for d, data in sorted(new_trees.items()) if d not in present]
        batch: list[tuple[str, bytes]] = []
        size = 0
        for item in missing:
            batch.append(item)
            size += len(item[1])
            if size >= PACK_TARGET:
                self._write_tree_pack(batch)
                batch, size = [], 0
        self._write_tree_pack(batch)
        self.index.add_trees(new_trees)

    def _write_tree_pack(self, items: list[tuple[str, bytes]]) -> None:
        if not items:
            return
        key, body, entries = objects.build_pack(items, objects.TREES)
        self._call(lambda: self.provider.write(key, body), "storing the manifest")
        self.index.add_trees(dict(items))
        self.index.add_blobs(Location(e.digest, key, e.offset, e.size) for e in entries)

    # SNAPSHOT

    def snapshot(
        self,
        sources: Sequence[Path | str],
        *,
        target: str = "/",
        base_root: str | None = None,
        hint_root: str | None = None,
    ) -> TreeSummary:
        """Store what ``sources`` hold and return ``base_root`` with them laid over it.

        Pass sources as the user typed them (``str``): ``d/`` with a trailing separator means the
        contents of ``d``, and ``pathlib.Path`` would drop that separator.

        ``hint_root`` is a committed version of a dataset on this provider (the parent, say): its
        content is known to be stored, so the digests it holds need no lookup in the index.
        """
        target_parts = _check_parts(manifest.split(target), target)
        root = Node.load(self.load_node, base_root)
        new_trees: dict[str, bytes] = {}
        hints = _Hints(self, [r for r in (hint_root, base_root) if r is not None])
        cache = StatCache(self.settings.home / "statcache.db")
        try:
            with _Pipeline(self, cache, hints) as pipeline:
                # Files flow through in batches, in walk order: memory holds one batch of files, not
                # the whole source. With one source over nothing, a directory's manifest node is also
                # sealed (and stored) as soon as the walk has left it and its files are stored, so
                # the manifest in memory is the path being walked, not the whole tree. With several
                # sources or a base version a directory may still receive files later: sealed at the end.
                early = len(sources) == 1 and base_root is None
                folder = _resolve_source(sources[0], target_parts) if early else None
                if isinstance(folder, tuple):
                    real, parts = folder
                    top = _TreeWalk(self, pipeline, cache, hints, new_trees).run(real, parts)
                    pipeline.finish()
                    if top is None:
                        return self.seal(root, new_trees)
                    if parts:
                        root.put_entry(parts, top)
                        return self.seal(root, new_trees)
                    self._store_trees(new_trees)  # the folder's node is the version's root
                    return TreeSummary(top.digest, top.files, top.size)
                for source in sources:
                    batch: list[SourceFile] = []
                    done: list[list[str]] = []
                    for item in _scan_source(source, target_parts):
                        if isinstance(item, _DirDone):
                            if early and item.parts:
                                done.append(item.parts)
                            continue
                        batch.append(item)
                        if len(batch) >= CHUNK_FILES:
                            self._put_batch(root, pipeline.run(batch))
                            self._seal_done(root, done, new_trees)
                            batch, done = [], []
                    self._put_batch(root, pipeline.run(batch))
                    self._seal_done(root, done, new_trees)
                pipeline.finish()
        finally:
            cache.close()
        return self.seal(root, new_trees)

    def _seal_done(self, root: Node, done: list[list[str]], new_trees: dict[str, bytes]) -> None:
        """Replace each finished directory's node by its sealed entry; store nodes once 8 MiB pile up."""
        for parts in done:
            parent: Node | None = root
            for name in parts[:-1]:
                child = parent.entries.get(name) if parent is not None else None
                parent = child if isinstance(child, Node) else None
            node = parent.entries.get(parts[-1]) if parent is not None else None
            if parent is None or not isinstance(node, Node):
                continue  # a directory without files: nothing was built for it
            sealed = node.seal(new_trees)
            if sealed is None:
                del parent.entries[parts[-1]]
            else:
                parent.entries[parts[-1]] = Entry(parts[-1], DIR, sealed.digest, sealed.size, sealed.files)
        if sum(len(data) for data in new_trees.values()) >= PACK_TARGET:
            self._store_trees(new_trees)
            new_trees.clear()

    def _put_batch(self, root: Node, batch: list[SourceFile]) -> None:
        for f in batch:
            assert f.digest is not None
            root.put(
                self.load_node, f.parts, f.digest, f.size
            )  # a later source wins, as a later upload would

    def seal(self, root: Node, new_trees: dict[str, bytes] | None = None) -> TreeSummary:
        """Store an edited tree (its new nodes, on the provider, then in the catalog) and sum it up.

        The summary's root may become a version's root only after this returns: nodes first, then
        the catalog row that names them. ``new_trees`` holds nodes sealed earlier and not stored yet.
        """
        new_trees = {} if new_trees is None else new_trees
        sealed = root.seal(new_trees)
        if sealed is None:
            return TreeSummary(None, 0, 0)
        self._store_trees(new_trees)
        return TreeSummary(sealed.digest, sealed.files, sealed.size)

    def _read_checked(self, f: SourceFile) -> bytes:
        """Read a small file whole, refusing one that changed while it was read."""
        try:
            with open(f.path, "rb") as fh:
                data = fh.read()
                after = StatKey.of(os.fstat(fh.fileno()))
        except FileNotFoundError:
            raise InvalidInput(
                f"{f.path} disappeared while it was being stored", hint="Run the command again"
            ) from None
        if after != f.key or len(data) != f.size:
            raise _changed_while_read(f.path)
        return data

    def _hash(self, f: SourceFile) -> tuple[SourceFile, bytes | None]:
        f.hashed_ns = time.time_ns()
        if f.size == 0:
            f.digest = EMPTY_DIGEST
            return f, None
        if f.size < PACK_THRESHOLD:
            data = self._read_checked(f)
            f.digest = digest_bytes(data)
            return f, data
        digest = digest_file(f.path)
        if StatKey.of(os.stat(f.path)) != f.key:
            raise _changed_while_read(f.path)
        f.digest = digest  # only once known to be the digest of the file the scan saw
        return f, None

    def _store_large(self, f: SourceFile, digest: str, progress: Progress) -> None:
        with self._whole_slots:  # each upload is parallel already (multipart); see WHOLE_DOWNLOADS
            self._store_large_now(f, digest, progress)

    def _store_large_now(self, f: SourceFile, digest: str, progress: Progress) -> None:
        key = objects.blob_key(digest)
        self._call(
            lambda: self.provider.upload(key, Path(f.path), expected_digest=digest), f"storing {f.path}"
        )
        self.index.add_blobs([Location(digest, key, 0, f.size)])
        progress.advance(1, f.size)

    # READING

    def _node(self, root: str | None, path: str) -> Entry:
        parts = manifest.split(path)
        entry = manifest.find(self.load_node, root, parts)
        if entry is None:
            if root is None and not parts:
                return Entry("", DIR, "", 0, 0)
            raise FileNotFoundInVersion(
                f"File not found in version: {path}",
                hint="List the version's files with: datakeep datasets files list",
            )
        if not parts and root is not None:  # the root's totals are the sum of its entries'
            entries = self.load_node(root)
            return Entry("", DIR, root, sum(e.size for e in entries), sum(e.files for e in entries))
        return entry

    def entries(self, root: str | None, prefix: str = "/") -> Iterator[tuple[str, str, int]]:
        """Every file under ``prefix`` (a file or a directory) as ``(path, digest, size)``, in path order."""
        node = self._node(root, prefix)
        parts = manifest.split(prefix)
        if not node.is_dir:
            yield "/".join(parts), node.digest, node.size
            return
        if not node.digest:
            return
        base = "/".join(parts) + "/" if parts else ""
        for path, entry in manifest.walk(self.load_node, node.digest, base):
            yield path, entry.digest, entry.size

    def diff(self, old_root: str | None, new_root: str | None) -> Iterator[Change]:
        for d in manifest.diff(self.load_node, old_root, new_root):
            yield Change(
                kind=d.kind,
                path=d.path,
                old_size=d.old.size if d.old else None,
                new_size=d.new.size if d.new else None,
            )

    def remove(self, root: str | None, paths: Sequence[str]) -> TreeSummary:
        node = Node.load(self.load_node, root)
        for path in paths:
            parts = _check_parts(manifest.split(path), path)
            if not node.remove(self.load_node, parts) and parts:
                raise FileNotFoundInVersion(
                    f"File not found in version: {path}",
                    hint="List the version's files with: datakeep datasets files list",
                )
        return self.seal(node)

    def graft(self, root: str | None, entries: Iterable[tuple[str, str, int]]) -> TreeSummary:
        """``root`` with files laid in by digest alone: ``(path, digest, size)``, a later one winning.

        For content that is on the provider already (uploaded earlier, or part of another version):
        the remote client links such files without sending their bytes. Every digest must be in
        this provider's index with that size, or nothing changes: a version never names content
        the provider does not hold. The tree is built by the same code as a snapshot's, so the
        manifest is the one a local create of the same files would make.
        """
        items = list(entries)
        parts_of = [_check_parts(manifest.split(path), path) for path, _, _ in items]
        if any(not parts for parts in parts_of):
            raise InvalidPath("A file path is empty", hint="Name each file by its path in the version")
        sizes: dict[str, int] = {}
        for path, digest, size in items:
            if sizes.setdefault(digest, size) != size:
                raise InvalidInput(f"Two sizes given for content {digest} ({path})")
        wanted = sorted(set(sizes) - {EMPTY_DIGEST})
        located = self.index.locate(wanted)
        absent = [d for d in wanted if d not in located]
        if absent:
            raise Conflict(
                f"{len(absent)} file(s) are not on the storage provider yet",
                hint="Upload them first (ask /missing which ones)",
            )
        for digest in wanted:
            if located[digest].size != sizes[digest]:
                raise InvalidInput(f"Wrong size given for content {digest}")
        if sizes.get(EMPTY_DIGEST, 0) != 0:
            raise InvalidInput(f"Wrong size given for content {EMPTY_DIGEST}")
        node = Node.load(self.load_node, root)
        for parts, (_, digest, size) in zip(parts_of, items, strict=True):
            node.put(self.load_node, parts, digest, size)
        return self.seal(node)

    def get(
        self,
        root: str | None,
        target_dir: Path,
        paths: Sequence[str] | None = None,
        *,
        local_blobs: Callable[[str], str | None] | None = None,
    ) -> int:
        """Write the selected files under ``target_dir`` (at their version paths); returns how many.

        Every path is resolved before anything is written; files then go out in batches, so memory
        holds one batch whatever the size of the version. ``local_blobs`` maps a digest to a local
        copy (the shared-storage cache's): such content is copied from there, verified on the way,
        instead of being read from the provider.
        """
        wanted = list(paths or ["/"])
        nodes = [self._node(root, path) for path in wanted]  # FileNotFoundInVersion before any write
        target_dir.mkdir(parents=True, exist_ok=True)
        base = os.path.realpath(target_dir)
        safe_dirs: set[str] = {base}
        seen: set[str] | None = set() if len(wanted) > 1 else None  # overlapping paths: each file once
        count = 0
        with Progress("Downloading files", enabled=self.progress) as progress:
            progress.expect(sum(n.files for n in nodes), sum(n.size for n in nodes))
            plan: dict[str, list[str]] = {}
            planned = 0
            for path in wanted:
                for p, digest, _size in self.entries(root, path):
                    if seen is not None:
                        if p in seen:
                            continue
                        seen.add(p)
                    plan.setdefault(digest, []).append(self._destination(base, p, safe_dirs))
                    count += 1
                    planned += 1
                    if planned >= GET_BATCH_FILES:
                        self._materialize(plan, progress, local_blobs)
                        plan, planned = {}, 0
            self._materialize(plan, progress, local_blobs)
        return count

    @staticmethod
    def _destination(base: str, path: str, safe_dirs: set[str]) -> str:
        """Where a version path lands under ``base``: never through a symlink, never outside.

        Plain strings, not ``Path``: this runs once per file and pathlib cost more than the write.
        The file itself may be an existing symlink: ``os.replace`` swaps the link, never its target.
        """
        parts = _check_parts(manifest.split(path), path)
        if not parts:
            raise InvalidPath(f"Invalid file path in version: {path!r}")
        directory = base
        for name in parts[:-1]:
            directory = f"{directory}{os.sep}{name}"
            if directory in safe_dirs:
                continue
            try:
                st = os.lstat(directory)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(directory)
                st = os.lstat(directory)
            if not stat_module.S_ISDIR(st.st_mode):
                raise InvalidPath(
                    f"{directory} already exists and is not a directory",
                    hint="Choose an empty --target-path, or remove it",
                )
            safe_dirs.add(directory)
        return f"{directory}{os.sep}{parts[-1]}"

    def fetch(self, digests: Sequence[str], dest_dir: Path) -> None:
        """Write each blob to ``dest_dir/<digest>``, verified: the cache's fetch callback."""
        dest_dir.mkdir(parents=True, exist_ok=True)
        plan = {d: [os.path.join(dest_dir, d)] for d in dict.fromkeys(digests)}
        with Progress("Fetching files", enabled=self.progress) as progress:
            progress.expect(len(plan), 0)
            self._materialize(plan, progress)

    def _materialize(
        self,
        plan: dict[str, list[str]],
        progress: Progress,
        local_blobs: Callable[[str], str | None] | None = None,
    ) -> None:
        if local_blobs is not None:
            for digest in [d for d in plan if d != EMPTY_DIGEST]:
                source = local_blobs(digest)
                if source is not None and _copy_verified(source, digest, plan[digest]):
                    progress.advance(len(plan[digest]), os.path.getsize(plan[digest][0]))
                    del plan[digest]
        locations = self.index.locate(d for d in plan if d != EMPTY_DIGEST)
        for digest, dests in plan.items():
            if digest != EMPTY_DIGEST and digest not in locations:
                raise IntegrityError(
                    f"The content of {dests[0]} ({digest}) is not on the storage provider",
                    hint="Run: datakeep admin fsck",
                )
        jobs: list[tuple[str, list[Location]]] = []
        by_pack: dict[str, list[Location]] = {}
        for digest in plan:
            if digest == EMPTY_DIGEST:
                for dest in plan[digest]:
                    _write_file(dest, b"")
                continue
            loc = locations[digest]
            if loc.whole:
                jobs.append((loc.key, [loc]))
            else:
                by_pack.setdefault(loc.key, []).append(loc)
        gap = COALESCE_GAP if self.provider.remote else 64 * 1024
        for key, locs in by_pack.items():
            locs.sort(key=lambda loc: loc.offset)
            current: list[Location] = []
            for loc in locs:
                if current and (
                    loc.offset - (current[-1].offset + current[-1].size) > gap
                    or loc.offset + loc.size - current[0].offset > MAX_RANGE
                ):
                    jobs.append((key, current))
                    current = []
                current.append(loc)
            if current:
                jobs.append((key, current))

        def run(job: tuple[str, list[Location]]) -> None:
            key, locs = job
            if len(locs) == 1 and locs[0].whole:
                self._fetch_whole(locs[0], plan[locs[0].digest])
            else:
                self._fetch_range(key, locs, plan)
            progress.advance(sum(len(plan[loc.digest]) for loc in locs), sum(loc.size for loc in locs))

        for _ in parallel(run, jobs, self.workers):
            pass

    def _fetch_range(self, key: str, locs: list[Location], plan: dict[str, list[str]]) -> None:
        start = locs[0].offset
        end = max(loc.offset + loc.size for loc in locs)
        data = self._call(lambda: self.provider.read(key, start, end - start), "reading files")
        assert isinstance(data, bytes)
        view = memoryview(data)
        for loc in locs:
            piece = view[loc.offset - start : loc.offset - start + loc.size]
            if len(piece) != loc.size or digest_bytes(piece) != loc.digest:
                raise IntegrityError(
                    f"{plan[loc.digest][0]}: the stored bytes do not match their digest {loc.digest}",
                    hint="The storage provider holds a corrupt copy; run: datakeep admin fsck",
                )
            for dest in plan[loc.digest]:
                _write_file(dest, piece)

    def _fetch_whole(self, loc: Location, paths: list[str]) -> None:
        # Each whole-object download is itself parallel (ranged GETs): running many at once only
        # multiplies buffers and threads, so few run together.
        with self._whole_slots:
            self._fetch_whole_now(loc, paths)

    def _fetch_whole_now(self, loc: Location, paths: list[str]) -> None:
        dests = [Path(p) for p in paths]
        first = dests[0]
        temp = Path(_temp_beside(paths[0]))
        try:
            self._call(lambda: self.provider.download(loc.key, temp), f"downloading {first.name}")
            if digest_file(temp) != loc.digest:
                raise IntegrityError(
                    f"{first}: the stored bytes do not match their digest {loc.digest}",
                    hint="The storage provider holds a corrupt copy; run: datakeep admin fsck",
                )
            for dest in dests[1:]:
                other = _temp_beside(str(dest))
                try:
                    os.link(temp, other)
                except OSError:
                    shutil.copyfile(temp, other)
                os.replace(other, dest)
            os.replace(temp, first)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    # DURABLE RECORDS

    def write_version_record(self, version: Version) -> None:
        """Store the committed version's record next to its content, for ``admin rebuild-catalog``."""
        with self.catalog.begin() as c:
            row = c.execute(select(t.datasets).where(t.datasets.c.id == version.dataset_id)).first()
        dataset = (
            {"id": row.id, "team_id": row.team_id, "name": row.name, "description": row.description}
            if row is not None
            else {"id": version.dataset_id}
        )
        record = {
            "format": 1,
            "storage_provider_id": self.provider_id,
            "dataset": dataset,
            "version": version.to_dict(),
        }
        data = json.dumps(record, sort_keys=True, indent=1).encode()
        key = objects.version_record_key(version.dataset_id, version.version)
        self._call(lambda: self.provider.write(key, data), "recording the version")

    def delete_version_records(self, dataset_id: str, version: str | None = None) -> None:
        """Forget a deleted version (or, with no ``version``, a deleted dataset) on the provider too,
        so that rebuild-catalog does not bring it back and gc may reclaim its content."""
        if version is not None:
            keys = [objects.version_record_key(dataset_id, version)]
        else:
            keys = [i.key for i in self.provider.list(f"{objects.VERSIONS}{dataset_id}/") if not i.is_dir]
        for key in keys:
            self._call(lambda key=key: self.provider.delete(key), "removing a version record")

    # Last in the class: defining ``list`` shadows the builtin in the annotations that follow it.
    def list(self, root: str | None, path: str = "/", *, recursive: bool = False) -> list[FileEntry]:
        """The files (and, non-recursively, ``sub/`` directories) at ``path``, named relative to it."""
        node = self._node(root, path)
        if not node.is_dir:
            return [FileEntry(path=manifest.split(path)[-1], size=node.size, digest=node.digest)]
        if not node.digest:
            return []
        if recursive:
            return [
                FileEntry(path=p, size=e.size, digest=e.digest)
                for p, e in manifest.walk(self.load_node, node.digest)
            ]
        return [
            FileEntry(path=e.name + "/", size=None, is_dir=True)
            if e.is_dir
            else FileEntry(path=e.name, size=e.size, digest=e.digest)
            for e in self.load_node(node.digest)
        ]


_COPY_CHUNK = 8 * 1024 * 1024


def _temp_beside(dest: str) -> str:
    """A hidden, unique name in ``dest``'s directory: written there, then renamed over ``dest``."""
    directory, _, name = dest.rpartition(os.sep)
    return f"{directory}{os.sep}.{name}.tmp-{uuid.uuid4().hex[:12]}"


def _copy_verified(source: str, digest: str, dests: list[str]) -> bool:
    """Copy a local blob to its destinations if its bytes still match ``digest``.

    False (and nothing written) when the copy is gone or was changed: the caller then reads the
    provider, so a tampered cache costs time, never correctness.
    """
    first = dests[0]
    temp = _temp_beside(first)
    try:
        hasher = blake3.blake3()
        with open(source, "rb") as src, open(temp, "wb") as out:
            while chunk := src.read(_COPY_CHUNK):
                hasher.update(chunk)
                out.write(chunk)
        if hasher.hexdigest() != digest:
            return False
        for dest in dests[1:]:
            _write_copy(temp, dest)
        os.replace(temp, first)
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _write_copy(source: str, dest: str) -> None:
    temp = _temp_beside(dest)
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _write_file(dest: str, data: bytes | memoryview) -> None:
    temp = _temp_beside(dest)
    try:
        with open(temp, "wb") as f:
            f.write(data)
        os.replace(temp, dest)
    except IsADirectoryError:
        raise InvalidPath(
            f"{dest} already exists", hint="Choose an empty --target-path, or remove it"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
