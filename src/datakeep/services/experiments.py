"""``client.experiments``: Gradient's legacy experiments, run here, recorded in the catalog.

An experiment is a row of the ``jobs`` table with ``kind='experiment'``: the same table as
jobs, since both are a command over mounted data. Its ``spec`` JSON keeps what the run was
given and what it used (URI, ETag, VersionId, size and place of each dataset) with every
dataset key redacted; logs and the model directory live under ``<runs>/<experiment id>/``.
"""

from __future__ import annotations

import builtins
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from datakeep.cache.owners import Owner
from datakeep.catalog import schema as t
from datakeep.catalog.store import _aware, utcnow
from datakeep.domain import ids
from datakeep.domain.models import _Serializable
from datakeep.errors import ExperimentNotFound, InvalidInput, VersionNotCommitted
from datakeep.experiments.options import DatasetSpec
from datakeep.experiments.run import ExperimentPlan, ExperimentResult, ExperimentRunner
from datakeep.experiments.volumes import CleanPlan, SharedEntry, SharedStore, remove_volumes, team_storage

if TYPE_CHECKING:
    from datakeep.services.context import Context
    from datakeep.storage.transfer import Progress

KIND = "experiment"


@dataclass(frozen=True)
class Experiment(_Serializable):
    id: str
    name: str | None
    state: str  # Pending (fetching data), Running, Succeeded, Failed
    command: str
    exit_code: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    log_dir: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None

    @property
    def kind(self) -> str:
        return str(self.spec.get("kind", "singlenode"))

    @property
    def datasets(self) -> list[dict[str, Any]]:
        placed = self.spec.get("placed")
        return list(placed if placed is not None else self.spec.get("datasets", []))

    @property
    def artifacts(self) -> str | None:
        return self.spec.get("artifacts")


def _gone(row: Any) -> bool:
    """Whether the datakeep process running an experiment died, by the jobs' rule.

    The owner tag (host, pid and the pid's start time) tells a dead run from one whose pid
    was reused; records written before it existed fall back to the host and pid columns.
    Another machine's run cannot be judged from here, so it is never called dead.
    """
    tag = (row.spec or {}).get("owner")
    owner = Owner.from_tag(str(tag)) if tag else Owner(row.host or "", row.pid, None) if row.pid else None
    return owner is not None and owner.is_alive() is False


