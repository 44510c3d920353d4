"""Running a Gradient-style experiment: datasets first, then every process in its sandbox.

The sequence is what Gradient promised: every S3 dataset is resolved and its ETag/VersionId
checked before anything is downloaded, everything is downloaded and verified before any
command starts, and each process sees its datasets read-only at ``/data/NAME`` and the model
directory writable at ``--modelPath``. A failure at any step stops the run before the
command: nothing half-checked is ever mounted.

Singlenode runs one process. Multinode runs each worker and each parameter server as its own
sandboxed process, at the same time, each with every dataset mounted: shared datasets are
downloaded once for all of them, dynamic ones once per process. The processes find each
other through ``TF_CONFIG``, ``WORKER_HOSTS``/``PS_HOSTS`` (localhost ports), ``TYPE`` and
``INDEX``, the variables Gradient's multinode experiments set.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from datakeep.domain.models import SECRET_MASK
from datakeep.errors import InvalidInput, SandboxUnavailable
from datakeep.experiments.fetch import DEFAULT_WORKERS, RemoteDataset, S3Access, make_client, resolve
from datakeep.experiments.options import DatasetSpec, VolumeKind
from datakeep.experiments.volumes import Placed, SharedStore, dynamic_dataset
from datakeep.runner.sandbox import Mount, SandboxSpec, run_sandboxed, sandbox_status

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from datakeep.storage.transfer import Progress

DEFAULT_MODEL_PATH = "/artifacts"
Kind = Literal["singlenode", "multinode"]
#: Given a ``--datasetId`` dataset, yield a local directory holding that version while in use.
VersionMounter = Callable[[DatasetSpec], AbstractContextManager[Path]]


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact_url(value: Any) -> Any:
    """``https://user:token@host/x`` -> ``https://********@host/x``: a workspace URL may carry a token."""
    return _USERINFO.sub(f"{SECRET_MASK}@", value) if isinstance(value, str) else value


def parse_experiment_env(text: str | None) -> dict[str, str]:
    """``--experimentEnv '{"EPOCHS": 5}'``: a JSON object whose values become strings."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(
            f"--experimentEnv is not valid JSON: {exc}", hint="Use e.g. --experimentEnv '{\"EPOCHS\": 5}'"
        ) from exc
    if not isinstance(data, dict):
        raise InvalidInput("--experimentEnv must be a JSON object of variable names to values")
    env: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
            raise InvalidInput(f"--experimentEnv: {key!r} is not a valid environment variable name")
        env[key] = value if isinstance(value, str) else json.dumps(value)
    return env


@dataclass(frozen=True)
class Process:
    """One process of the experiment: ``main`` (singlenode), ``worker`` or ``ps``."""

    role: str
    index: int
    command: str

    @property
    def label(self) -> str:
        return "main" if self.role == "main" else f"{self.role}-{self.index}"


@dataclass(frozen=True)
class ExperimentPlan:
    """Everything ``experiments run`` was given, checked, with keys still inside ``datasets``."""

    name: str
    kind: Kind
    datasets: tuple[DatasetSpec, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    command: str | None = None
    worker_count: int = 1
    worker_command: str | None = None
    parameter_server_count: int = 0
    parameter_server_command: str | None = None
    model_path: str = DEFAULT_MODEL_PATH
    refresh: bool = False
    mount_mode: str = "namespace"
    #: Recorded as given (projectId, container, machineType, workspaceUrl, modelType...): there is
    #: no cluster to pick a machine or image, so they describe the run rather than change it.
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        path = PurePosixPath(self.model_path)
        if not path.is_absolute() or ".." in path.parts or len(path.parts) < 2:
            raise InvalidInput(f"--modelPath {self.model_path!r} must be an absolute path below /")
        if path.parts[1] == "data":
            raise InvalidInput("--modelPath may not be under /data, where the datasets are mounted")
        if self.kind == "singlenode" and not self.command:
            raise InvalidInput("experiments run singlenode needs --command")
        if self.kind == "multinode":
            if self.worker_count < 1:
                raise InvalidInput("--workerCount must be at least 1")
            if self.parameter_server_count < 0:
                raise InvalidInput("--parameterServerCount cannot be negative")
            if not (self.worker_command or self.command):
                raise InvalidInput("experiments run multinode needs --workerCommand (or --command)")
            if self.parameter_server_count and not (self.parameter_server_command or self.command):
                raise InvalidInput("Parameter servers need --parameterServerCommand (or --command)")

    def processes(self) -> list[Process]:
        if self.kind == "singlenode":
            assert self.command is not None
            return [Process("main", 0, self.command)]
        worker = self.worker_command or self.command or ""
        ps = self.parameter_server_command or self.command or ""
        return [Process("worker", i, worker) for i in range(self.worker_count)] + [
            Process("ps", i, ps) for i in range(self.parameter_server_count)
        ]

    def record(self) -> dict[str, Any]:
        """The run's spec for the catalog: dataset keys redacted, never stored in clear."""
        return {
            "kind": self.kind,
            "command": self.command,
            "workerCount": self.worker_count if self.kind == "multinode" else None,
            "workerCommand": self.worker_command,
            "parameterServerCount": self.parameter_server_count if self.kind == "multinode" else None,
            "parameterServerCommand": self.parameter_server_command,
            "modelPath": self.model_path,
            "experimentEnv": dict(self.env),
            "mountMode": self.mount_mode,
            "datasets": [d.redacted() for d in self.datasets],
            **{k: redact_url(v) if k == "workspaceUrl" else v for k, v in self.info.items() if v is not None},
        }


