"""Run one command with dataset directories mounted where it expects them, and nowhere else.

Gradient ran jobs in containers on its cluster, with dataset versions at ``/datasets/NAME``.
datakeep has no cluster, so it gives the command the same paths with a private mount
namespace on the host:

``mode="namespace"`` (the default)
    The command gets its own mount (and PID, IPC, UTS) namespace. Its root is a fresh tmpfs
    holding read-only binds of the host's top-level directories, a private ``/tmp`` and
    ``/proc`` and a minimal ``/dev``. Each first path component of the targets (``/datasets``,
    ``/data``, ``/artifacts``) is a tmpfs made *inside* the namespace, so nothing is ever
    created on the host's ``/``; the host sees none of these mounts. Read-only mounts are
    read-only bind mounts and every capability is dropped before the command starts, so even
    uid 0 inside cannot remount them writable. Only the three file capabilities a container's
    root has (``CAP_CHOWN``, ``CAP_DAC_OVERRIDE``, ``CAP_FOWNER``) are kept: root may then append to a
    read-only file it copied into its output, as in Docker, while a read-only mount still refuses
    every write (the kernel checks the mount before any permission). bubblewrap (``bwrap``)
    builds the namespace; where it is missing, ``unshare`` + ``chroot`` + ``setpriv`` do.

``mode="env"`` (the documented alternative where no namespace can be made)
    No mounts at all. For each distinct first path component of the targets, a host directory
    is made holding one symlink per mount (``<run>/datasets/NAME -> <source>``), and its path
    is exported as ``<COMPONENT>_DIR`` (``DATASETS_DIR``, ``DATA_DIR``, ``ARTIFACTS_DIR``). A
    target that is a whole component (``/artifacts``) exports the source itself. Commands must
    use the variables instead of literal ``/datasets/...`` paths. Read-only is NOT enforced by
    the kernel here (cached files are mode 0444, which root ignores): use it only where the
    command is trusted not to write to its inputs.

In both modes the same ``<COMPONENT>_DIR`` variables are exported (in namespace mode they hold
the in-sandbox paths), so a command written against them runs unchanged in either mode.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from datakeep.cache.store import remove_tree
from datakeep.errors import InvalidInput, SandboxUnavailable

Backend = Literal["auto", "bwrap", "unshare"]

MINIMAL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Top-level host directories a mount target may not shadow: the command needs them to run.
_SYSTEM_TOPS = frozenset(
    {
        "bin",
        "boot",
        "dev",
        "etc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "root",
        "run",
        "sbin",
        "sys",
        "tmp",
        "usr",
        "var",
    }
)
#: Host entries the sandbox root never takes from the host (it makes its own).
_OWN_TOPS = frozenset({"proc", "dev", "tmp"})
_DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
_READ_CHUNK = 65536


@dataclass(frozen=True)
class Mount:
    source: Path  # host directory
    target: str  # absolute path inside the sandbox: /datasets/NAME, /data/NAME, /artifacts
    writable: bool = False


@dataclass(frozen=True)
class SandboxSpec:
    command: str  # run as ["/bin/sh", "-c", command]
    mounts: Sequence[Mount] = field(default_factory=tuple)
    env: Mapping[str, str] = field(default_factory=dict)  # added to a minimal env (PATH, HOME, LANG)
    cwd: str | None = None  # inside the sandbox; default: a writable scratch dir
    mode: str = "namespace"  # "namespace" or "env"


# VALIDATION


def _check_spec(spec: SandboxSpec) -> list[tuple[Mount, PurePosixPath]]:
    """Refuse targets that would shadow system dirs or nest: nesting would make bwrap create
    mount points inside a host directory bound earlier, i.e. write to the host."""
    if spec.mode not in ("namespace", "env"):
        raise InvalidInput(f"Unknown mount mode {spec.mode!r}", hint="Use 'namespace' or 'env'.")
    if spec.cwd is not None:
        check_working_directory(spec.cwd)
    checked: list[tuple[Mount, PurePosixPath]] = []
    for mount in spec.mounts:
        target = PurePosixPath(mount.target)
        if not target.is_absolute() or ".." in target.parts or str(target) != mount.target.rstrip("/"):
            raise InvalidInput(f"Mount target {mount.target!r} must be an absolute, normalized path")
        if len(target.parts) < 2 or target.parts[1] in _SYSTEM_TOPS:
            raise InvalidInput(f"Mount target {mount.target!r} would hide a system directory")
        if not mount.source.is_dir():
            raise InvalidInput(f"Mount source {mount.source} is not a directory")
        checked.append((mount, target))
    targets = [t for _, t in checked]
    for i, a in enumerate(targets):
        for b in targets[i + 1 :]:
            if a == b or a in b.parents or b in a.parents:
                raise InvalidInput(f"Mount targets {a} and {b} overlap")
    return checked


def _tops(checked: Sequence[tuple[Mount, PurePosixPath]]) -> dict[str, bool]:
    """First components of the targets; True when some target is the whole component."""
    tops: dict[str, bool] = {}
    for _, target in checked:
        top = target.parts[1]
        tops[top] = tops.get(top, False) or len(target.parts) == 2
    return tops


def _dir_var(top: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in top).upper() + "_DIR"


def _base_env(home: str, extra: Mapping[str, str]) -> dict[str, str]:
    env = {"PATH": MINIMAL_PATH, "HOME": home, "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def check_working_directory(cwd: str) -> PurePosixPath:
    """A working directory names a place inside the job, so it must be absolute there."""
    wanted = PurePosixPath(cwd)
    if not wanted.is_absolute() or ".." in wanted.parts:
        raise InvalidInput(
            f"The working directory {cwd!r} must be an absolute path inside the job",
            hint="For example --workingDirectory=/datasets/NAME",
        )
    return wanted


def _check_cwd(cwd: str, checked: Sequence[tuple[Mount, PurePosixPath]], scratch: Path) -> None:
    """Refuse a working directory the sandbox will not have, before starting it.

    bwrap or chroot would otherwise fail to enter it with a terse line in the job's log; the
    layout is known here, so the user gets a message naming the directory instead.
    """
    wanted = check_working_directory(cwd)
    inside = _in_mount(wanted, checked)
    if inside is not None:
        exists = inside[0].source.joinpath(*inside[1]).is_dir()
    elif len(wanted.parts) > 1 and wanted.parts[1] in _tops(checked):
        # A tmpfs made for the mounts: it holds only the mount points and their parents.
        exists = any(wanted in target.parents for _, target in checked)
    elif wanted.parts[1:2] == ("tmp",):
        exists = scratch.joinpath(*wanted.parts[2:]).is_dir()
    else:
        exists = Path(cwd).is_dir()  # the host's own directories, bound read-only
    if not exists:
        raise _missing_cwd(cwd)


def _in_mount(
    wanted: PurePosixPath, checked: Sequence[tuple[Mount, PurePosixPath]]
) -> tuple[Mount, tuple[str, ...]] | None:
    """The mount ``wanted`` lies in, with the path components below its target."""
    for mount, target in checked:
        if wanted == target or target in wanted.parents:
            return mount, wanted.parts[len(target.parts) :]
    return None


def _missing_cwd(cwd: str) -> InvalidInput:
    return InvalidInput(
        f"The working directory {cwd} does not exist inside the job",
        hint="Use a directory that does, such as /datasets/NAME or /tmp",
    )


# NAMESPACE BACKENDS


#: What root keeps inside: enough to manage its own files, nothing that reaches a mount.
_FILE_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER")
_SETPRIV_CAPS = ",".join("+" + cap.removeprefix("CAP_").lower() for cap in _FILE_CAPS)


def _host_entries(skip: set[str]) -> list[os.DirEntry[str]]:
    with os.scandir("/") as it:
        return sorted((e for e in it if e.name not in skip), key=lambda e: e.name)


def _bwrap_argv(
    bwrap: str, checked: Sequence[tuple[Mount, PurePosixPath]], scratch: Path, cwd: str, command: str
) -> list[str]:
    tops = _tops(checked)
    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if os.geteuid() == 0:
        # Without a user namespace bwrap keeps root's capabilities unless told otherwise.
        argv += ["--cap-drop", "ALL"]
        for cap in _FILE_CAPS:
            argv += ["--cap-add", cap]
    for entry in _host_entries(set(_OWN_TOPS) | set(tops)):
        path = "/" + entry.name
        if entry.is_symlink():
            argv += ["--symlink", os.readlink(path), path]
        else:
            argv += ["--ro-bind-try", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--bind", str(scratch), "/tmp"]
    for top, whole in tops.items():
        if not whole:
            argv += ["--tmpfs", "/" + top]
    for mount, target in sorted(checked, key=lambda mt: len(mt[1].parts)):
        argv += ["--bind" if mount.writable else "--ro-bind", str(mount.source.resolve()), str(target)]
    for top, whole in tops.items():
        if not whole:
            argv += ["--remount-ro", "/" + top]
    argv += ["--chdir", cwd, "--", "/bin/sh", "-c", command]
    return argv


def _unshare_argv(
    unshare: str,
    checked: Sequence[tuple[Mount, PurePosixPath]],
    scratch: Path,
    newroot: Path,
    cwd: str,
    command: str,
) -> list[str]:
    """The same layout as bwrap's, built by a shell script inside ``unshare`` then ``chroot``."""
    q = shlex.quote
    root = str(newroot)
    tops = _tops(checked)

    def ro_remount(path: str) -> str:
        # In a user namespace the source's nosuid/nodev/noexec are locked and must be repeated.
        opts = ["ro", "ro,nosuid,nodev", "ro,nosuid,nodev,noexec"]
        return " || ".join(f"mount -o remount,bind,{o} {q(path)} 2>/dev/null" for o in opts)

    lines = ["set -e", f"mount -t tmpfs -o mode=0755 datakeep-root {q(root)}"]
    for entry in _host_entries(set(_OWN_TOPS) | set(tops)):
        host = "/" + entry.name
        inner = root + host
        if entry.is_symlink():
            lines.append(f"ln -s {q(os.readlink(host))} {q(inner)}")
            continue
        lines.append(f"mkdir {q(inner)}" if entry.is_dir() else f"touch {q(inner)}")
        lines.append(f"mount --rbind {q(host)} {q(inner)} && ({ro_remount(inner)}) || true")
    lines += [f"mkdir {q(root + '/proc')}", f"mount -t proc proc {q(root + '/proc')}"]
    dev = root + "/dev"
    lines += [f"mkdir {q(dev)}", f"mount -t tmpfs -o mode=0755 datakeep-dev {q(dev)}"]
    for node in _DEV_NODES:
        lines += [f"touch {q(dev + '/' + node)}", f"mount --bind /dev/{node} {q(dev + '/' + node)}"]
    lines += [
        f"ln -s /proc/self/fd {q(dev + '/fd')}",
        f"ln -s /proc/self/fd/0 {q(dev + '/stdin')}",
        f"ln -s /proc/self/fd/1 {q(dev + '/stdout')}",
        f"ln -s /proc/self/fd/2 {q(dev + '/stderr')}",
        f"mkdir {q(dev + '/shm')}",
        f"mount -t tmpfs datakeep-shm {q(dev + '/shm')}",
        f"mkdir {q(root + '/tmp')}",
        f"mount --bind {q(str(scratch))} {q(root + '/tmp')}",
    ]
    for top, whole in tops.items():
        lines.append(f"mkdir -p {q(root + '/' + top)}")
        if not whole:
            lines.append(f"mount -t tmpfs -o mode=0755 datakeep-{top} {q(root + '/' + top)}")
    for mount, target in sorted(checked, key=lambda mt: len(mt[1].parts)):
        inner = root + str(target)
        lines += [f"mkdir -p {q(inner)}", f"mount --bind {q(str(mount.source.resolve()))} {q(inner)}"]
        if not mount.writable:
            lines.append(
                f"{ro_remount(inner)} || {{ echo 'datakeep: cannot make {target} read-only' >&2; exit 125; }}"
            )
    for top, whole in tops.items():
        if not whole:
            lines.append(f"mount -o remount,bind,ro {q(root + '/' + top)}")
    # A bind remount changes only this mount point's flags: allowed in a user namespace too.
    lines.append(f"mount -o remount,bind,ro {q(root)}")
    # This shell is PID 1 of the new PID namespace, which ignores even SIGKILL from inside; the
    # command runs as its child so that ``kill -9 $$`` and signal exit codes behave normally.
    inner_cmd = 'cd "$1" || exit 126; /bin/sh -c "$2"; exit $?'
    lines.append(
        f"exec chroot {q(root)} setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all,{_SETPRIV_CAPS} "
        f"--no-new-privs -- /bin/sh -c {q(inner_cmd)} datakeep {q(cwd)} {q(command)}"
    )
    flags = ["--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--ipc", "--uts"]
    if os.geteuid() != 0:
        flags.insert(0, "--map-root-user")
    return [unshare, *flags, "/bin/sh", "-c", "\n".join(lines)]


