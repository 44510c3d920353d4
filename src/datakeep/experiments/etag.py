"""Checking downloaded bytes against an S3 ETag.

Comparing the ETag the server reports with the one the user pinned only proves the *object*
is the expected one; it says nothing about the bytes that reached our disk. So the bytes are
hashed again here. A single-part upload's ETag is the MD5 of the content. A multipart
upload's is ``md5(md5(part 1) + … + md5(part N))-N``, which depends on a part size S3 does
not store in the ETag: the size comes from the store when it reports it (HeadObject with
``PartNumber``), else from what the ETag and the object size allow plus the part sizes that
common tools use. When no part size reproduces it, the result says so and why, instead of
guessing that the data is bad.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from datakeep.errors import IntegrityError, InvalidInput
from datakeep.sizes import format_size

MIB = 2**20
MB = 10**6
#: Part sizes used by common uploaders: boto3/aws-cli 8 MiB, rclone and MinIO 5-16 MiB,
#: s3cmd 15 MiB, larger tools 64 MiB and up; some use decimal megabytes.
COMMON_PART_SIZES: tuple[int, ...] = tuple(
    [n * MIB for n in (8, 5, 15, 16, 64, 10, 25, 32, 50, 100, 128, 256, 512, 1024)]
    + [n * MB for n in (5, 8, 10, 15, 16, 64, 100)]
)
#: Each candidate part size costs one more MD5 pass over the data; stop somewhere.
MAX_CANDIDATES = 8
_ETAG = re.compile(r"^([0-9a-f]{32})(?:-(\d+))?$")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ParsedEtag:
    digest: str
    parts: int | None  # None: a single-part (plain MD5) ETag

    @property
    def is_multipart(self) -> bool:
        return self.parts is not None


@dataclass(frozen=True)
class EtagCheck:
    """The outcome when nothing is wrong: ``verified`` or not, and why, in words."""

    verified: bool
    detail: str
    part_size: int | None = None


def normalize_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def parse_etag(etag: str) -> ParsedEtag | None:
    """The digest and part count, or ``None`` for ETags that are no MD5 at all (some stores)."""
    match = _ETAG.match(normalize_etag(etag))
    if not match:
        return None
    parts = int(match.group(2)) if match.group(2) else None
    return ParsedEtag(digest=match.group(1), parts=parts)


def implied_part_size_range(size: int, parts: int) -> tuple[int, int] | None:
    """Part sizes P for which an object of ``size`` bytes splits into exactly ``parts`` parts.

    All parts but the last have size P, so ``(parts-1)*P < size <= parts*P``.
    """
    if parts < 1 or size < parts:
        return None
    low = -(-size // parts)
    high = size if parts == 1 else -(-size // (parts - 1)) - 1
    return (low, high) if low <= high else None


def part_size_candidates(size: int, parts: int, hints: Iterable[int] = ()) -> list[int]:
    """Part sizes worth trying, best first: reported ones, a narrow implied range, common sizes."""
    span = implied_part_size_range(size, parts)
    if span is None:
        return []
    low, high = span
    ordered: list[int] = [h for h in hints if low <= h <= high]
    if parts == 1 or high - low < 4:
        ordered.extend(range(low, high + 1))
    ordered.extend(c for c in COMMON_PART_SIZES if low <= c <= high)
    unique = list(dict.fromkeys(ordered))
    return unique[:MAX_CANDIDATES]


class _PartHasher:
    """MD5 of each part of one fixed size, fed a stream of chunks."""

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self.digests: list[bytes] = []
        self._current = hashlib.md5(usedforsecurity=False)
        self._filled = 0

    def update(self, chunk: memoryview) -> None:
        while chunk:
            room = self.part_size - self._filled
            piece, chunk = chunk[:room], chunk[room:]
            self._current.update(piece)
            self._filled += len(piece)
            if self._filled == self.part_size:
                self._close_part()

    def _close_part(self) -> None:
        self.digests.append(self._current.digest())
        self._current = hashlib.md5(usedforsecurity=False)
        self._filled = 0

    def etag(self) -> str:
        if self._filled:
            self._close_part()
        combined = hashlib.md5(b"".join(self.digests), usedforsecurity=False).hexdigest()
        return f"{combined}-{len(self.digests)}"


def _read_chunks(path: Path) -> Iterable[memoryview]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield memoryview(chunk)


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in _read_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def multipart_etag(path: Path, part_size: int) -> str:
    """The ETag S3 gives ``path`` when uploaded in parts of ``part_size`` bytes."""
    if part_size <= 0:
        raise InvalidInput("A part size must be positive")
    hasher = _PartHasher(part_size)
    for chunk in _read_chunks(path):
        hasher.update(chunk)
    return hasher.etag()


def verify_file(
    path: Path,
    etag: str,
    *,
    label: str,
    part_sizes: Sequence[int] | None = None,
    part_size_hints: Iterable[int] = (),
    md5_based: bool = True,
) -> EtagCheck:
    """Check ``path`` against ``etag``; raise :class:`IntegrityError` when it certainly differs.

    ``part_sizes``: the exact size of every part, when the store reported them; a mismatch is
    then certain. ``part_size_hints``: sizes worth trying first. ``md5_based=False`` for
    objects whose ETag is not a digest of the plain bytes (SSE-KMS or SSE-C encryption).
    """
    parsed = parse_etag(etag)
    if not md5_based:
        return EtagCheck(
            False, f"{label}: the ETag of an encrypted object (SSE-KMS/SSE-C) is not an MD5 of its bytes"
        )
    if parsed is None:
        return EtagCheck(
            False, f"{label}: ETag {etag!r} is not an MD5-based S3 ETag, so it cannot be recomputed"
        )
    size = path.stat().st_size
    if not parsed.is_multipart:
        found = file_md5(path)
        if found != parsed.digest:
            raise _mismatch(label, parsed.digest, found)
        return EtagCheck(True, f"{label}: MD5 matches the ETag")

    assert parsed.parts is not None
    expected = f"{parsed.digest}-{parsed.parts}"
    if part_sizes:
        found = _etag_for_sizes(path, part_sizes)
        if found != expected:
            raise _mismatch(label, expected, found)
        return EtagCheck(
            True, f"{label}: multipart ETag matches (part sizes reported by the store)", part_sizes[0]
        )

    candidates = part_size_candidates(size, parsed.parts, part_size_hints)
    if not candidates:
        return EtagCheck(
            False,
            f"{label}: ETag {expected} says {parsed.parts} parts, which no part size can give "
            f"for {size} bytes; the ETag does not describe these bytes",
        )
    hashers = [_PartHasher(c) for c in candidates]
    for chunk in _read_chunks(path):
        for hasher in hashers:
            hasher.update(chunk)
    for hasher in hashers:
        if hasher.etag() == expected:
            return EtagCheck(
                True,
                f"{label}: multipart ETag matches with {format_size(hasher.part_size)} parts",
                hasher.part_size,
            )
    tried = ", ".join(format_size(c) if c % MIB == 0 else f"{c} B" for c in candidates)
    span = implied_part_size_range(size, parsed.parts)
    assert span is not None
    return EtagCheck(
        False,
        f"{label}: cannot verify the bytes against multipart ETag {expected}: the store does not report "
        f"part sizes, the ETag allows any part size from {span[0]} to {span[1]} bytes, and none of those "
        f"tried ({tried}) reproduces it",
    )


def _etag_for_sizes(path: Path, sizes: Sequence[int]) -> str:
    digests: list[bytes] = []
    with path.open("rb") as fh:
        for part in sizes:
            md5 = hashlib.md5(usedforsecurity=False)
            left = part
            while left:
                chunk = fh.read(min(_CHUNK, left))
                if not chunk:
                    break
                md5.update(chunk)
                left -= len(chunk)
            digests.append(md5.digest())
        if fh.read(1):
            return "(more bytes than the parts reported)"
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


def _mismatch(label: str, expected: str, found: str) -> IntegrityError:
    return IntegrityError(
        f"{label}: downloaded bytes do not match ETag {expected} (computed {found})",
        hint="The download was damaged or the object changed while it was read; run again to fetch it anew",
        expected=expected,
        found=found,
    )
