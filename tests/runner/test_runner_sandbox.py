"""The sandbox with real namespaces, real bind mounts and real processes.

Namespace tests run once per backend (bubblewrap and the unshare fallback) and are skipped
only where that backend cannot make a namespace on this machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from datakeep.errors import InvalidInput, SandboxUnavailable
from datakeep.runner import sandbox
from datakeep.runner.sandbox import Mount, SandboxSpec, run_sandboxed, sandbox_status


def _usable(backend: str) -> bool:
    try:
        sandbox._choose_backend(backend)  # type: ignore[arg-type]
    except SandboxUnavailable:
        return False
    return True


BACKENDS = [
    pytest.param(b, marks=pytest.mark.skipif(not _usable(b), reason=f"{b} unusable here"))
    for b in ("bwrap", "unshare")
]


class Collected:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def __call__(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode()


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    inp = tmp_path / "input"
    out = tmp_path / "output"
    inp.mkdir()
    out.mkdir()
    (inp / "hello.txt").write_text("hello\n")
    # Deliberately writable by its owner: only the mount may protect it.
    (inp / "hello.txt").chmod(0o666)
    return inp, out


def _spec(dirs: tuple[Path, Path], command: str, **kwargs: object) -> SandboxSpec:
    inp, out = dirs
    mounts = [Mount(inp, "/datasets/input-a"), Mount(out, "/datasets/output-a", writable=True)]
    return SandboxSpec(command=command, mounts=mounts, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    scratch = tmp_path / "tempdir"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    return scratch


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_only_input_cannot_be_changed_even_by_root(dirs: tuple[Path, Path], backend: str) -> None:
    inp, _ = dirs
    attempts = {
        "write": "echo evil > /datasets/input-a/hello.txt",
        "create": "touch /datasets/input-a/new.txt",
        "delete": "rm -f /datasets/input-a/hello.txt",
        "chmod": "chmod 000 /datasets/input-a/hello.txt",
        "remount": "mount -o remount,rw /datasets/input-a",
        "umount": "umount /datasets/input-a",
        "overmount": "mount -t tmpfs x /datasets/input-a",
    }
    script = "id -u; " + "; ".join(
        f"if {cmd} 2>/dev/null; then echo {name}=ok; else echo {name}=fail; fi"
        for name, cmd in attempts.items()
    )
    out = Collected()
    code = run_sandboxed(_spec(dirs, script), on_output=out, backend=backend)  # type: ignore[arg-type]
    assert code == 0
    lines = out.text.split()
    assert lines[0] == str(os.geteuid())
    for name in attempts:
        assert f"{name}=fail" in lines, out.text
    assert (inp / "hello.txt").read_text() == "hello\n"
    assert sorted(p.name for p in inp.iterdir()) == ["hello.txt"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_writable_output_lands_on_host(dirs: tuple[Path, Path], backend: str) -> None:
    inp, out_dir = dirs
    cmd = (
        "cat /datasets/input-a/hello.txt > /datasets/output-a/hello2.txt"
        " && echo more >> /datasets/output-a/hello2.txt"
    )
    code = run_sandboxed(_spec(dirs, cmd), on_output=Collected(), backend=backend)  # type: ignore[arg-type]
    assert code == 0
    assert (out_dir / "hello2.txt").read_text() == "hello\nmore\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_root_may_change_its_own_read_only_output_files(dirs: tuple[Path, Path], backend: str) -> None:
    """Like a container's root: a read-only file copied into the output can still be appended to."""
    _, out_dir = dirs
    cmd = (
        "cp /datasets/input-a/hello.txt /datasets/output-a/copy.txt && chmod 444 /datasets/output-a/copy.txt"
        " && echo more >> /datasets/output-a/copy.txt"
    )
    code = run_sandboxed(_spec(dirs, cmd), on_output=Collected(), backend=backend)  # type: ignore[arg-type]
    assert code == 0
    assert (out_dir / "copy.txt").read_text() == "hello\nmore\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_env_is_minimal_plus_spec(
    dirs: tuple[Path, Path], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAKEEP_TEST_LEAK", "secret")
    out = Collected()
    spec = _spec(dirs, "env", env={"FOO": "bar baz"})
    assert run_sandboxed(spec, on_output=out, backend=backend) == 0  # type: ignore[arg-type]
    env = dict(line.split("=", 1) for line in out.text.splitlines() if "=" in line)
    assert env["FOO"] == "bar baz"
    assert env["DATASETS_DIR"] == "/datasets"
    assert env["PATH"] == sandbox.MINIMAL_PATH
    assert "DATAKEEP_TEST_LEAK" not in env