class ExperimentsService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def shared_storage(self) -> Path:
        """This team's shared storage (the local team's is ``DATAKEEP_SHARED_STORAGE`` itself)."""
        return team_storage(self.ctx.settings.shared_storage_path, self.ctx.team_id)

    @property
    def shared(self) -> SharedStore:
        return SharedStore(self.shared_storage)

    # RUNNING

    def run(
        self,
        plan: ExperimentPlan,
        *,
        on_output: Callable[[str, bytes], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        progress: Callable[[str], Progress] | None = None,
        on_created: Callable[[str], None] | None = None,
    ) -> Experiment:
        """Run ``plan`` to the end and return its record (``state`` Succeeded or Failed).

        A dataset that cannot be fetched or checked fails the run before its command starts;
        the error is kept in the record and raised.
        """
        self.sweep()
        experiment_id = ids.new_experiment_id()
        run_dir = self.ctx.settings.runs_path / experiment_id
        from datakeep.services.jobs import redact_env

        # Dataset keys are already masked by the plan; likely secrets in the environment too,
        # by the same rule as jobs.
        record = plan.record()
        spec = {
            **record,
            "experimentEnv": redact_env(record["experimentEnv"]),
            "artifacts": str(run_dir / "artifacts"),
            "owner": Owner.me().tag,
        }
        command = plan.command or plan.worker_command or ""
        now = utcnow()
        with self.ctx.catalog.begin() as c:
            c.execute(
                insert(t.jobs).values(
                    id=experiment_id,
                    team_id=self.ctx.team_id,
                    kind=KIND,
                    name=plan.name,
                    command=command,
                    state="Pending",
                    spec=spec,
                    log_path=str(run_dir / "logs"),
                    host=Owner.me().host,
                    pid=os.getpid(),
                    created=now,
                )
            )
        if on_created:
            on_created(experiment_id)

        def started() -> None:
            self._update(experiment_id, state="Running", started=utcnow())

        runner = ExperimentRunner(
            run_dir,
            self.shared_storage,
            version_mounter=self._version_mounter(run_dir),
            progress=progress,
            on_output=on_output,
            on_warning=on_warning,
            on_started=started,
        )
        try:
            result = runner.run(plan)
        except BaseException as exc:
            message = exc.one_line() if hasattr(exc, "one_line") else f"{exc.__class__.__name__}: {exc}"
            self._update(
                experiment_id,
                state="Failed",
                finished=utcnow(),
                spec={**spec, "error": message, "warnings": list(runner.warnings)},
            )
            raise
        return self._finish(experiment_id, spec, result)

    def _finish(self, experiment_id: str, spec: dict[str, Any], result: ExperimentResult) -> Experiment:
        spec = {
            **spec,
            "placed": list(result.datasets),
            "processes": [
                {"label": p.label, "exitCode": p.exit_code, "log": str(p.log_path)} for p in result.processes
            ],
            "warnings": list(result.warnings),
        }
        self._update(
            experiment_id,
            state="Succeeded" if result.exit_code == 0 else "Failed",
            exit_code=result.exit_code,
            finished=utcnow(),
            spec=spec,
        )
        return self.get(experiment_id)

    def _update(self, experiment_id: str, **values: Any) -> None:
        with self.ctx.catalog.begin() as c:
            c.execute(update(t.jobs).where(t.jobs.c.id == experiment_id).values(**values))

    def _version_mounter(
        self, run_dir: Path
    ) -> Callable[[DatasetSpec], contextlib.AbstractContextManager[Path]]:
        """``--datasetId REF``: the committed version from the shared cache, pinned while in use.

        The same cache as jobs' inputs: a version already cached is mounted without a copy,
        and the pin keeps an eviction from taking it away during the run.
        """

        @contextlib.contextmanager
        def mount(spec: DatasetSpec) -> Iterator[Path]:
            from datakeep.services.cache import CacheService
            from datakeep.services.versions import VersionsService

            assert spec.id is not None
            if ":" not in spec.id:
                raise InvalidInput(
                    f"Dataset {spec.name!r}: --datasetId {spec.id!r} names no version",
                    hint=f"Use {spec.id}:VERSION, {spec.id}:TAG or {spec.id}:latest",
                )
            version = VersionsService(self.ctx).get(spec.id)
            if not version.is_committed:
                raise VersionNotCommitted(
                    f"Dataset {spec.name!r}: version {version.dataset_id}:{version.version} is not committed",
                    hint="Commit it first: experiments read only immutable versions",
                )
            cache = CacheService(self.ctx)
            source = cache.materialize_version(version, pin=run_dir.name)
            try:
                with self.ctx.catalog.begin() as c:
                    c.execute(
                        insert(t.job_datasets).values(
                            job_id=run_dir.name,
                            name=spec.name,
                            dataset_id=version.dataset_id,
                            ref=spec.id,
                            version=version.version,
                            output=False,
                        )
                    )
                yield source
            finally:
                cache.unpin(version, run_dir.name)

        return mount

    def sweep(self) -> builtins.list[str]:
        """Close the runs of this host whose datakeep process died (``kill -9``, a crash).

        They are marked Failed, and the dynamic volumes they left mounted are unmounted and
        removed. Shared copies need nothing: their locks died with the process.
        """
        with self.ctx.catalog.begin() as c:
            rows = c.execute(
                select(t.jobs.c.id, t.jobs.c.host, t.jobs.c.pid, t.jobs.c.spec).where(
                    t.jobs.c.team_id == self.ctx.team_id,
                    t.jobs.c.kind == KIND,
                    t.jobs.c.state.in_(("Pending", "Running")),
                )
            ).all()
        swept: list[str] = []
        for row in rows:
            if not _gone(row):
                continue
            remove_volumes(self.ctx.settings.runs_path / row.id / "volumes")
            spec = {**dict(row.spec or {}), "error": "datakeep stopped before the experiment ended"}
            self._update(row.id, state="Failed", finished=utcnow(), spec=spec)
            swept.append(row.id)
        return swept

    # READING

    def _from_row(self, row: Any) -> Experiment:
        state = row.state
        if state in ("Pending", "Running") and _gone(row):
            # Its datakeep process was killed: it will never finish, and its locks are gone.
            state = "Failed"
        return Experiment(
            id=row.id,
            name=row.name,
            state=state,
            command=row.command,
            exit_code=row.exit_code,
            spec=dict(row.spec or {}),
            log_dir=row.log_path,
            created=_aware(row.created),
            started=_aware(row.started),
            finished=_aware(row.finished),
        )

    def list(self, *, limit: int | None = None, offset: int = 0) -> list[Experiment]:
        query = (
            select(t.jobs)
            .where(t.jobs.c.team_id == self.ctx.team_id, t.jobs.c.kind == KIND)
            .order_by(t.jobs.c.created.desc(), t.jobs.c.id)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.ctx.catalog.begin() as c:
            return [self._from_row(row) for row in c.execute(query)]

    def get(self, experiment_id: str) -> Experiment:
        with self.ctx.catalog.begin() as c:
            row = c.execute(
                select(t.jobs).where(
                    t.jobs.c.id == experiment_id, t.jobs.c.team_id == self.ctx.team_id, t.jobs.c.kind == KIND
                )
            ).first()
        if row is None:
            raise ExperimentNotFound(
                f"Experiment {experiment_id!r} not found", hint="See: datakeep experiments list"
            )
        return self._from_row(row)

    def logs(self, experiment_id: str, *, process: str | None = None) -> dict[str, str]:
        """Each process's output (stdout and stderr as they interleaved), by process label."""
        experiment = self.get(experiment_id)
        log_dir = Path(experiment.log_dir or self.ctx.settings.runs_path / experiment_id / "logs")
        files = sorted(log_dir.glob("*.log")) if log_dir.is_dir() else []
        found = {f.stem: f.read_bytes().decode("utf-8", "replace") for f in files}
        if process is not None:
            if process not in found:
                raise ExperimentNotFound(
                    f"Experiment {experiment_id} has no process {process!r}",
                    hint=f"Its processes: {', '.join(found) or 'none started'}",
                )
            return {process: found[process]}
        return found

    # SHARED STORAGE

    def shared_datasets(self) -> builtins.list[SharedEntry]:
        """This team's shared copies only (see :attr:`shared_storage`)."""
        return self.shared.entries()

    def clean_datasets(
        self, *, name: str | None = None, older_than: timedelta | None = None, dry_run: bool = False
    ) -> CleanPlan:
        """Remove shared copies (all, one ``name``, or those unused for ``older_than``).

        Copies in use by a running experiment are listed in ``in_use`` and never removed.
        """
        plan = self.shared.plan_clean(name=name, older_than=older_than)
        return plan if dry_run else self.shared.clean(plan)
