"""Parallel transfers with bounded memory, and the progress bar shown while they run."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_M_MMAP_THRESHOLD = -3
_heap_tuned = False


def return_buffers_to_the_os() -> None:
    """Fix glibc's mmap threshold at 1 MiB, once per process.

    Transfers allocate many multi-MiB buffers from many threads. By default glibc raises its mmap
    threshold after the first such buffer is freed, so later ones come from per-thread heaps that
    keep their peak size: uploading 8 x 128 MiB to S3 peaked at 208 MiB of RSS in the provider alone,
    140 MiB with the threshold fixed (docs/performance.md). A no-op where glibc is not the allocator.
    """
    global _heap_tuned
    if _heap_tuned or not sys.platform.startswith("linux"):
        return
    _heap_tuned = True
    try:
        name = ctypes.util.find_library("c")
        if name:
            ctypes.CDLL(name).mallopt(_M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):
        pass


def parallel(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map`` over a thread pool that never holds more than ``2 * workers`` items at once.

    Results come back in completion order. The first failure cancels what has not started and is
    raised; work already running finishes first (threads cannot be killed), so nothing is left
    half-written behind the caller's back.
    """
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dk-transfer") as pool:
        pending: set[Future[R]] = set()
        try:
            for item in items:
                pending.add(pool.submit(fn, item))
                if len(pending) >= 2 * workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield fut.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


class Progress:
    """Files, bytes, rate and ETA on stderr when it is a terminal (or when asked); silent otherwise."""

    def __init__(self, description: str, *, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.description = description
        self._lock = threading.Lock()
        self._files_total = 0
        self._files_done = 0
        self._bar: object | None = None
        self._task: object | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[files]} files"),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            bar.start()
            self._task = bar.add_task(self.description, total=0, files="0/0")
            self._bar = bar
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()  # type: ignore[attr-defined]
            self._bar = None

    def expect(self, files: int, size: int) -> None:
        with self._lock:
            self._files_total += files
            if self._bar is not None:
                bar = self._bar
                task = bar.tasks[0]  # type: ignore[attr-defined]
                bar.update(  # type: ignore[attr-defined]
                    self._task,
                    total=(task.total or 0) + size,
                    files=f"{self._files_done}/{self._files_total}",
                )

    def advance(self, files: int, size: int) -> None:
        with self._lock:
            self._files_done += files
            if self._bar is not None:
                self._bar.update(  # type: ignore[attr-defined]
                    self._task, advance=size, files=f"{self._files_done}/{self._files_total}"
                )

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)  # type: ignore[attr-defined]