@pytest.mark.parametrize("backend", BACKENDS)
def test_cwd_and_default_scratch(dirs: tuple[Path, Path], backend: str) -> None:
    out = Collected()
    spec = _spec(dirs, "pwd; ls", cwd="/datasets/input-a")
    assert run_sandboxed(spec, on_output=out, backend=backend) == 0  # type: ignore[arg-type]
    assert out.text == "/datasets/input-a\nhello.txt\n"
    out = Collected()
    # The default working directory is writable scratch, gone after the run.
    spec = _spec(dirs, "echo x > scratch.txt && cat scratch.txt && pwd")
    assert run_sandboxed(spec, on_output=out, backend=backend) == 0  # type: ignore[arg-type]
    assert out.text == "x\n/tmp\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_working_directories_that_exist_inside_are_entered(dirs: tuple[Path, Path], backend: str) -> None:
    for cwd in ("/datasets", "/datasets/input-a", "/datasets/output-a", "/tmp", "/usr/bin", "/"):
        out = Collected()
        assert run_sandboxed(_spec(dirs, "pwd", cwd=cwd), on_output=out, backend=backend) == 0  # type: ignore[arg-type]
        assert out.text == cwd + "\n"


@pytest.mark.parametrize("mode", ["namespace", "env"])
@pytest.mark.parametrize(
    ("cwd", "message"),
    [
        ("relative/dir", "must be an absolute path inside the job"),
        ("/datasets/../etc", "must be an absolute path inside the job"),
        ("/datasets/input-a/nope", "/datasets/input-a/nope does not exist inside the job"),
        ("/datasets/nope", "/datasets/nope does not exist inside the job"),
        ("/no-such-top-dir", "/no-such-top-dir does not exist inside the job"),
    ],
)
def test_a_missing_working_directory_is_named_before_the_command_runs(
    dirs: tuple[Path, Path], mode: str, cwd: str, message: str
) -> None:
    if mode == "namespace" and not sandbox_status()[0]:
        pytest.skip("no mount namespace here")
    out = Collected()
    with pytest.raises(InvalidInput, match=message):
        run_sandboxed(_spec(dirs, "touch /tmp/ran", cwd=cwd, mode=mode), on_output=out)
    assert out.chunks == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("command", "expected"),
    [("true", 0), ("exit 3", 3), ("exit 255", 255), ("kill -9 $$", 137), ("exec /nonexistent", 127)],
)
def test_exit_codes(dirs: tuple[Path, Path], backend: str, command: str, expected: int) -> None:
    assert run_sandboxed(_spec(dirs, command), on_output=Collected(), backend=backend) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS)
