"""How version content is laid out on a provider.

::

    packs/<id>.pack                small files, concatenated, with an index footer
    blobs/<d[:2]>/<digest>         one large file, stored whole (multipart on S3)
    trees/<id>.pack                manifest tree nodes written by one snapshot, same pack format
    versions/<dataset>/<version>.json   the record of a committed version

A pack's name is the BLAKE3 of its bytes, so writing it again after an interruption rewrites the
same object. The footer makes every pack self-describing: ``admin rebuild-catalog`` finds where
each digest lives by reading pack tails, with no catalog at all.

Pack layout: ``body || index-json || u64 index length || b"DKPACK01"``; the index is
``[[digest, offset, size], ...]`` over the body.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from datakeep.storage.hashing import digest_bytes, is_digest

PACK_MAGIC = b"DKPACK01"
_TRAILER = struct.Struct(">Q8s")
TRAILER_SIZE = _TRAILER.size

PACKS = "packs/"
BLOBS = "blobs/"
TREES = "trees/"
VERSIONS = "versions/"


def blob_key(digest: str) -> str:
    return f"{BLOBS}{digest[:2]}/{digest}"


def digest_from_blob_key(key: str) -> str | None:
    name = key.rsplit("/", 1)[-1]
    return name if key.startswith(BLOBS) and is_digest(name) else None


def version_record_key(dataset_id: str, version: str) -> str:
    return f"{VERSIONS}{dataset_id}/{version}.json"


@dataclass(frozen=True)
class PackEntry:
    digest: str
    offset: int
    size: int


def build_pack(items: Sequence[tuple[str, bytes]], folder: str = PACKS) -> tuple[str, bytes, list[PackEntry]]:
    """Concatenate ``(digest, data)`` items into one pack: returns its key, bytes and index."""
    entries: list[PackEntry] = []
    offset = 0
    for digest, data in items:
        entries.append(PackEntry(digest, offset, len(data)))
        offset += len(data)
    index = json.dumps([[e.digest, e.offset, e.size] for e in entries], separators=(",", ":")).encode()
    body = b"".join([*(data for _, data in items), index, _TRAILER.pack(len(index), PACK_MAGIC)])
    return f"{folder}{digest_bytes(body)}.pack", body, entries


def parse_trailer(tail: bytes) -> int:
    """The index length from a pack's last TRAILER_SIZE bytes."""
    if len(tail) != TRAILER_SIZE:
        raise ValueError("pack too short")
    length, magic = _TRAILER.unpack(tail)
    if magic != PACK_MAGIC:
        raise ValueError("not a datakeep pack")
    return int(length)


def parse_index(index: bytes) -> list[PackEntry]:
    return [PackEntry(str(d), int(o), int(s)) for d, o, s in json.loads(index)]


def parse_pack(body: bytes) -> list[PackEntry]:
    length = parse_trailer(body[-TRAILER_SIZE:])
    return parse_index(body[-TRAILER_SIZE - length : -TRAILER_SIZE])
