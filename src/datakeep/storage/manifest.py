"""Version manifests as git-like trees of content-addressed nodes.

A node lists one directory: for each name, a file (digest, size) or a sub-directory (digest of
its node, total size, file count). A node's digest is the BLAKE3 of its encoding, so an unchanged
directory keeps its digest across versions: a new version that changes 1% of the files writes only
the nodes on the paths to those files, and two versions are compared by skipping equal digests.

Encoding: compact JSON ``[1, [[name, kind, digest, size, count], ...]]`` sorted by name, kind 0 for
a file (count 1) and 1 for a directory. Names are ``os.fsdecode``d, so a non-UTF-8 name survives
the round trip as a surrogate escape (JSON escapes it).
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

from datakeep.storage.hashing import digest_bytes

FILE = 0
DIR = 1
FORMAT = 1


class Entry(NamedTuple):
    """A tuple, not a dataclass: a million-file version decodes a million of these."""

    name: str
    kind: int
    digest: str
    size: int
    files: int  # 1 for a file; the number of files below, for a directory

    @property
    def is_dir(self) -> bool:
        return self.kind == DIR


#: An entry as a plain tuple, in ``Entry``'s field order (what the snapshot's hot path builds).
Row = tuple[str, int, str, int, int]


def encode(entries: Sequence[Row]) -> bytes:
    """The node's bytes. Entries are tuples, which JSON writes as arrays, and names are unique
    within a node, so sorting whole tuples sorts by name: no per-entry list or key function."""
    return json.dumps([FORMAT, sorted(entries)], separators=(",", ":")).encode("ascii")


def decode(data: bytes) -> list[Entry]:
    fmt, rows = json.loads(data)
    if fmt != FORMAT:
        raise ValueError(f"unknown manifest tree format {fmt!r}")
    if any(len(row) != 5 for row in rows):
        raise ValueError("malformed manifest tree node")
    # ``tuple.__new__`` directly: ``Entry(*row)`` runs a Python-level constructor, and decoding
    # was a third of an incremental create's tree work (docs/performance.md).
    new = tuple.__new__
    return [new(Entry, row) for row in rows]


Loader = Callable[[str], list[Entry]]


def split(path: str) -> list[str]:
    """``/a/b/`` -> ``["a", "b"]``: version paths are relative, ``/``-separated, leading ``/`` optional."""
    return [p for p in path.split("/") if p]


# READING

_NAME = itemgetter(0)


def lookup(entries: list[Entry], name: str) -> Entry | None:
    """The entry called ``name`` in a decoded node, by binary search.

    Nodes are encoded sorted by name, so this is O(log n): 0.3 µs instead of 11 µs for a name in
    a 1,000-entry node (docs/performance.md), which matters to path lookups in large directories.
    """
    i = bisect_left(entries, name, key=_NAME)
    if i < len(entries) and entries[i].name == name:
        return entries[i]
    return None


def find(load: Loader, root: str | None, parts: list[str]) -> Entry | None:
    """The entry at ``parts`` (``[]`` is the root, as a directory entry), or None."""
    if root is None:
        return None
    node = Entry("", DIR, root, 0, 0)
    for name in parts:
        if not node.is_dir:
            return None
        match = lookup(load(node.digest), name)
        if match is None:
            return None
        node = match
    return node


def walk(load: Loader, digest: str, prefix: str = "") -> Iterator[tuple[str, Entry]]:
    """Every file under the node, depth first, in name order: ``(path, entry)``."""
    for entry in load(digest):
        path = prefix + entry.name
        if entry.is_dir:
            yield from walk(load, entry.digest, path + "/")
        else:
            yield path, entry


def walk_trees(load: Loader, digest: str) -> Iterator[str]:
    """Every node digest reachable from ``digest`` (once each), including itself."""
    seen: set[str] = set()
    stack = [digest]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        yield current
        stack.extend(e.digest for e in load(current) if e.is_dir)


@dataclass(frozen=True)
class Difference:
    kind: str  # added, removed, modified
    path: str
    old: Entry | None
    new: Entry | None


def diff(load: Loader, old: str | None, new: str | None, prefix: str = "") -> Iterator[Difference]:
    """Files that differ between two nodes; equal sub-trees are skipped without being read."""
    if old == new:
        return
    old_entries = {e.name: e for e in load(old)} if old else {}
    new_entries = {e.name: e for e in load(new)} if new else {}
    for name in sorted(old_entries.keys() | new_entries.keys()):
        a, b = old_entries.get(name), new_entries.get(name)
        path = prefix + name
        if a is not None and b is not None and a.kind == b.kind:
            if a.digest == b.digest and a.size == b.size:
                continue
            if a.is_dir:
                yield from diff(load, a.digest, b.digest, path + "/")
            else:
                yield Difference("modified", path, a, b)
            continue
        if a is not None:
            if a.is_dir:
                yield from (Difference("removed", p, e, None) for p, e in walk(load, a.digest, path + "/"))
            else:
                yield Difference("removed", path, a, None)
        if b is not None:
            if b.is_dir:
                yield from (Difference("added", p, None, e) for p, e in walk(load, b.digest, path + "/"))
            else:
                yield Difference("added", path, None, b)


# BUILDING


@dataclass
class Node:
    """A directory being edited: loaded from its old node only when something under it changes."""

    entries: dict[str, Entry | Node] = field(default_factory=dict)

    @classmethod
    def load(cls, load: Loader, digest: str | None) -> Node:
        return cls({e.name: e for e in load(digest)} if digest else {})

    def _child_dir(self, load: Loader, name: str) -> Node:
        child = self.entries.get(name)
        if isinstance(child, Node):
            return child
        node = Node.load(load, child.digest) if isinstance(child, Entry) and child.is_dir else Node()
        # A file in the way of a directory is replaced by it (a version is a tree, not a key space).
        self.entries[name] = node
        return node

    def put(self, load: Loader, parts: list[str], digest: str, size: int) -> None:
        node = self
        for name in parts[:-1]:
            node = node._child_dir(load, name)
        node.entries[parts[-1]] = Entry(parts[-1], FILE, digest, size, 1)

    def put_entry(self, parts: list[str], entry: Entry) -> None:
        """Place a sealed entry (a file, or a whole directory) at ``parts`` (not empty) of a tree
        built from nothing: a directory in the way is created, never loaded."""
        node = self
        for name in parts[:-1]:
            node = node._child_dir(lambda _digest: [], name)
        node.entries[parts[-1]] = entry._replace(name=parts[-1])

    def remove(self, load: Loader, parts: list[str]) -> bool:
        """Remove the file or directory at ``parts``; False if nothing is there."""
        if not parts:
            found = bool(self.entries)
            self.entries.clear()
            return found
        node = self
        for name in parts[:-1]:
            child = node.entries.get(name)
            if child is None or (isinstance(child, Entry) and not child.is_dir):
                return False
            node = node._child_dir(load, name)
        return node.entries.pop(parts[-1], None) is not None

    def seal(self, new_trees: dict[str, bytes]) -> Entry | None:
        """Encode this node and every edited node below it; None if it holds no file."""
        sealed: list[Entry] = []
        for name, child in self.entries.items():
            if isinstance(child, Node):
                entry = child.seal(new_trees)
                if entry is None:
                    continue
                sealed.append(Entry(name, DIR, entry.digest, entry.size, entry.files))
            else:
                sealed.append(child)
        if not sealed:
            return None
        data = encode(sealed)
        digest = digest_bytes(data)
        new_trees[digest] = data
        return Entry("", DIR, digest, sum(e.size for e in sealed), sum(e.files for e in sealed))
