"""Jobs and experiment runs through the server, for Gradient's 1.x CLI and the remote client.

The work runs on the server's machine (with the cluster's shared-storage cache), through the
same ``JobsService`` and ``ExperimentsService`` as ``datakeep jobs create`` and ``datakeep
experiments run``; a request returns as soon as the run is recorded, and the run goes on in a
thread of the server. These are the routes ``gradient==1.11.0`` uses:

- ``POST /jobs/createJob/``: every field a query parameter, ``datasets`` a JSON string of
  ``[{"id": ref, "name": name, "output"?: true}]``; answers ``{"id": ...}``.
- ``POST {PAPERSPACE_CONFIG_EXPERIMENTS_HOST}experiments/run/``: a JSON body whose command is
  base64-encoded, with the legacy ``datasets`` list; answers ``{"handle": ...}``.
- ``GET {PAPERSPACE_CONFIG_LOG_HOST}/jobs/logs?jobId=|experimentId=&line=&limit=``: log rows
  ``{"line", "message", "timestamp"}`` from ``line`` on, then a last row ``PSEOF`` once the run
  has ended. Row 0 is a datakeep banner, so a client starting at line 1 (as Gradient's
  ``--follow`` does) sees the command's first line first, and one starting at 0 sees every row
  exactly once.
- ``GET /teams/namespace``: the team's name, for the links Gradient prints.

``POST /datakeep/v1/jobs`` starts a job for the remote client.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Request

from datakeep.client import Client
from datakeep.errors import DatakeepError, InvalidInput
from datakeep.server.state import CurrentTeam, State, TeamClient

router = APIRouter(tags=["jobs"])

#: How long a log request waits for new output before answering with nothing new.
LOG_WAIT_SECONDS = 1.0
MAX_LOG_LIMIT = 10_000
_FINISHED = ("Succeeded", "Failed", "Cancelled", "Stopped")


def _start(launch: Callable[[Callable[[str], None]], Any]) -> str:
    """Run ``launch(on_created)`` in a thread; return the ID as soon as the run is recorded, or
    raise the error that stopped it before that (a bad dataset reference, no sandbox ...)."""
    created = threading.Event()
    box: dict[str, Any] = {}

    def on_created(run_id: str) -> None:
        box["id"] = run_id
        created.set()

    def target() -> None:
        try:
            launch(on_created)
        except BaseException as exc:  # noqa: BLE001 - handed to the request, or kept in the run's record
            box.setdefault("error", exc)
        finally:
            created.set()

    threading.Thread(target=target, name="dk-run", daemon=True).start()
    created.wait()
    if "id" not in box:
        error = box.get("error")
        if isinstance(error, DatakeepError):
            raise error
        raise InvalidInput(f"The run could not start: {error}")
    return str(box["id"])


def _job_datasets(raw: str | None) -> list[str]:
    """Gradient's ``[{"id", "name", "output"?}]`` as the ``NAME@REF`` strings the service takes."""
    if not raw:
        return []
    try:
        items = json.loads(raw)
    except ValueError:
        raise InvalidInput("datasets must be a JSON list") from None
    if not isinstance(items, list):
        raise InvalidInput("datasets must be a JSON list")
    specs = []
    for item in items:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("id"), str)
            or not isinstance(item.get("name"), str)
        ):
            raise InvalidInput('Each dataset is {"id": REF, "name": NAME}')
        specs.append(f"{item['name']}@{item['id']}")
    return specs


