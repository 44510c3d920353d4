"""Jobs: run a command over dataset versions, commit what it writes, and remember how.

``--dataset NAME@REF`` follows Gradient (reference §4.1): a REF with ``:`` is an input, mounted
read-only at ``/datasets/NAME``; a bare dataset ID is an output, mounted writable and empty at
``/datasets/NAME``. Each output gets an *uncommitted* version before the command starts, so
whatever happens (non-zero exit, Ctrl-C, ``kill -9`` of datakeep itself) the catalog already
says which job owned it and nothing the job wrote is lost: on exit 0 the outputs are uploaded
and committed (becoming ``latest``); otherwise they are uploaded and left uncommitted.

Inputs come through the shared-storage cache, pinned for the job's lifetime, so eviction can
never pull a running job's data from under it. Lineage (inputs pinned to version IDs at start,
command, redacted environment, outputs) lives in the ``jobs`` and ``job_datasets`` tables.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from datakeep.cache.owners import Owner
from datakeep.cache.store import remove_tree
from datakeep.catalog import schema as t
from datakeep.catalog.store import _aware, utcnow
from datakeep.domain import ids
from datakeep.domain.models import SECRET_MASK, DatasetMount, Job, Version, _Serializable
from datakeep.domain.refs import parse_ref
from datakeep.errors import DatakeepError, InvalidInput, JobFailed, JobNotFound, VersionNotCommitted
from datakeep.runner.sandbox import (
    Mount,
    SandboxSpec,
    check_working_directory,
    require_sandbox,
    run_sandboxed,
)
from datakeep.services.cache import CacheService
from datakeep.services.context import Context

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "Pending", "Running", "Succeeded", "Failed", "Cancelled"
FINISHED_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
MOUNT_MODES = ("namespace", "env")
#: Environment variable names whose values are never stored (matched on the upper-cased name).
_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL", "AUTH", "PRIVATE")
_KIND = "job"

OnOutput = Callable[[bytes], None]
OnNotice = Callable[[str], None]


def _container_engine() -> str | None:
    """A container engine that can run something now: podman needs no daemon, docker does
    (its client alone, without a reachable daemon, runs nothing)."""
    if shutil.which("podman"):
        return "podman"
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return "docker" if done.returncode == 0 else None


def _container_notice(container: str) -> str:
    engine = _container_engine()
    if engine is None:
        return (
            "No container engine is running here (neither podman nor a docker daemon): "
            f"--container={container} is recorded and the command runs on the host."
        )
    return (
        f"--container={container} is recorded; datakeep runs the command on the host in its own mount "
        f"namespace, not in {engine}."
    )


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment as it may be stored and shown: likely secrets masked."""
    return {
        k: (SECRET_MASK if any(w in k.upper() for w in _SECRET_WORDS) and v else v) for k, v in env.items()
    }


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """``K=V`` strings, as ``--env`` takes them."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if (
            not sep
            or not key
            or not (key[0].isalpha() or key[0] == "_")
            or not key.replace("_", "a").isalnum()
        ):
            raise InvalidInput(f"Invalid --env {pair!r}", hint="Use NAME=VALUE, e.g. --env EPOCHS=3")
        env[key] = value
    return env


@dataclass(frozen=True)
class _Request:
    name: str
    ref: str
    dataset_id: str
    output: bool
    version: Version | None = None  # inputs: resolved at start


def parse_dataset_option(value: str) -> tuple[str, str]:
    """``NAME@REF`` split at the first ``@`` (Gradient's message when it is not)."""
    name, sep, ref = value.partition("@")
    if not sep or not name or not ref:
        raise InvalidInput(
            f"Dataset '{value}' must have an @ (ex: images@dsr8k5qzn401lb5:klfoyy9)",
            hint="Inputs are NAME@ID:VERSION (or :TAG, :latest); outputs are NAME@ID",
        )
    if name in (".", "..") or "/" in name or "\0" in name or not name.isprintable():
        raise InvalidInput(
            f"Dataset name {name!r} cannot be a directory under /datasets",
            hint="Use a plain name without '/', such as input-a",
        )
    return name, ref


@dataclass(frozen=True)
class LineageNode(_Serializable):
    """A version in the lineage graph, with the job that links it to the next level.

    Walking up, ``job`` produced ``ref`` and ``next`` are that job's inputs. Walking down,
    ``next`` are the versions produced by jobs that read ``ref``, each with its own ``job``.
    """

    ref: str
    job: str | None = None
    command: str | None = None
    next: list[LineageNode] = field(default_factory=list)
    truncated: bool = False
    #: "committed", "uncommitted" (a failed or running job's output) or "deleted" since.
    state: str = "committed"


@dataclass(frozen=True)
class Lineage(_Serializable):
    ref: str
    upstream: LineageNode
    downstream: LineageNode


class JobsService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @property
    def _catalog(self) -> Any:
        return self._ctx.catalog

    @property
    def _team(self) -> str:
        return self._ctx.team_id

    # CREATE

    def create(
        self,
        *,
        command: str,
        datasets: Sequence[str] = (),
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        working_directory: str | None = None,
        cluster_id: str | None = None,
        machine_type: str | None = None,
        project_id: str | None = None,
        container: str | None = None,
        mount_mode: str = "namespace",
        on_output: OnOutput | None = None,
        on_notice: OnNotice | None = None,
        on_created: Callable[[str], None] | None = None,
    ) -> Job:
        """Run ``command`` to completion and return the finished job (see the module docstring).

        A non-zero exit is not an exception: the job comes back ``Failed`` with its
        ``exit_code``. ``on_output`` receives the command's output as it is produced (it is
        also kept in the job's log); ``on_notice`` receives datakeep's own remarks;
        ``on_created`` receives the job ID as soon as the job is recorded.
        """
        if not command or not command.strip():
            raise InvalidInput("The job has no command", hint="Pass --command")
        if mount_mode not in MOUNT_MODES:
            raise InvalidInput(f"Unknown mount mode {mount_mode!r}", hint="Use --mountMode=namespace or env")
        if working_directory is not None:
            check_working_directory(working_directory)
        env = dict(env or {})
        requests = self._resolve(datasets)
        if mount_mode == "namespace":
            require_sandbox()  # fail before creating anything, naming the cause
        notices = [_container_notice(container)] if container else []

        job_id = ids.new_job_id()
        run_dir = self._ctx.settings.runs_path / "jobs" / job_id
        (run_dir / "outputs").mkdir(parents=True)
        log_path = run_dir / "output.log"
        log_path.touch()
        spec = {
            "env": redact_env(env),
            "working_directory": working_directory,
            "cluster_id": cluster_id,
            "machine_type": machine_type,
            "project_id": project_id,
            "container": container,
            "mount_mode": mount_mode,
            "notes": notices,
            "owner": Owner.me().tag,
        }
        self._record(job_id, name, command, spec, log_path, requests)
        if on_created is not None:
            on_created(job_id)
        for notice in notices:
            if on_notice is not None:
                on_notice(notice)  # once per job
        outputs = self._open_outputs(job_id, requests)

        cache = CacheService(self._ctx)
        pinned: list[Version] = []
        exit_code: int | None = None
        state = FAILED
        try:
            mounts: list[Mount] = []
            for r in requests:
                if r.output:
                    out_dir = run_dir / "outputs" / r.name
                    out_dir.mkdir()
                    mounts.append(Mount(out_dir, f"/datasets/{r.name}", writable=True))
                else:
                    assert r.version is not None
                    source = cache.materialize_version(r.version, pin=job_id)
                    pinned.append(r.version)
                    mounts.append(Mount(source, f"/datasets/{r.name}"))
            self._set(job_id, state=RUNNING, started=utcnow())
            with open(log_path, "ab", buffering=0) as log:

                def output(chunk: bytes) -> None:
                    log.write(chunk)
                    if on_output is not None:
                        on_output(chunk)

                exit_code = run_sandboxed(
                    SandboxSpec(
                        command=command, mounts=mounts, env=env, cwd=working_directory, mode=mount_mode
                    ),
                    on_output=output,
                )
            state = SUCCEEDED if exit_code == 0 else FAILED
        except KeyboardInterrupt:
            state = CANCELLED
            raise
        finally:
            try:
                self._save_outputs(run_dir, outputs, commit=state == SUCCEEDED)
            except Exception:
                state = FAILED
                raise
            finally:
                for version in pinned:
                    cache.unpin(version, job_id)
                self._set(job_id, state=state, exit_code=exit_code, finished=utcnow())
        return self.get(job_id)

    def _record(
        self,
        job_id: str,
        name: str | None,
        command: str,
        spec: dict[str, Any],
        log_path: Path,
        requests: Sequence[_Request],
    ) -> None:
        """The job and its inputs, pinned to version IDs, in one transaction: lineage from the start."""
        with self._catalog.begin() as c:
            c.execute(
                insert(t.jobs).values(
                    id=job_id,
                    team_id=self._team,
                    kind=_KIND,
                    name=name,
                    command=command,
                    state=PENDING,
                    spec=spec,
                    log_path=str(log_path),
                    pid=os.getpid(),
                    host=Owner.me().host,
                    created=utcnow(),
                )
            )
            for r in requests:
                c.execute(
                    insert(t.job_datasets).values(
                        job_id=job_id,
                        name=r.name,
                        dataset_id=r.dataset_id,
                        ref=r.ref,
                        version=r.version.version if r.version else None,
                        output=r.output,
                    )
                )

    def _open_outputs(self, job_id: str, requests: Sequence[_Request]) -> dict[str, str]:
        """An uncommitted version per output (``NAME -> ds:ver``), made before the command runs
        so that a crash at any later point leaves them findable, and owned by the job."""
        outputs: dict[str, str] = {}
        for r in requests:
            if not r.output:
                continue
            parent = self._catalog.latest_version(self._team, r.dataset_id)
            version = self._catalog.insert_version(
                self._team,
                r.dataset_id,
                message=f"Output of job {job_id}",
                parent=parent.version if parent else None,
                job_id=job_id,
            )
            outputs[r.name] = version.ref
            with self._catalog.begin() as c:
                c.execute(
                    update(t.job_datasets)
                    .where(t.job_datasets.c.job_id == job_id, t.job_datasets.c.name == r.name)
                    .values(version=version.version)
                )
        return outputs

    def _resolve(self, datasets: Sequence[str]) -> list[_Request]:
        requests: list[_Request] = []
        seen: set[str] = set()
        for value in datasets:
            name, ref_text = parse_dataset_option(value)
            if name in seen:
                raise InvalidInput(
                    f"Two datasets are named {name!r}", hint="Each NAME@REF needs its own NAME"
                )
            seen.add(name)
            ref = parse_ref(ref_text, option="--dataset")
            if ref.selector is None:
                self._catalog.get_dataset(self._team, ref.dataset_id)  # must exist
                requests.append(_Request(name, ref_text, ref.dataset_id, output=True))
                continue
            version = self._catalog.resolve(self._team, ref)
            if not version.is_committed:
                raise VersionNotCommitted(
                    f"Input {name}@{ref_text} is not committed, so a job cannot rely on it",
                    hint=f"Commit it first: datakeep datasets versions commit --id={version.ref}",
                )
            requests.append(_Request(name, ref_text, ref.dataset_id, output=False, version=version))
        return requests

    def _save_outputs(self, run_dir: Path, outputs: Mapping[str, str], *, commit: bool) -> None:
        """Upload each output dir (``NAME -> ds:ver``) into its version; commit only after a clean exit.

        Every output is uploaded before any is committed, so a job whose output cannot be
        stored (a FIFO, a link out of it) commits none of them. A directory is removed once its
        version holds it, so finished jobs keep no second copy; one that failed stays on disk.
        """
        from datakeep.services.files import FilesService
        from datakeep.services.versions import VersionsService

        files = FilesService(self._ctx)
        failed: list[JobFailed] = []
        for name, ref in outputs.items():
            out_dir = run_dir / "outputs" / name
            try:
                if out_dir.is_dir() and any(out_dir.iterdir()):
                    files.put(ref, source_paths=[str(out_dir) + os.sep])
            except DatakeepError as exc:
                failed.append(
                    JobFailed(
                        f"Output {name} ({ref}) cannot be saved: {exc.message.rstrip('.')}",
                        exit_code=1,
                        hint=f"Its files are kept in {out_dir}; fix them, then add them with: "
                        f"datakeep datasets files put --id={ref} --source-path={out_dir}/",
                    )
                )
                continue
            remove_tree(out_dir)
        with contextlib.suppress(OSError):
            (run_dir / "outputs").rmdir()
        if failed:
            raise failed[0]
        if commit:
            versions = VersionsService(self._ctx)
            for ref in outputs.values():
                versions.commit(ref)

    def _set(self, job_id: str, **values: Any) -> None:
        with self._catalog.begin() as c:
            c.execute(update(t.jobs).where(t.jobs.c.id == job_id).values(**values))

    # READ

    def _reconcile(self, row: Any) -> Any:
        """A job still 'Running' whose datakeep process died (kill -9, reboot) is marked Failed.

        What its command had written is then put into its uncommitted output versions, as a
        failed job's would have been, so it can be inspected there. Only the process whose
        update flips the state does this, so two readers never upload it twice.
        """
        if row.state not in (PENDING, RUNNING):
            return row
        owner = Owner.from_tag(str((row.spec or {}).get("owner", "")))
        if owner is None or owner.is_alive() is not False:
            return row
        note = "interrupted: the datakeep process running it died; outputs are left uncommitted"
        spec = dict(row.spec or {})
        spec["notes"] = [*spec.get("notes", []), note]
        with self._catalog.begin() as c:
            flipped = c.execute(
                update(t.jobs)
                .where(t.jobs.c.id == row.id, t.jobs.c.state.in_([PENDING, RUNNING]))
                .values(state=FAILED, spec=spec, finished=utcnow())
            ).rowcount
            outputs = {
                r.name: f"{r.dataset_id}:{r.version}"
                for r in c.execute(
                    select(t.job_datasets).where(
                        t.job_datasets.c.job_id == row.id, t.job_datasets.c.output.is_(True)
                    )
                )
                if r.version is not None
            }
            row = c.execute(select(t.jobs).where(t.jobs.c.id == row.id)).first()
        if flipped and row.log_path:
            # If this fails too (the version was deleted meanwhile), the files stay on disk.
            with contextlib.suppress(DatakeepError, OSError):
                self._save_outputs(Path(row.log_path).parent, outputs, commit=False)
        return row

    def _to_job(self, row: Any, mounts: list[DatasetMount]) -> Job:
        spec = row.spec or {}
        return Job(
            id=row.id,
            name=row.name,
            command=row.command,
            state=row.state,
            exit_code=row.exit_code,
            datasets=mounts,
            env=dict(spec.get("env", {})),
            working_directory=spec.get("working_directory"),
            cluster_id=spec.get("cluster_id"),
            machine_type=spec.get("machine_type"),
            project_id=spec.get("project_id"),
            container=spec.get("container"),
            mount_mode=spec.get("mount_mode", "namespace"),
            created=_aware(row.created),
            started=_aware(row.started),
            finished=_aware(row.finished),
            log_path=row.log_path,
            notes=list(spec.get("notes", [])),
        )

    def _mounts(self, c: Any, job_ids: Sequence[str]) -> dict[str, list[DatasetMount]]:
        found: dict[str, list[DatasetMount]] = {j: [] for j in job_ids}
        if not job_ids:
            return found
        rows = c.execute(
            select(t.job_datasets)
            .where(t.job_datasets.c.job_id.in_(list(job_ids)))
            .order_by(t.job_datasets.c.output, t.job_datasets.c.name)
        )
        for r in rows:
            found[r.job_id].append(
                DatasetMount(name=r.name, ref=r.ref, output=bool(r.output), version=r.version)
            )
        return found

    def get(self, job_id: str) -> Job:
        with self._catalog.begin() as c:
            row = c.execute(
                select(t.jobs).where(
                    t.jobs.c.id == job_id, t.jobs.c.team_id == self._team, t.jobs.c.kind == _KIND
                )
            ).first()
        if row is None:
            raise JobNotFound(f"Job not found: {job_id}", hint="List jobs with: datakeep jobs list")
        row = self._reconcile(row)
        with self._catalog.begin() as c:
            return self._to_job(row, self._mounts(c, [row.id])[row.id])

    details = get

    def list(self, *, limit: int | None = None, offset: int = 0) -> list[Job]:
        query = (
            select(t.jobs)
            .where(t.jobs.c.team_id == self._team, t.jobs.c.kind == _KIND)
            .order_by(t.jobs.c.created.desc(), t.jobs.c.id)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._catalog.begin() as c:
            rows = list(c.execute(query))
        rows = [self._reconcile(r) for r in rows]
        with self._catalog.begin() as c:
            mounts = self._mounts(c, [r.id for r in rows])
        return [self._to_job(r, mounts[r.id]) for r in rows]

    def logs(self, job_id: str, *, line: int = 0, limit: int | None = None) -> builtins.list[str]:
        """The kept output, as lines (from ``line``, at most ``limit``)."""
        job = self.get(job_id)
        text = _read_log(job)
        lines = text.splitlines()[line:]
        return lines if limit is None else lines[:limit]

    def follow(self, job_id: str, *, poll: float = 0.2) -> Iterator[bytes]:
        """The output as it is written, until the job finishes (for ``logs --follow``)."""
        job = self.get(job_id)
        if job.log_path is None:
            return
        with open(job.log_path, "rb") as f:
            while True:
                chunk = f.read(65536)
                if chunk:
                    yield chunk
                    continue
                if self.get(job_id).state in FINISHED_STATES:
                    rest = f.read()
                    if rest:
                        yield rest
                    return
                time.sleep(poll)

    # LINEAGE

    def producer(self, ref: str) -> Job | None:
        """The job that produced a version (``ds:ver``), if a job did."""
        version = self._catalog.resolve(self._team, parse_ref(ref, require_selector=True))
        if version.job_id is None:
            return None
        with contextlib.suppress(JobNotFound):
            return self.get(version.job_id)
        return None

    def lineage(self, ref: str, *, depth: int = 20) -> Lineage:
        """Walk the graph from a version: up to the inputs it came from, down to what used it."""
        version = self._catalog.resolve(self._team, parse_ref(ref, require_selector=True))
        start = version.ref
        with self._catalog.begin() as c:
            up = self._walk_up(c, start, depth, set())
            down = self._walk_down(c, start, None, None, depth, set())
        return Lineage(ref=start, upstream=up, downstream=down)

    def _job_row(self, c: Any, job_id: str) -> Any:
        return c.execute(select(t.jobs).where(t.jobs.c.id == job_id, t.jobs.c.team_id == self._team)).first()

    @staticmethod
    def _version_of(c: Any, ref: str) -> tuple[str | None, str]:
        """The job that made ``ref`` (if any) and its state, which lineage shows: a failed job's
        output is uncommitted, and a version may have been deleted since a job used it."""
        dataset_id, version = ref.split(":")
        row = c.execute(
            select(t.versions.c.job_id, t.versions.c.is_committed).where(
                t.versions.c.dataset_id == dataset_id, t.versions.c.version == version
            )
        ).first()
        if row is None:
            return None, "deleted"
        return row.job_id, "committed" if row.is_committed else "uncommitted"

    def _walk_up(self, c: Any, ref: str, depth: int, seen: set[str]) -> LineageNode:
        job_id, state = self._version_of(c, ref)
        job = self._job_row(c, job_id) if job_id else None
        if job is None:
            return LineageNode(ref, state=state)
        if depth <= 0 or ref in seen:
            return LineageNode(ref, job.id, job.command, truncated=True, state=state)
        seen = seen | {ref}
        inputs = c.execute(
            select(t.job_datasets)
            .where(t.job_datasets.c.job_id == job.id, t.job_datasets.c.output.is_(False))
            .order_by(t.job_datasets.c.name)
        )
        # One node per distinct version, even if the job mounted it under several names.
        refs = dict.fromkeys(f"{r.dataset_id}:{r.version}" for r in inputs if r.version is not None)
        parents = [self._walk_up(c, parent, depth - 1, seen) for parent in refs]
        return LineageNode(ref, job.id, job.command, parents, state=state)

    def _walk_down(
        self, c: Any, ref: str, job_id: str | None, command: str | None, depth: int, seen: set[str]
    ) -> LineageNode:
        _, state = self._version_of(c, ref)
        if depth <= 0 or ref in seen:
            return LineageNode(ref, job_id, command, truncated=True, state=state)
        seen = seen | {ref}
        dataset_id, version = ref.split(":")
        consumers = c.execute(
            select(t.job_datasets.c.job_id)
            .join(t.jobs, t.jobs.c.id == t.job_datasets.c.job_id)
            .where(
                t.job_datasets.c.dataset_id == dataset_id,
                t.job_datasets.c.version == version,
                t.job_datasets.c.output.is_(False),
                t.jobs.c.team_id == self._team,
            )
            .order_by(t.jobs.c.created)
        ).all()
        children: builtins.list[LineageNode] = []
        for (consumer,) in consumers:
            job = self._job_row(c, consumer)
            outs = c.execute(
                select(t.job_datasets)
                .where(t.job_datasets.c.job_id == consumer, t.job_datasets.c.output.is_(True))
                .order_by(t.job_datasets.c.name)
            )
            for r in outs:
                if r.version is not None:
                    child = f"{r.dataset_id}:{r.version}"
                    children.append(self._walk_down(c, child, consumer, job.command, depth - 1, seen))
        return LineageNode(ref, job_id, command, children, state=state)


def _read_log(job: Job) -> str:
    if job.log_path is None:
        return ""
    try:
        return Path(job.log_path).read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return ""
