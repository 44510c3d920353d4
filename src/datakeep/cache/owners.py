"""Who owns a lock, a pin or a temporary directory, and whether that owner still lives.

The cache may be shared by several machines over NFS, so an owner is (host, pid, start time):
the pid alone could be reused after a crash, and a pid means nothing on another host. A process
on this host is checked directly; a process on another host cannot be, so its records carry a
heartbeat (the file's mtime) and are trusted only while that is recent.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces or parentheses: fields start after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _safe_host(host: str) -> str:
    """The host name as it appears in a tag (file-name-safe)."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in host)


_HOST = socket.gethostname()


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str | None

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(host=_HOST, pid=pid, started=_start_time(pid))

    @property
    def tag(self) -> str:
        """A file-name-safe form, so leftovers can be judged from their name alone."""
        return f"{_safe_host(self.host)}~{self.pid}~{self.started or 'x'}"

    @classmethod
    def from_tag(cls, tag: str) -> Owner | None:
        parts = tag.split("~")
        if len(parts) < 3 or not parts[1].isdigit():
            return None
        return cls(host=parts[0], pid=int(parts[1]), started=None if parts[2] == "x" else parts[2])

    def is_local(self) -> bool:
        return self.host in (_HOST, _safe_host(_HOST))

    def is_alive(self) -> bool | None:
        """True/False on this host; None for another host, where only a heartbeat can tell."""
        if not self.is_local():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by another user
        started = _start_time(self.pid)
        return self.started is None or started is None or started == self.started

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Owner:
        return cls(host=str(data["host"]), pid=int(data["pid"]), started=data.get("started"))


def owner_gone(owner: Owner | None, mtime: float, *, stale_after: float) -> bool:
    """Whether a record left by ``owner`` (last touched at ``mtime``) can be disregarded."""
    if owner is None:
        return time.time() - mtime > stale_after
    alive = owner.is_alive()
    if alive is None:
        return time.time() - mtime > stale_after
    return not alive


class FileLock:
    """A best-effort lock file, used only so that two processes do not fetch the same thing.

    Correctness never depends on it: everything it guards is also safe when done twice. So a
    waiter gives up waiting (and simply does the work too) when the holder has died, when the
    holder's heartbeat is older than ``stale_after`` (a crashed machine), or after ``max_wait``.
    ``O_CREAT | O_EXCL`` is atomic on local filesystems and on NFSv3+.
    """

    def __init__(self, path: Path, *, stale_after: float = 30.0, max_wait: float = 3600.0) -> None:
        self.path = path
        self.stale_after = stale_after
        self.max_wait = max_wait
        self.held = False
        self._token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _read_owner(self) -> tuple[Owner | None, float] | None:
        try:
            mtime = self.path.stat().st_mtime
            data = json.loads(self.path.read_text())
            return Owner.from_json(data), mtime
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            # Half-written by a process that died between create and write: judge by age.
            try:
                return None, self.path.stat().st_mtime
            except OSError:
                return None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.max_wait
        delay = 0.01
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    json.dump({**Owner.me().to_json(), "token": self._token}, f)
                self.held = True
                self._start_heartbeat()
                return True
            found = self._read_owner()
            if found is not None and owner_gone(found[0], found[1], stale_after=self.stale_after):
                self._break()
                continue
            if time.monotonic() > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _break(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _start_heartbeat(self) -> None:
        interval = max(self.stale_after / 4, 0.05)

        def beat() -> None:
            while not self._stop.wait(interval):
                with contextlib.suppress(OSError):
                    os.utime(self.path)

        self._beat = threading.Thread(target=beat, name="datakeep-lock-heartbeat", daemon=True)
        self._beat.start()

    def release(self) -> None:
        if not self.held:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        self.held = False
        # Remove it only if it is still ours: a waiter may have judged it stale and taken over.
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.path.read_text()).get("token") == self._token:
                self.path.unlink()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
