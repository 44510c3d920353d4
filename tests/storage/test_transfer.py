"""The bounded parallel map and the progress bar."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from datakeep.storage.transfer import Progress, parallel


def test_parallel_never_holds_more_than_twice_the_workers() -> None:
    started = 0
    lock = threading.Lock()
    produced = 0

    def items() -> Iterator[int]:
        nonlocal produced
        for i in range(200):
            with lock:
                produced += 1
                # Items are pulled only as results are consumed: at most 2 * workers ahead.
                assert produced - started <= 2 * 4 + 1
            yield i

    def work(i: int) -> int:
        nonlocal started
        with lock:
            started += 1
        return i * 2

    assert sorted(parallel(work, items(), 4)) == [i * 2 for i in range(200)]


def test_parallel_raises_the_first_failure() -> None:
    def work(i: int) -> int:
        if i == 7:
            raise OSError("disk on fire")
        return i

    with pytest.raises(OSError, match="disk on fire"):
        list(parallel(work, range(50), 3))


def test_progress_is_silent_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress("Storing files") as progress:  # stderr is captured: not a TTY
        progress.expect(3, 300)
        progress.advance(3, 300)
    assert not progress.enabled
    assert capsys.readouterr().err == ""


def test_progress_shows_files_bytes_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress("Storing files", enabled=True) as progress:
        progress.expect(4, 4096)
        progress.advance(4, 4096)
    err = capsys.readouterr().err
    assert "Storing files" in err
    assert "4/4 files" in err
    assert "4.1 kB" in err or "4.0 KiB" in err or "4.1/4.1 kB" in err
