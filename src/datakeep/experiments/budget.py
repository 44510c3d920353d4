"""Counting the bytes actually written into a volume, so a limit holds without a real quota.

Headers lie (a zip bomb declares small sizes; an S3 listing can change under us), so every
writer feeds the bytes it really wrote through one :class:`ByteBudget` and stops the moment
the total passes the limit, instead of trusting sizes announced up front.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from datakeep.errors import QuotaExceeded
from datakeep.sizes import format_size

_HINT = "Give a larger --datasetVolumeSize, or use the shared volume kind"


class ByteBudget:
    """A byte allowance shared by the threads filling one volume. ``limit=None`` counts only."""

    def __init__(self, limit: int | None, *, label: str) -> None:
        self.limit = limit
        self.label = label
        self.used = 0
        self._lock = threading.Lock()

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)

    def check_announced(self, size: int, *, what: str) -> None:
        """Refuse early when a declared size alone cannot fit: an error before any download."""
        if self.limit is not None and self.used + size > self.limit:
            raise self._error(what, size_note=f"needs {format_size(size)}")

    def add(self, count: int, *, what: str) -> None:
        """Record ``count`` bytes just written for ``what``; raise once past the limit."""
        with self._lock:
            self.used += count
            over = self.limit is not None and self.used > self.limit
        if over:
            raise self._error(what, size_note=f"more than {format_size(self.used)} written")

    def _error(self, what: str, *, size_note: str) -> QuotaExceeded:
        assert self.limit is not None
        return QuotaExceeded(
            f"{what} does not fit in {self.label} ({format_size(self.limit)}): {size_note}",
            hint=_HINT,
            limit=self.limit,
        )


@contextmanager
def disk_full_is_quota(what: str, label: str) -> Iterator[None]:
    """A real size-limited mount reports ENOSPC; report it like the counted limit."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise QuotaExceeded(
                f"{what} does not fit in {label}: the volume is full",
                hint=_HINT,
            ) from exc
        raise