def _die_with_parent() -> None:
    """Runs in the child before exec: if datakeep is killed (even with -9), so is the command."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _stream(
    argv: list[str], env: Mapping[str, str], cwd: str | None, on_output: Callable[[bytes], None]
) -> int:
    """Run ``argv`` with stdout and stderr merged in one pipe, so their order is kept."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env),
        cwd=cwd,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads touched before exec
        close_fds=True,
    )
    assert proc.stdout is not None
    try:
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, _READ_CHUNK):
            on_output(chunk)
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    # A signal death is reported as a shell would: 128 + the signal number.
    return 128 - code if code < 0 else code


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", MINIMAL_PATH) + ":" + MINIMAL_PATH)


def _probe(backend: str, tool: str) -> tuple[bool, str]:
    """Make a real, empty namespace: the only reliable way to learn whether it works here."""
    scratch = Path(tempfile.mkdtemp(prefix="datakeep-probe-"))
    newroot = Path(tempfile.mkdtemp(prefix="datakeep-root-"))
    try:
        if backend == "bwrap":
            argv = _bwrap_argv(tool, [], scratch, "/", "exit 0")
        else:
            argv = _unshare_argv(tool, [], scratch, newroot, "/", "exit 0")
        try:
            done = subprocess.run(
                argv, capture_output=True, env=_base_env("/tmp", {}), timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{backend}: {exc}"
        if done.returncode == 0:
            return True, f"{backend} ({tool})"
        why = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        return False, f"{backend} failed: {why[-1] if why else f'exit status {done.returncode}'}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):
            newroot.rmdir()


_CAP_SYS_ADMIN = 21


def _has_sys_admin() -> bool:
    """Whether this process holds CAP_SYS_ADMIN, which root needs to make a mount namespace."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> _CAP_SYS_ADMIN & 1)
    return True  # unknown: do not blame it


def _cause_and_fix(missing_bwrap: bool) -> tuple[str, str]:
    """Why the probes failed, as far as it can be told, and the fixes that apply here.

    Root in a container started without CAP_SYS_ADMIN (docker's default) is the usual case
    where "run as root" would be no help, so it is named.
    """
    cause = ""
    fixes = ["install bubblewrap (apt-get install bubblewrap)"] if missing_bwrap else []
    if os.geteuid() == 0:
        if not _has_sys_admin():
            cause = "; datakeep runs as root but without CAP_SYS_ADMIN (a container started without it?)"
            fixes.append("give the container CAP_SYS_ADMIN")
    else:
        for knob in ("/proc/sys/user/max_user_namespaces", "/proc/sys/kernel/unprivileged_userns_clone"):
            with contextlib.suppress(OSError):
                if Path(knob).read_text().strip() == "0":
                    cause = (
                        f"; unprivileged user namespaces are disabled ({knob} is 0) and datakeep is not root"
                    )
                    break
        fixes.append("run as root or enable user namespaces")
    fixes.append("use --mountMode=env")
    text = ", ".join(fixes[:-1]) + " or " + fixes[-1] if len(fixes) > 1 else fixes[0]
    return cause, text[0].upper() + text[1:] + "."


_WORKING: dict[str, str] = {}


def _choose_backend(backend: Backend) -> tuple[str, str, str]:
    """(backend, tool path, reason); raises SandboxUnavailable naming every cause found."""
    if platform.system() != "Linux":
        raise SandboxUnavailable(
            f"Mount namespaces need Linux; this is {platform.system()}",
            hint="Use --mountMode=env, which exports DATASETS_DIR instead of mounting.",
        )
    reasons: list[str] = []
    order = ["bwrap", "unshare"] if backend == "auto" else [backend]
    for name in order:
        tool = _which(name)
        if tool is None:
            reasons.append(f"{name} is not installed")
            continue
        if _WORKING.get(name) == tool:
            return name, tool, f"{name} ({tool})"
        ok, reason = _probe(name, tool)
        if ok:
            _WORKING[name] = tool
            return name, tool, reason
        reasons.append(reason)
    cause, fix = _cause_and_fix(missing_bwrap=_which("bwrap") is None)
    raise SandboxUnavailable("Cannot make a mount namespace here: " + "; ".join(reasons) + cause, hint=fix)


def require_sandbox() -> str:
    """Check, before any work, that a namespace can be made; raise naming the cause if not."""
    _, _, reason = _choose_backend("auto")
    return reason


def sandbox_status() -> tuple[bool, str]:
    """Whether a mount namespace can be made here, and a reason that names the cause."""
    try:
        _, _, reason = _choose_backend("auto")
    except SandboxUnavailable as exc:
        return False, exc.one_line()
    return True, f"mount namespaces available via {reason}"


# ENV MODE


def _env_layout(checked: Sequence[tuple[Mount, PurePosixPath]], workdir: Path) -> dict[str, str]:
    """Build ``<workdir>/<top>/<rest> -> source`` symlinks; return the ``*_DIR`` variables."""
    variables: dict[str, str] = {}
    for mount, target in checked:
        top = target.parts[1]
        if len(target.parts) == 2:
            variables[_dir_var(top)] = str(mount.source.resolve())
            continue
        link = workdir.joinpath(*target.parts[1:])
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(mount.source.resolve(), target_is_directory=True)
        variables[_dir_var(top)] = str(workdir / top)
    return variables


def _env_cwd(
    cwd: str | None, checked: Sequence[tuple[Mount, PurePosixPath]], workdir: Path, scratch: Path
) -> str:
    if cwd is None:
        return str(scratch)
    wanted = PurePosixPath(cwd)
    inside = _in_mount(wanted, checked)
    if inside is not None:
        return str(inside[0].source.resolve().joinpath(*inside[1]))
    if len(wanted.parts) > 1 and wanted.parts[1] in _tops(checked):
        return str(workdir.joinpath(*wanted.parts[1:]))
    return cwd


# PUBLIC ENTRY POINT


def run_sandboxed(spec: SandboxSpec, *, on_output: Callable[[bytes], None], backend: Backend = "auto") -> int:
    """Run ``spec.command`` and return its exit status (128+N if killed by signal N).

    Output (stdout and stderr merged, in order) goes to ``on_output`` chunk by chunk as the
    command writes it, so a caller can both show it live and keep it. ``backend`` forces one
    namespace tool; ``auto`` prefers bubblewrap.
    """
    checked = _check_spec(spec)
    workdir = Path(tempfile.mkdtemp(prefix="datakeep-run-"))
    scratch = workdir / "tmp"
    scratch.mkdir()
    scratch.chmod(0o1777)
    try:
        if spec.mode == "env":
            variables = _env_layout(checked, workdir)
            env = _base_env(str(scratch), variables)
            env["TMPDIR"] = str(scratch)
            env.update(spec.env)
            cwd = _env_cwd(spec.cwd, checked, workdir, scratch)
            if not Path(cwd).is_dir():
                raise _missing_cwd(spec.cwd or cwd)
            return _stream(["/bin/sh", "-c", spec.command], env, cwd, on_output)

        name, tool, _ = _choose_backend(backend)
        variables = {_dir_var(top): "/" + top for top in _tops(checked)}
        env = _base_env("/tmp", variables)
        env.update(spec.env)
        cwd = spec.cwd or "/tmp"
        _check_cwd(cwd, checked, scratch)
        if name == "bwrap":
            argv = _bwrap_argv(tool, checked, scratch, cwd, spec.command)
        else:
            newroot = workdir / "root"
            newroot.mkdir()
            argv = _unshare_argv(tool, checked, scratch, newroot, cwd, spec.command)
        return _stream(argv, env, None, on_output)
    finally:
        remove_tree(workdir)
