"""An interrupted ``versions create`` leaves no committed version, and running it again works.

The subprocess cases are real processes receiving real signals. What a test cannot do is hit a
chosen instant by timing, so the child runs ``datakeep`` with one function wrapped to announce
"I am here" (a marker file) and then wait; the test kills it at that point. The points are: after
every byte was uploaded but before the catalog insert (the worst moment), after the first large
file was stored (mid-upload), and while the manifest trees are written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from datakeep.catalog.store import Catalog
from datakeep.storage.content import PACK_THRESHOLD

from .conftest import Datakeep

#: The child: wrap one method so it signals the test and then blocks until killed.
CHILD = r"""
import sys, time, pathlib, importlib
marker, where = pathlib.Path(sys.argv[1]), sys.argv[2]
module_name, class_name, method_name = where.rsplit(".", 2)
cls = getattr(importlib.import_module(module_name), class_name)
original = getattr(cls, method_name)
def paused(self, *args, **kwargs):
    result = original(self, *args, **kwargs) if method_name != "insert_version" else None
    # Written whole under another name, then renamed: the test never sees a half-made marker.
    partial = marker.with_name(marker.name + ".partial")
    partial.write_text("here")
    partial.replace(marker)
    while True:
        time.sleep(0.05)
setattr(cls, method_name, paused)
from datakeep.cli.main import main
sys.exit(main(sys.argv[3:]))
"""

#: Hang guards only, never timing assertions: a loaded machine (xdist, other jobs, two cores)
#: can take a long time to start the child and hash the tree, and that must not fail the test.
REACH_PAUSE_SECONDS = 600
EXIT_SECONDS = 300

#: (where the child pauses, human name)
PAUSE_POINTS = [
    ("datakeep.catalog.store.Catalog.insert_version", "before-catalog-insert"),
    ("datakeep.providers.local.LocalProvider.upload", "mid-upload"),
    ("datakeep.storage.content.ContentStore._store_trees", "after-upload"),
]


def _tree(root: Path) -> Path:
    folder = root / "tree"
    (folder / "sub").mkdir(parents=True)
    for i in range(30):
        (folder / f"f{i:02d}.txt").write_text(f"file {i}\n" * (i + 1))
    # Larger than the engine packs, so it is uploaded on its own (the "mid-upload" pause point).
    (folder / "sub" / "big.bin").write_bytes(os.urandom(max(3 * 1024 * 1024, 2 * PACK_THRESHOLD)))
    return folder


def _versions(catalog_url: str, dataset_id: str) -> list[Any]:
    catalog = Catalog(catalog_url)
    try:
        from datakeep.catalog.schema import LOCAL_TEAM_ID

        return catalog.list_versions(LOCAL_TEAM_ID, dataset_id)
    finally:
        catalog.close()


class Child:
    """The paused ``datakeep`` process. Its output goes to files, not pipes: nobody reads a pipe
    while the test waits, and a child blocked on a full pipe would never reach its pause point."""

    def __init__(self, tmp_path: Path, catalog_url: str, where: str, args: list[str]) -> None:
        self.marker = tmp_path / "paused"
        self._out = tmp_path / "child.out"
        self._err = tmp_path / "child.err"
        env = {**os.environ, "DATAKEEP_DATABASE_URL": catalog_url}
        with self._out.open("wb") as out, self._err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(self.marker), where, *args], env=env, stdout=out, stderr=err
            )

    def output(self) -> tuple[str, str]:
        return self._out.read_text(), self._err.read_text()

    def wait_for_pause(self) -> None:
        deadline = time.monotonic() + REACH_PAUSE_SECONDS
        while not self.marker.exists():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"child ended before the pause point ({self.proc.returncode}): {self.output()}"
                )
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"child never reached the pause point: {self.output()}")
            time.sleep(0.02)

    def signal_and_wait(self, signum: int) -> tuple[int, str, str]:
        """Send ``signum`` and wait for the exit: (exit status, stdout, stderr)."""
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=EXIT_SECONDS)
        return (code, *self.output())


def _start_paused(tmp_path: Path, catalog_url: str, where: str, args: list[str]) -> Child:
    child = Child(tmp_path, catalog_url, where, args)
    child.wait_for_pause()
    return child


@pytest.mark.parametrize(("where", "label"), PAUSE_POINTS, ids=[p[1] for p in PAUSE_POINTS])
def test_kill_9_then_rerun(dk: Datakeep, tmp_path: Path, where: str, label: str) -> None:
    folder = _tree(tmp_path)
    dataset_id = dk.create_dataset()
    args = ["datasets", "versions", "create", f"--id={dataset_id}", f"--source-path={folder}/"]
    child = _start_paused(tmp_path, dk.catalog_url, where, args)
    code, out, err = child.signal_and_wait(signal.SIGKILL)
    assert code == -signal.SIGKILL, f"{code}: {out}{err}"
    assert _versions(dk.catalog_url, dataset_id) == []

    ref = dk.create_version(dataset_id, f"{folder}/")
    listed = dk.ok("datasets", "files", "list", f"--id={ref}", "--recursive", "--json").json()
    assert len(listed) == 31
    restored = tmp_path / "restored"
    dk.ok("datasets", "files", "get", f"--id={ref}", f"--target-path={restored}")
    assert (restored / "sub" / "big.bin").read_bytes() == (folder / "sub" / "big.bin").read_bytes()
    assert (restored / "f29.txt").read_text() == (folder / "f29.txt").read_text()


def test_ctrl_c_then_rerun(dk: Datakeep, tmp_path: Path) -> None:
    folder = _tree(tmp_path)
    dataset_id = dk.create_dataset()
    args = ["datasets", "versions", "create", f"--id={dataset_id}", f"--source-path={folder}/"]
    child = _start_paused(tmp_path, dk.catalog_url, PAUSE_POINTS[0][0], args)
    code, out, err = child.signal_and_wait(signal.SIGINT)
    assert (code, out) == (130, ""), f"{code}: {out}{err}"
    assert err.strip() == "Interrupted: nothing was committed. Run the same command again to resume."
    assert _versions(dk.catalog_url, dataset_id) == []
    dk.create_version(dataset_id, f"{folder}/")
    assert len(_versions(dk.catalog_url, dataset_id)) == 1


def test_exception_mid_upload_then_rerun(
    dk: Datakeep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The storage provider fails while storing the large file (fault injected in process)."""
    from datakeep.providers.local import LocalProvider

    folder = _tree(tmp_path)
    dataset_id = dk.create_dataset()
    original_upload = LocalProvider.upload
    calls = {"n": 0}

    def failing_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LocalProvider, "upload", failing_upload)
    result = dk.run("datasets", "versions", "create", f"--id={dataset_id}", f"--source-path={folder}/")
    assert result.exit_code != 0
    assert result.stdout == ""
    assert calls["n"] >= 1, "the fault was never reached"
    assert _versions(dk.catalog_url, dataset_id) == []
    monkeypatch.setattr(LocalProvider, "upload", original_upload)
    ref = dk.create_version(dataset_id, f"{folder}/")
    assert len(dk.ok("datasets", "files", "list", f"--id={ref}", "--recursive", "--json").json()) == 31