@dataclass(frozen=True)
class ProcessResult:
    label: str
    exit_code: int
    log_path: Path


@dataclass(frozen=True)
class ExperimentResult:
    exit_code: int
    processes: tuple[ProcessResult, ...]
    datasets: tuple[dict[str, Any], ...]
    artifacts: Path
    warnings: tuple[str, ...]


#: Where a parameter server's wrapper looks for the stop signal, and where the workspace goes.
CONTROL_TARGET = "/datakeep-control"
SHARED_TARGET = "/storage/data"
WORKSPACE_TARGET = "/paperspace"
#: Runs each process of a multinode experiment. The command gets a process group of its own
#: (``setsid``) so that stopping it stops what it started too: in ``env`` mount mode there is
#: no namespace to take them down, and one left running would hold the output pipe open and
#: the run with it. TERM first; KILL for what is left once the command's shell has ended (at
#: most 5 s later). Only that shell is waited for, not the whole group: zombies that the
#: namespace's first process never reaps would keep the group "alive". A parameter server
#: (``DATAKEEP_STOP_WHEN_DONE``) is stopped once the workers are done (``stop``); every
#: process is stopped when the run is interrupted (``abort``). ``DATAKEEP_CONTROL_DIR`` is the
#: sandbox's name for CONTROL_TARGET.
_WRAPPER = """if command -v setsid >/dev/null 2>&1; then
  setsid /bin/sh -c "$DATAKEEP_COMMAND" &
else
  /bin/sh -c "$DATAKEEP_COMMAND" &
fi
child=$!
stop() {
  kill -TERM -"$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null
  tries=0
  while kill -0 "$child" 2>/dev/null && [ "$tries" -lt 50 ]; do sleep 0.1; tries=$((tries + 1)); done
  kill -KILL -"$child" 2>/dev/null || kill -KILL "$child" 2>/dev/null
}
while kill -0 "$child" 2>/dev/null; do
  if [ -e "$DATAKEEP_CONTROL_DIR/abort" ]; then stop; exit 143; fi
  if [ -n "$DATAKEEP_STOP_WHEN_DONE" ] && [ -e "$DATAKEEP_CONTROL_DIR/stop" ]; then stop; exit 0; fi
  sleep 0.2
done
wait "$child"
"""


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def cluster_env(processes: Sequence[Process]) -> dict[str, dict[str, str]]:
    """Per-process variables that let workers and parameter servers find one another."""
    ports = _free_ports(len(processes))
    hosts: dict[str, list[str]] = {"worker": [], "ps": []}
    for proc, port in zip(processes, ports, strict=True):
        if proc.role in hosts:
            hosts[proc.role].append(f"localhost:{port}")
    result: dict[str, dict[str, str]] = {}
    for proc in processes:
        env = {"DATAKEEP_PROCESS": proc.label}
        if proc.role != "main":
            env.update(
                {
                    "TYPE": proc.role,
                    "INDEX": str(proc.index),
                    "WORKER_HOSTS": ",".join(hosts["worker"]),
                    "PS_HOSTS": ",".join(hosts["ps"]),
                    "TF_CONFIG": json.dumps(
                        {
                            "cluster": {k: v for k, v in hosts.items() if v},
                            "task": {"type": proc.role, "index": proc.index},
                        }
                    ),
                }
            )
        result[proc.label] = env
    return result