def _env(raw: Any) -> dict[str, str]:
    if raw in (None, ""):
        return {}
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise InvalidInput("envVars must be a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidInput("envVars must be a JSON object")
    return {str(k): str(v) for k, v in data.items()}


def _launch_job(client: Client, *, command: str, datasets: list[str], options: dict[str, Any]) -> str:
    if not command.strip():
        raise InvalidInput("The job has no command", hint="Pass --command")

    def launch(on_created: Callable[[str], None]) -> Any:
        return client.jobs.create(command=command, datasets=datasets, on_created=on_created, **options)

    return _start(launch)


@router.post("/jobs/createJob/")
@router.post("/jobs/createJob")
def create_job_gradient(request: Request, client: TeamClient) -> dict[str, Any]:
    q = request.query_params
    options = {
        "name": q.get("name"),
        "env": _env(q.get("envVars")),
        "working_directory": q.get("workingDirectory"),
        "cluster_id": q.get("clusterId"),
        "machine_type": q.get("machineType"),
        "project_id": q.get("projectId") or q.get("project"),
        "container": q.get("container"),
    }
    job_id = _launch_job(
        client, command=q.get("command") or "", datasets=_job_datasets(q.get("datasets")), options=options
    )
    return {"id": job_id, "handle": job_id}


@router.post("/datakeep/v1/jobs")
def create_job_native(client: TeamClient, body: dict[str, Any] | None = Body(default=None)) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object")
    datasets = body.get("datasets") or []
    if not isinstance(datasets, list) or not all(isinstance(d, str) for d in datasets):
        raise InvalidInput("datasets must be a list of NAME@REF strings")
    allowed = (
        "name",
        "env",
        "working_directory",
        "cluster_id",
        "machine_type",
        "project_id",
        "container",
        "mount_mode",
    )
    options = {k: body[k] for k in allowed if body.get(k) is not None}
    if "env" in options:
        options["env"] = _env(options["env"])
    return {
        "id": _launch_job(client, command=str(body.get("command") or ""), datasets=datasets, options=options)
    }


@router.get("/teams/namespace")
def team_namespace(team_id: CurrentTeam, state: State) -> str:
    try:
        return str(state.admin.get_team(team_id)["name"])
    except DatakeepError:
        return team_id


# EXPERIMENTS


def _b64(value: Any, name: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidInput(f"{name} must be base64-encoded (as Gradient's CLI sends it)") from None


def _experiment_datasets(items: Any) -> Any:
    from datakeep.experiments.options import OPTION_FIELDS, group_dataset_options

    if not items:
        return ()
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise InvalidInput("datasets must be a list of objects")
    wire = {
        "datasetId": "id", "datasetUri": "uri", "datasetName": "name",
        "datasetAwsAccessKeyId": "awsAccessKeyId", "datasetAwsSecretAccessKey": "awsSecretAccessKey",
        "datasetAwsEndpoint": "awsEndpoint", "datasetVersionId": "versionId", "datasetEtag": "etag",
    }  # fmt: skip
    options: dict[str, list[Any]] = {opt: [] for opt in OPTION_FIELDS}
    for item in items:
        for option in OPTION_FIELDS:
            if option in wire:
                options[option].append(item.get(wire[option]))
        volume = item.get("volumeOptions") or {}
        options["datasetVolumeKind"].append(volume.get("kind"))
        options["datasetVolumeSize"].append(volume.get("size"))
    # Positions line up (one slot per dataset), so only trailing empty slots need trimming.
    for option, values in options.items():
        while values and values[-1] is None:
            values.pop()
        options[option] = values
    return tuple(group_dataset_options(options))


@router.post("/experiments/run/")
@router.post("/experiments/run")
@router.post("/experiments/v1/experiments/run/")
def run_experiment_gradient(
    client: TeamClient, body: dict[str, Any] | None = Body(default=None)
) -> dict[str, Any]:
    from datakeep.experiments.run import ExperimentPlan, parse_experiment_env

    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object")
    multi = "workerCommand" in body or "workerCount" in body
    env = body.get("experimentEnv")
    plan_options: dict[str, Any] = {
        "name": str(body.get("name") or "experiment"),
        "kind": "multinode" if multi else "singlenode",
        "datasets": _experiment_datasets(body.get("datasets")),
        "env": parse_experiment_env(json.dumps(env)) if env else {},
        "command": _b64(body.get("command"), "command"),
        "info": {k: body.get(k) for k in ("projectHandle", "container", "machineType", "modelType", "workspaceUrl")
                 if body.get(k) is not None},
    }  # fmt: skip
    if body.get("modelPath"):
        plan_options["model_path"] = str(body["modelPath"])
    if body.get("mountMode") in ("namespace", "env"):
        plan_options["mount_mode"] = body["mountMode"]
    if isinstance(body.get("datasetRefresh"), bool):
        plan_options["refresh"] = body["datasetRefresh"]
    if multi:
        plan_options.update(
            worker_count=int(body.get("workerCount") or 1),
            worker_command=_b64(body.get("workerCommand"), "workerCommand"),
            parameter_server_count=int(body.get("parameterServerCount") or 0),
            parameter_server_command=_b64(body.get("parameterServerCommand"), "parameterServerCommand"),
        )
    plan = ExperimentPlan(**plan_options)

    def launch(on_created: Callable[[str], None]) -> Any:
        return client.experiments.run(plan, on_created=on_created)

    experiment_id = _start(launch)
    return {"handle": experiment_id, "id": experiment_id}


# LOGS


def _run_lines(client: Client, *, job_id: str | None, experiment_id: str | None) -> tuple[list[str], bool]:
    """Every output line of the run so far, and whether it has ended."""
    if job_id:
        job = client.jobs.get(job_id)
        return client.jobs.logs(job_id), job.state in _FINISHED
    assert experiment_id is not None
    experiment = client.experiments.get(experiment_id)
    logs = client.experiments.logs(experiment_id)
    if len(logs) == 1:
        lines = next(iter(logs.values())).splitlines()
    else:
        lines = [f"[{label}] {line}" for label, text in sorted(logs.items()) for line in text.splitlines()]
    return lines, experiment.state in _FINISHED


@router.get("/jobs/logs")
def logs(request: Request, client: TeamClient) -> list[dict[str, Any]]:
    q = request.query_params
    job_id, experiment_id = q.get("jobId"), q.get("experimentId")
    if not job_id and not experiment_id:
        raise InvalidInput("Give jobId or experimentId")
    try:
        line = max(int(q.get("line") or 0), 0)
        limit = min(max(int(q.get("limit") or MAX_LOG_LIMIT), 1), MAX_LOG_LIMIT)
    except ValueError:
        raise InvalidInput("line and limit must be whole numbers") from None
    run_id = job_id or experiment_id or ""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        lines, ended = _run_lines(client, job_id=job_id, experiment_id=experiment_id)
        rows = [f"datakeep: {'job' if job_id else 'experiment'} {run_id}", *lines]
        now = datetime.now(UTC).isoformat()
        answer = [
            {"line": number, "message": rows[number], "timestamp": now}
            for number in range(line, min(len(rows), line + limit))
        ]
        if ended and line + len(answer) >= len(rows) and len(answer) < limit:
            answer.append({"line": len(rows), "message": "PSEOF", "timestamp": now})
        if answer or time.monotonic() >= deadline:
            return answer
        time.sleep(0.1)