def test_output_is_streamed_and_merged_in_order(dirs: tuple[Path, Path], backend: str) -> None:
    _, out_dir = dirs
    seen: list[bytes] = []

    def on_output(chunk: bytes) -> None:
        seen.append(chunk)
        if b"first" in b"".join(seen):
            # The command only goes on once we have seen its first line: proof of streaming.
            (out_dir / "go").touch()

    cmd = textwrap.dedent("""\
        echo first
        echo err >&2
        i=0
        while [ ! -e /datasets/output-a/go ]; do
          i=$((i+1)); [ $i -gt 300 ] && { echo NOT-STREAMED; exit 9; }; sleep 0.1
        done
        echo last
    """)
    code = run_sandboxed(_spec(dirs, cmd), on_output=on_output, backend=backend)  # type: ignore[arg-type]
    assert b"".join(seen).decode() == "first\nerr\nlast\n"
    assert code == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_mounts_are_invisible_outside(dirs: tuple[Path, Path], backend: str) -> None:
    inp, out_dir = dirs
    observed: dict[str, object] = {}

    def on_output(chunk: bytes) -> None:
        if b"ready" in chunk and not observed:
            mountinfo = Path("/proc/self/mountinfo").read_text()
            observed["host_mounts_input"] = str(inp) in mountinfo or "/datasets" in mountinfo
            observed["host_has_datasets"] = Path("/datasets").exists()
            (out_dir / "go").touch()

    cmd = (
        "grep -c ' /datasets/input-a ' /proc/self/mountinfo; echo ready; "
        "i=0; while [ ! -e /datasets/output-a/go ] && [ $i -lt 300 ]; do i=$((i+1)); sleep 0.1; done"
    )
    out = Collected()

    def both(chunk: bytes) -> None:
        out(chunk)
        on_output(chunk)

    assert run_sandboxed(_spec(dirs, cmd), on_output=both, backend=backend) == 0  # type: ignore[arg-type]
    assert out.text.startswith("1\n")  # the mount exists inside...
    assert observed == {"host_mounts_input": False, "host_has_datasets": False}  # ...and not outside
    assert not Path("/datasets").exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_command_dies_with_datakeep(dirs: tuple[Path, Path], backend: str, tmp_path: Path) -> None:
    """kill -9 of the process running the sandbox must not leave the command running."""
    _, out_dir = dirs
    mark = f"DK_TEST_MARK={uuid.uuid4().hex}".encode()
    runner = tmp_path / "runner.py"
    runner.write_text(
        textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from datakeep.runner.sandbox import Mount, SandboxSpec, run_sandboxed
        spec = SandboxSpec(command="touch /datasets/output-a/started; exec sleep 120",
                           mounts=[Mount(Path({str(out_dir)!r}), "/datasets/output-a", writable=True)],
                           env={{"DK_TEST_MARK": {mark.decode().split("=")[1]!r}}})
        run_sandboxed(spec, on_output=lambda c: None, backend={backend!r})
    """)
    )
    env = dict(os.environ, PYTHONPATH=str(Path(sandbox.__file__).parents[2]))
    proc = subprocess.Popen([sys.executable, str(runner)], env=env)
    try:
        deadline = time.monotonic() + 30
        while not (out_dir / "started").exists():
            assert proc.poll() is None, "the runner exited before the command started"
            assert time.monotonic() < deadline, "sandboxed command never started"
            time.sleep(0.05)
        assert _holders(mark), "the sleeping command should be found by its environment"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while _holders(mark) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _holders(mark) == []
    finally:
        proc.kill()
        proc.wait()
        for pid in _holders(mark):  # only our own command, found by its unique marker
            os.kill(pid, signal.SIGKILL)


def _holders(mark: bytes) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if mark in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    found.append(int(pid))
            except OSError:
                pass
    return found


# ENV MODE


def test_env_mode_exports_dirs_and_symlinks(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    inp, out_dir = dirs
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    mounts = [
        Mount(inp, "/datasets/input-a"),
        Mount(out_dir, "/datasets/output-a", writable=True),
        Mount(artifacts, "/artifacts", writable=True),
    ]
    cmd = (
        'cat "$DATASETS_DIR/input-a/hello.txt" > "$DATASETS_DIR/output-a/copy.txt"; '
        'echo art > "$ARTIFACTS_DIR/a.txt"; pwd; echo "$FOO"; test -d /datasets || echo no-root-dir'
    )
    out = Collected()
    spec = SandboxSpec(command=cmd, mounts=mounts, env={"FOO": "bar"}, cwd="/datasets/input-a", mode="env")
    assert run_sandboxed(spec, on_output=out) == 0
    assert (out_dir / "copy.txt").read_text() == "hello\n"
    assert (artifacts / "a.txt").read_text() == "art\n"
    assert out.text.splitlines() == [str(inp.resolve()), "bar", "no-root-dir"]


def test_env_mode_works_without_any_namespace_tool(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulates a machine without bwrap/unshare (which cannot be arranged for real here).
    monkeypatch.setattr(sandbox, "_which", lambda name: None)
    out = Collected()
    spec = _spec(dirs, 'ls "$DATASETS_DIR"', mode="env")
    assert run_sandboxed(spec, on_output=out) == 0
    assert out.text.split() == ["input-a", "output-a"]
    with pytest.raises(SandboxUnavailable, match="bwrap is not installed; unshare is not installed"):
        run_sandboxed(_spec(dirs, "true"), on_output=out)
    ok, reason = sandbox_status()
    assert not ok
    assert "bwrap is not installed" in reason


def test_not_linux_names_the_cause(dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulates macOS: the platform cannot be changed for real.
    monkeypatch.setattr(sandbox.platform, "system", lambda: "Darwin")
    with pytest.raises(SandboxUnavailable, match="need Linux; this is Darwin"):
        run_sandboxed(_spec(dirs, "true"), on_output=Collected())


def test_status_reports_a_working_backend() -> None:
    if not (_usable("bwrap") or _usable("unshare")):
        pytest.skip("no namespace tool usable here")
    ok, reason = sandbox_status()
    assert ok
    assert "available via" in reason


# VALIDATION


@pytest.mark.parametrize("target", ["/usr/evil", "/datasets/../etc", "datasets/x", "/", "/tmp/x", "/proc"])
def test_bad_targets_are_refused(tmp_path: Path, target: str) -> None:
    with pytest.raises(InvalidInput):
        run_sandboxed(SandboxSpec("true", [Mount(tmp_path, target)]), on_output=Collected())


def test_overlapping_targets_and_missing_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="overlap"):
        run_sandboxed(
            SandboxSpec("true", [Mount(tmp_path, "/data/a"), Mount(tmp_path, "/data/a/b")]),
            on_output=Collected(),
        )
    with pytest.raises(InvalidInput, match="not a directory"):
        run_sandboxed(SandboxSpec("true", [Mount(tmp_path / "missing", "/data/a")]), on_output=Collected())


def test_run_leaves_no_scratch_behind(dirs: tuple[Path, Path], private_tempdir: Path) -> None:
    spec = _spec(dirs, 'mkdir -p "$TMPDIR/d" && echo x > "$TMPDIR/d/f" && chmod 000 "$TMPDIR/d"', mode="env")
    assert run_sandboxed(spec, on_output=Collected()) == 0
    assert list(private_tempdir.iterdir()) == []


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to become another user"
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_as_an_unprivileged_user(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The argv built for a non-root user works when run as one (uid 65534, no capabilities).

    Python itself is not readable by that user here, so the argv is built in this process (as
    the non-root code path builds it) and run with ``setpriv``.
    """
    base = Path(tempfile.mkdtemp(prefix="datakeep-nonroot-", dir="/tmp"))
    try:
        for sub in ("in", "out", "scratch", "root"):
            (base / sub).mkdir()
        (base / "in" / "a.txt").write_text("hi\n")
        for path in [base, *base.iterdir()]:
            path.chmod(0o777)
        (base / "in" / "a.txt").chmod(0o666)
        monkeypatch.setattr(sandbox.os, "geteuid", lambda: 65534)
        checked = sandbox._check_spec(
            SandboxSpec("x", [Mount(base / "in", "/datasets/in"), Mount(base / "out", "/datasets/out", True)])
        )
        cmd = "cat /datasets/in/a.txt; echo x > /datasets/in/a.txt || echo ro; echo y > /datasets/out/b && echo wrote"
        if backend == "bwrap":
            argv = sandbox._bwrap_argv(
                shutil.which("bwrap") or "bwrap", checked, base / "scratch", "/tmp", cmd
            )
        else:
            argv = sandbox._unshare_argv(
                shutil.which("unshare") or "unshare", checked, base / "scratch", base / "root", "/tmp", cmd
            )
        monkeypatch.undo()
        drop = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]
        done = subprocess.run([*drop, "--", *argv], capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "hi\nro\nwrote\n"
        assert (base / "in" / "a.txt").read_text() == "hi\n"
        assert (base / "out" / "b").stat().st_uid == 65534
    finally:
        shutil.rmtree(base, ignore_errors=True)