class ExperimentRunner:
    """Runs one :class:`ExperimentPlan` under ``run_dir`` (logs, volumes, artifacts)."""

    def __init__(
        self,
        run_dir: Path,
        shared_storage: Path,
        *,
        version_mounter: VersionMounter | None = None,
        client_factory: Callable[[S3Access], S3Client] | None = None,
        progress: Callable[[str], Progress] | None = None,
        on_output: Callable[[str, bytes], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        on_started: Callable[[], None] | None = None,
        download_workers: int = DEFAULT_WORKERS,
        sandbox: Callable[..., int] = run_sandboxed,
    ) -> None:
        self.run_dir = run_dir
        self.store = SharedStore(shared_storage)
        self.version_mounter = version_mounter
        self.client_factory = client_factory or (lambda access: make_client(access, workers=download_workers))
        self.progress = progress
        self.on_output = on_output or (lambda _label, _data: None)
        self.warnings: list[str] = []
        self._warn_cb = on_warning
        self.on_started = on_started
        self.download_workers = download_workers
        self.sandbox = sandbox

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            if self._warn_cb:
                self._warn_cb(message)

    @property
    def artifacts(self) -> Path:
        return self.run_dir / "artifacts"

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    def run(self, plan: ExperimentPlan) -> ExperimentResult:
        processes = plan.processes()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.artifacts.mkdir(exist_ok=True)
        for spec in plan.datasets:
            for note in spec.warnings:
                self._warn(note)
        if plan.mount_mode == "namespace" and self.sandbox is run_sandboxed:
            # Downloading gigabytes for a command that cannot start would waste them: ask first.
            ok, why = sandbox_status()
            if not ok:
                raise SandboxUnavailable(
                    why, hint="Use --mountMode env, which exports DATA_DIR instead of mounting"
                )
        workspace = self._workspace(plan)  # one that cannot be fetched fails before any download
        with contextlib.ExitStack() as stack:
            # Registered first, so it runs last: each dynamic volume removes itself, this
            # removes the per-process directories that held them.
            stack.callback(shutil.rmtree, self.run_dir / "volumes", ignore_errors=True)
            clients, remotes = self._check_sources(plan)
            common = self._place_common(plan, clients, remotes, stack)
            per_process = {
                proc.label: self._place_dynamic(plan, proc, clients, remotes, stack) for proc in processes
            }
            records = [p.record() for p in common] + [
                {**p.record(), "process": label} for label, placed in per_process.items() for p in placed
            ]
            envs = cluster_env(processes)
            if self.on_started:
                self.on_started()
            results = self._launch(plan, processes, common, per_process, envs, workspace)
        failed = [r.exit_code for r in results if r.exit_code != 0]
        return ExperimentResult(
            exit_code=failed[0] if failed else 0,
            processes=tuple(results),
            datasets=tuple(records),
            artifacts=self.artifacts,
            warnings=tuple(self.warnings),
        )

    def _workspace(self, plan: ExperimentPlan) -> Path | None:
        """``--workspaceUrl``: a local directory is copied, a git URL cloned, into ``/paperspace``.

        Gradient ran the command in a copy of the workspace; here the copy is the run's own
        (writable, kept with its logs), so the original is never changed.
        """
        url = plan.info.get("workspaceUrl")
        if not url or str(url).lower() == "none":
            return None
        target = self.run_dir / "workspace"
        shutil.rmtree(target, ignore_errors=True)  # a fresh copy, whatever an earlier attempt left
        source = Path(str(url)).expanduser()
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True)
            return target
        done = subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1", "--", str(url), str(target)],
            capture_output=True,
            text=True,
            check=False,
            env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        )
        if done.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            why = redact_url(done.stderr.strip().replace(str(url), redact_url(str(url)))).splitlines()
            raise InvalidInput(
                f"Cannot fetch the workspace {redact_url(str(url))}: {why[-1] if why else 'git clone failed'}",
                hint="Give a local directory or a git URL this machine can clone, or --workspaceUrl none",
            )
        return target

    # DATASETS

    def _check_sources(self, plan: ExperimentPlan) -> tuple[dict[str, S3Client], dict[str, RemoteDataset]]:
        """Resolve every S3 dataset (ETag and VersionId checks) before a single byte is fetched.

        A shared copy pinned by ETag or VersionId that is already complete needs no look at
        the store at all: its name says what it holds.
        """
        clients: dict[str, S3Client] = {}
        remotes: dict[str, RemoteDataset] = {}
        for spec in plan.datasets:
            if spec.uri is None:
                continue
            clients[spec.name] = self.client_factory(S3Access.for_spec(spec))
            pinned = bool(spec.etag or spec.version_id)
            if spec.volume_kind is VolumeKind.SHARED and pinned and self.store.has_complete(spec):
                continue
            remotes[spec.name] = resolve(clients[spec.name], spec)
            for note in remotes[spec.name].spec.warnings:
                self._warn(note)
        return clients, remotes

    def _bar(self, name: str) -> Progress | None:
        return self.progress(name) if self.progress else None

    def _place_common(
        self,
        plan: ExperimentPlan,
        clients: Mapping[str, S3Client],
        remotes: Mapping[str, RemoteDataset],
        stack: contextlib.ExitStack,
    ) -> list[Placed]:
        placed: list[Placed] = []
        for spec in plan.datasets:
            if spec.id is not None:
                if self.version_mounter is None:
                    raise InvalidInput(
                        f"Dataset {spec.name!r}: --datasetId needs the datakeep client",
                        hint="Run through 'datakeep experiments run' or Client().experiments.run",
                    )
                path = stack.enter_context(self.version_mounter(spec))
                placed.append(
                    Placed(
                        spec=spec,
                        path=path,
                        volume="datakeep",
                        reused=True,
                        uri=None,
                        etag=None,
                        version_id=None,
                        size=0,
                    )
                )
            elif spec.volume_kind is VolumeKind.SHARED:
                bar = self._bar(spec.name)
                ctx = self.store.use(
                    remotes[spec.name].spec if spec.name in remotes else spec,
                    client=clients[spec.name],
                    refresh=plan.refresh,
                    progress=bar,
                    workers=self.download_workers,
                    on_warning=self._warn,
                    remote=remotes.get(spec.name),
                )
                placed.append(self._enter(stack, ctx, bar))
        return placed

    def _place_dynamic(
        self,
        plan: ExperimentPlan,
        proc: Process,
        clients: Mapping[str, S3Client],
        remotes: Mapping[str, RemoteDataset],
        stack: contextlib.ExitStack,
    ) -> list[Placed]:
        placed: list[Placed] = []
        for index, spec in enumerate(plan.datasets):
            if spec.uri is None or spec.volume_kind is not VolumeKind.DYNAMIC:
                continue
            remote = remotes[spec.name]
            bar = self._bar(f"{spec.name} ({proc.label})")
            ctx = dynamic_dataset(
                remote.spec,
                remote,
                self.run_dir / "volumes" / proc.label / str(index),
                client=clients[spec.name],
                progress=bar,
                workers=self.download_workers,
                on_warning=self._warn,
            )
            placed.append(self._enter(stack, ctx, bar))
        return placed

    @staticmethod
    def _enter(
        stack: contextlib.ExitStack, ctx: AbstractContextManager[Placed], bar: Progress | None
    ) -> Placed:
        if bar is None:
            return stack.enter_context(ctx)
        with bar:
            return stack.enter_context(ctx)

    # PROCESSES

    def _launch(
        self,
        plan: ExperimentPlan,
        processes: Sequence[Process],
        common: Sequence[Placed],
        per_process: Mapping[str, Sequence[Placed]],
        envs: Mapping[str, Mapping[str, str]],
        workspace: Path | None,
    ) -> list[ProcessResult]:
        results: dict[str, ProcessResult] = {}
        errors: list[BaseException] = []

        control = self.run_dir / "control"
        control.mkdir(exist_ok=True)
        # One process runs in this thread, and an interrupt kills it directly; several run
        # in threads, and are stopped through the control directory.
        together = len(processes) > 1

        def one(proc: Process) -> None:
            mounts = [Mount(p.path, f"/data/{p.spec.name}", writable=False) for p in common]
            # Gradient also showed shared copies under their disambiguated names in team storage.
            mounts += [
                Mount(p.path, f"{SHARED_TARGET}/{p.path.name}", writable=False)
                for p in common
                if p.volume == "shared"
            ]
            mounts += [Mount(p.path, f"/data/{p.spec.name}", writable=False) for p in per_process[proc.label]]
            mounts.append(Mount(self.artifacts, plan.model_path, writable=True))
            env = {**plan.env, **envs[proc.label], "MODEL_PATH": plan.model_path}
            command = proc.command
            if together:
                mounts.append(Mount(control, CONTROL_TARGET, writable=False))
                env["DATAKEEP_COMMAND"] = proc.command
                if proc.role == "ps":
                    env["DATAKEEP_STOP_WHEN_DONE"] = "1"
                command = _WRAPPER
            cwd = None
            if workspace is not None:
                mounts.append(Mount(workspace, WORKSPACE_TARGET, writable=True))
                cwd = WORKSPACE_TARGET
            log_path = self.logs / f"{proc.label}.log"
            with log_path.open("ab") as log:

                def output(chunk: bytes) -> None:
                    log.write(chunk)
                    log.flush()
                    self.on_output(proc.label, chunk)

                try:
                    code = self.sandbox(
                        SandboxSpec(command=command, mounts=mounts, env=env, cwd=cwd, mode=plan.mount_mode),
                        on_output=output,
                    )
                except BaseException as exc:  # reported after every process has ended
                    errors.append(exc)
                    code = 125
            results[proc.label] = ProcessResult(proc.label, code, log_path)

        if not together:
            one(processes[0])
        else:
            threads = {
                p.label: threading.Thread(target=one, args=(p,), name=f"exp-{p.label}") for p in processes
            }
            for thread in threads.values():
                thread.start()
            try:
                for proc in processes:
                    if proc.role != "ps":
                        threads[proc.label].join()
                # Parameter servers serve until the workers are done, as in Gradient: then stop them.
                (control / "stop").touch()
            except BaseException:
                # Ctrl-C or SIGTERM: stop every process and all it started, rather than wait for them.
                (control / "abort").touch()
                raise
            finally:
                for thread in threads.values():
                    thread.join()
        if errors:
            raise errors[0]
        return [results[p.label] for p in processes]
