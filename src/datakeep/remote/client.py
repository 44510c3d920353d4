"""``RemoteClient``: the :class:`datakeep.Client` interface, spoken to a datakeep server.

``datakeep.connect()`` returns one when ``DATAKEEP_API_URL`` is set. Each service method runs
the same library call on the server (``/datakeep/v1/call``) and returns the same value objects,
so the CLI prints the same output in both modes. Methods that move bytes (``files.put``,
``files.get``, ``versions.create`` with sources) transfer them directly between this machine and
the storage provider through presigned URLs; see :mod:`datakeep.remote.files`.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datakeep.config import Settings
from datakeep.domain.models import Dataset, StorageProvider, Tag, Version
from datakeep.errors import InvalidInput
from datakeep.remote import codec
from datakeep.remote.http import Session

if TYPE_CHECKING:
    from datakeep.cache import CachedVersion, Problem


class _Service:
    name = ""

    def __init__(self, session: Session) -> None:
        self._session = session

    def _call(self, method: str, *args: Any, long: bool = False, **kwargs: Any) -> Any:
        body = {"service": self.name, "method": method, "args": list(args), "kwargs": kwargs}
        answer = self._session.request("POST", "/datakeep/v1/call", json=body, long=long)
        return codec.decode(answer["result"])


class RemoteDatasets(_Service):
    name = "datasets"

    def list(self, *, limit: int | None = None, offset: int = 0) -> list[Dataset]:
        return self._call("list", limit=limit, offset=offset)

    def get(self, dataset_id: str) -> Dataset:
        return self._call("get", dataset_id)

    def create(
        self, *, name: str, storage_provider_id: str | None = None, description: str | None = None
    ) -> Dataset:
        return self._call(
            "create", name=name, storage_provider_id=storage_provider_id, description=description
        )

    def update(self, dataset_id: str, *, name: str | None = None, description: str | None = None) -> Dataset:
        return self._call("update", dataset_id, name=name, description=description)

    def delete(self, dataset_id: str) -> None:
        self._call("delete", dataset_id)


class RemoteVersions(_Service):
    name = "versions"

    def __init__(self, session: Session, client: RemoteClient) -> None:
        super().__init__(session)
        self._client = client

    def list(
        self, dataset_id: str, *, is_committed: bool | None = True, limit: int | None = None, offset: int = 0
    ) -> list[Version]:
        return self._call("list", dataset_id, is_committed=is_committed, limit=limit, offset=offset)

    def get(self, ref: str) -> Version:
        return self._call("get", ref)

    def literal(self, ref: str) -> Version:
        return self._call("literal", ref)

    def create(
        self,
        dataset_id: str,
        *,
        message: str | None = None,
        source_paths: Sequence[str | Path] = (),
        commit: bool = True,
        **_ignored: Any,
    ) -> Version:
        """With sources: an uncommitted version is created, filled, then committed. If interrupted,
        the uncommitted version stays behind (``versions list --isCommitted false``); run
        ``files put`` and ``versions commit`` on it, or delete it."""
        if not source_paths:
            return self._call("create", dataset_id, message=message)
        from datakeep.services.versions import check_sources

        check_sources(source_paths)  # fail before creating anything, as in embedded mode
        version: Version = self._call("create", dataset_id, message=message)
        version = self._client.files.put(version.ref, source_paths=source_paths, target_path="/")
        if commit:
            version = self.commit(version.ref)
        return version

    def update(self, ref: str, *, message: str) -> Version:
        return self._call("update", ref, message=message)

    def commit(self, ref: str) -> Version:
        return self._call("commit", ref, long=True)

    def delete(self, ref: str) -> Version:
        return self._call("delete", ref)

    def diff(self, old_ref: str, new_ref: str) -> Iterator[Any]:
        return iter(self._call("diff", old_ref, new_ref))


class RemoteTags(_Service):
    name = "tags"

    def list(self, dataset_id: str, *, limit: int | None = None, offset: int = 0) -> list[Tag]:
        return self._call("list", dataset_id, limit=limit, offset=offset)

    def get(self, ref: str) -> Tag:
        return self._call("get", ref)

    def set(self, ref: str, *, name: str) -> Tag:
        return self._call("set", ref, name=name)

    def delete(self, ref: str) -> Tag:
        return self._call("delete", ref)


class RemoteStorageProviders(_Service):
    name = "storage_providers"

    def list(self, *, limit: int | None = None, offset: int = 0) -> list[StorageProvider]:
        return self._call("list", limit=limit, offset=offset)

    def get(self, provider_id: str) -> StorageProvider:
        return self._call("get", provider_id)

    def create(self, *, name: str, type: str, config: dict[str, Any]) -> StorageProvider:
        return self._call("create", name=name, type=type, config=config)

    def update(
        self, provider_id: str, *, name: str | None = None, config: dict[str, Any] | None = None
    ) -> StorageProvider:
        return self._call("update", provider_id, name=name, config=config)

    def delete(self, provider_id: str) -> None:
        self._call("delete", provider_id)


class RemoteJobs(_Service):
    """Jobs run on the server's machine, next to the cluster's shared-storage cache."""

    name = "jobs"

    def create(
        self,
        *,
        command: str,
        datasets: Sequence[str] = (),
        on_output: Any = None,
        on_notice: Any = None,
        on_created: Any = None,
        **options: Any,
    ) -> Any:
        body = {
            "command": command,
            "datasets": list(datasets),
            **{k: v for k, v in options.items() if v is not None},
        }
        created = self._session.request("POST", "/datakeep/v1/jobs", json=body)
        job_id = created["id"]
        if on_created is not None:
            on_created(job_id)
        if on_output is not None:
            for chunk in self.follow(job_id):
                on_output(chunk)
        return self.wait(job_id)

    def wait(self, job_id: str, *, poll: float = 0.5) -> Any:
        while True:
            job = self.get(job_id)
            if job.state not in ("Pending", "Running"):
                return job
            time.sleep(poll)

    def follow(self, job_id: str, *, poll: float = 0.5) -> Iterator[bytes]:
        line = 0
        while True:
            job = self.get(job_id)
            lines: list[str] = self.logs(job_id, line=line)
            for text in lines:
                yield (text + "\n").encode()
            line += len(lines)
            if job.state not in ("Pending", "Running") and not lines:
                return
            if not lines:
                time.sleep(poll)

    def get(self, job_id: str) -> Any:
        return self._call("get", job_id)

    def list(self, *, limit: int | None = None, offset: int = 0) -> Any:
        return self._call("list", limit=limit, offset=offset)

    def logs(self, job_id: str, *, line: int = 0, limit: int | None = None) -> Any:
        return self._call("logs", job_id, line=line, limit=limit)

    def lineage(self, ref: str, *, depth: int = 20) -> Any:
        return self._call("lineage", ref, depth=depth)

    def producer(self, ref: str) -> Any:
        return self._call("producer", ref)


class RemoteExperiments(_Service):
    """Experiments run on the server's machine, through the same route Gradient's 1.x CLI uses."""

    name = "experiments"

    def run(
        self,
        plan: Any,
        *,
        on_output: Any = None,
        on_warning: Any = None,
        progress: Any = None,
        on_created: Any = None,
    ) -> Any:
        import base64

        def b64(text: str | None) -> str | None:
            return base64.b64encode(text.encode()).decode() if text else None

        datasets = [
            {
                "uri": d.uri, "id": d.id, "name": d.name,
                "awsAccessKeyId": d.aws_access_key_id, "awsSecretAccessKey": d.aws_secret_access_key,
                "awsEndpoint": d.aws_endpoint, "versionId": d.version_id, "etag": d.etag,
                "volumeOptions": {
                    "kind": str(getattr(d.volume_kind, "value", d.volume_kind)),
                    "size": None if d.volume_size is None else str(d.volume_size),
                },
            }
            for d in plan.datasets
        ]  # fmt: skip
        body: dict[str, Any] = {
            "name": plan.name,
            "command": b64(plan.command),
            "experimentEnv": dict(plan.env),
            "modelPath": plan.model_path,
            "datasets": datasets,
            "mountMode": plan.mount_mode,
            "datasetRefresh": plan.refresh,
            **{k: v for k, v in dict(plan.info).items() if v is not None},
        }
        if plan.kind == "multinode":
            body.update(
                workerCount=plan.worker_count,
                workerCommand=b64(plan.worker_command),
                parameterServerCount=plan.parameter_server_count,
                parameterServerCommand=b64(plan.parameter_server_command),
            )
        body = {k: v for k, v in body.items() if v is not None}
        created = self._session.request("POST", "/experiments/run/", json=body, long=True)
        experiment_id = created["handle"]
        if on_created is not None:
            on_created(experiment_id)
        line = 0
        while True:
            rows = self._session.request(
                "GET", "/jobs/logs", params={"experimentId": experiment_id, "line": line, "limit": 1000}
            )
            ended = False
            for row in rows or []:
                line = int(row["line"]) + 1
                if row["message"] == "PSEOF":
                    ended = True
                    break
                if int(row["line"]) == 0 or on_output is None:
                    continue  # row 0 is the server's banner
                text = str(row["message"])
                label = "main"
                if plan.kind == "multinode" and text.startswith("[") and "] " in text:
                    label, text = text[1:].split("] ", 1)
                on_output(label, (text + "\n").encode())
            if ended:
                break
        return self.get(experiment_id)

    def list(self, *, limit: int | None = None, offset: int = 0) -> Any:
        return self._call("list", limit=limit, offset=offset)

    def get(self, experiment_id: str) -> Any:
        return self._call("get", experiment_id)

    def logs(self, experiment_id: str, *, process: str | None = None) -> Any:
        return self._call("logs", experiment_id, process=process)

    def shared_datasets(self) -> Any:
        """The team's own datasets on the server's shared storage."""
        answer = self._session.request("GET", "/datakeep/v1/experiments/datasets")
        return codec.decode(answer["result"])

    def clean_datasets(
        self, *, name: str | None = None, older_than: timedelta | None = None, dry_run: bool = False
    ) -> Any:
        body = {"name": name, "olderThan": _seconds(older_than), "dryRun": dry_run}
        answer = self._session.request(
            "POST", "/datakeep/v1/experiments/datasets/clean", json=body, long=True
        )
        return codec.decode(answer["result"])


def _seconds(age: timedelta | None) -> int | None:
    return None if age is None else int(age.total_seconds())


def _cached_version(data: dict[str, Any]) -> CachedVersion:
    from datakeep.cache import CachedVersion, PinInfo

    return CachedVersion(
        key=str(data["key"]),
        path=Path(data["path"]),
        size=int(data["size"]),
        files=int(data["files"]),
        last_used=datetime.fromisoformat(data["lastUsed"]),
        created=datetime.fromisoformat(data["created"]),
        pins=tuple(
            PinInfo(str(p["label"]), str(p["host"]), int(p["pid"]), datetime.fromisoformat(p["created"]))
            for p in data.get("pins") or []
        ),
    )


@dataclass
class RemoteCleanPlan:
    """The server's plan for a clean of the team's cached versions, shown before it is carried out.

    :meth:`execute` sends back exactly the versions shown; the server plans again with the same
    filters, so one used or pinned since is kept, as an embedded clean would keep it.
    """

    session: Session = field(repr=False)
    older_than: int | None
    dataset: str | None
    versions: list[CachedVersion]
    kept_pinned: list[CachedVersion]
    freed_bytes: int

    def execute(self) -> int:
        body = {
            "olderThan": self.older_than,
            "dataset": self.dataset,
            "refs": [v.key.replace("/", ":", 1) for v in self.versions],
        }
        answer = self.session.request("POST", "/datakeep/v1/cache/clean", json=body, long=True)
        return int(answer["freedBytes"])


class RemoteCache:
    """The team's part of the server machine's shared-storage cache: the cached versions of the
    datasets the team owns. Another team's versions are not listed, cleaned or verified."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """Where the cache is on the server's machine (for messages; not a path on this one)."""
        if self._path is None:
            self.list()
        assert self._path is not None
        return self._path

    def list(self) -> list[CachedVersion]:
        answer = self._session.request("GET", "/datakeep/v1/cache")
        self._path = Path(answer["path"])
        return [_cached_version(v) for v in answer["versions"]]

    def plan_clean(
        self, *, older_than: timedelta | None = None, dataset: str | None = None
    ) -> RemoteCleanPlan:
        seconds = _seconds(older_than)
        body = {"olderThan": seconds, "dataset": dataset}
        answer = self._session.request("POST", "/datakeep/v1/cache/plan", json=body)
        return RemoteCleanPlan(
            session=self._session,
            older_than=seconds,
            dataset=dataset,
            versions=[_cached_version(v) for v in answer["versions"]],
            kept_pinned=[_cached_version(v) for v in answer["keptPinned"]],
            freed_bytes=int(answer["freedBytes"]),
        )

    def verify(self, *, repair: bool = False) -> builtins.list[Problem]:
        from datakeep.cache import Problem

        answer = self._session.request(
            "POST", "/datakeep/v1/cache/verify", json={"repair": repair}, long=True
        )
        self._path = Path(answer["path"])
        return [
            Problem(
                kind=str(p["kind"]),
                path=Path(p["path"]),
                detail=str(p["detail"]),
                repaired=bool(p["repaired"]),
                key=p.get("key"),
            )
            for p in answer["problems"]
        ]


def _server_side(command: str) -> InvalidInput:
    """Administration acts on the server itself, which a team's key must not do."""
    return InvalidInput(
        f"datakeep {command} administers the server itself, which a team's API key may not do",
        hint="Run it on the server's machine, without DATAKEEP_API_URL",
    )


class RemoteClient:
    """Same attributes and methods as :class:`datakeep.Client`, over HTTP."""

    def __init__(
        self, settings: Settings | None = None, *, progress: bool | None = None, **_ignored: Any
    ) -> None:
        from datakeep.remote.files import RemoteFiles

        self.settings = settings or Settings.from_env()
        self.session = Session(self.settings.api_url or "", self.settings.api_key)
        self.progress = progress
        self.datasets = RemoteDatasets(self.session)
        self.versions = RemoteVersions(self.session, self)
        self.tags = RemoteTags(self.session)
        self.files = RemoteFiles(self.session, self)
        self.storage_providers = RemoteStorageProviders(self.session)

    @cached_property
    def jobs(self) -> RemoteJobs:
        return RemoteJobs(self.session)

    @cached_property
    def experiments(self) -> RemoteExperiments:
        return RemoteExperiments(self.session)

    @cached_property
    def cache(self) -> RemoteCache:
        return RemoteCache(self.session)

    @property
    def admin(self) -> Any:
        raise _server_side("admin")

    def close(self) -> None:
        self.session.close()
