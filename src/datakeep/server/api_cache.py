"""The remote client's routes for ``datakeep cache`` and ``datakeep experiments datasets``.

Both manage disks of the server's machine that every team shares (the shared-storage cache,
experiments' shared storage), so each route acts only on the caller's team's part, through the
library's team scoping: a team lists, cleans and verifies the cached versions of its own
datasets, and its own shared experiment datasets. Another team's entries are never listed,
counted or removed, and naming one (``--dataset``, ``--name``) is answered as for one that does
not exist. The server's administration (``datakeep admin``) has no route on purpose: a team's
key must not administer the server.

- ``GET  /datakeep/v1/cache``: the team's cached versions.
- ``POST /datakeep/v1/cache/plan`` ``{olderThan, dataset}``: what a clean would remove.
- ``POST /datakeep/v1/cache/clean`` ``{olderThan, dataset, refs}``: remove what was planned.
- ``POST /datakeep/v1/cache/verify`` ``{repair}``: rehash the team's cached versions.
- ``GET  /datakeep/v1/experiments/datasets``: the team's shared experiment datasets.
- ``POST /datakeep/v1/experiments/datasets/clean`` ``{name, olderThan, dryRun}``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Body

from datakeep.cache import CachedVersion, CleanPlan, Problem
from datakeep.domain.ids import check_dataset_id
from datakeep.errors import InvalidInput
from datakeep.remote import codec
from datakeep.server.state import TeamClient

router = APIRouter(prefix="/datakeep/v1", tags=["datakeep"])

#: The most versions one clean may name (a plan lists at most what the team has cached).
MAX_REFS = 100_000


def version_json(version: CachedVersion) -> dict[str, Any]:
    return {
        "key": version.key,
        "path": str(version.path),
        "size": version.size,
        "files": version.files,
        "lastUsed": version.last_used.isoformat(),
        "created": version.created.isoformat(),
        "pins": [
            {"label": p.label, "host": p.host, "pid": p.pid, "created": p.created.isoformat()}
            for p in version.pins
        ],
    }


def plan_json(plan: CleanPlan) -> dict[str, Any]:
    return {
        "versions": [version_json(v) for v in plan.versions],
        "keptPinned": [version_json(v) for v in plan.kept_pinned],
        "freedBytes": plan.freed_bytes,
    }


def problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "kind": problem.kind,
        "path": str(problem.path),
        "detail": problem.detail,
        "repaired": problem.repaired,
        "key": problem.key,
    }


def _body(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object")
    return body


def _age(body: dict[str, Any]) -> timedelta | None:
    """``olderThan`` in seconds: the client parses the user's ``7d``, as it does in embedded mode."""
    value = body.get("olderThan")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100 * 365 * 86400:
        raise InvalidInput("olderThan must be a whole number of seconds")
    return timedelta(seconds=value)


def _dataset(body: dict[str, Any]) -> str | None:
    value = body.get("dataset")
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("dataset must be a dataset ID")
    return check_dataset_id(value, option="--dataset")


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false")
    return value


@router.get("/cache")
def cache_list(client: TeamClient) -> dict[str, Any]:
    cache = client.cache
    return {"path": str(cache.path), "versions": [version_json(v) for v in cache.list(team_only=True)]}


@router.post("/cache/plan")
def cache_plan(client: TeamClient, body: dict[str, Any] | None = Body(default=None)) -> dict[str, Any]:
    fields = _body(body)
    plan = client.cache.plan_clean(older_than=_age(fields), dataset=_dataset(fields), team_only=True)
    return plan_json(plan)


@router.post("/cache/clean")
def cache_clean(client: TeamClient, body: dict[str, Any] | None = Body(default=None)) -> dict[str, Any]:
    """Remove the versions the client showed its user, planned again here with the same filters:
    one that was used or pinned since is kept, as an embedded clean would keep it."""
    fields = _body(body)
    refs = fields.get("refs")
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs) or len(refs) > MAX_REFS:
        raise InvalidInput(f"refs must be a list of at most {MAX_REFS} version references")
    plan = client.cache.plan_clean(
        older_than=_age(fields), dataset=_dataset(fields), refs=refs, team_only=True
    )
    freed = plan.execute()
    return {**plan_json(plan), "freedBytes": freed}


@router.post("/cache/verify")
def cache_verify(client: TeamClient, body: dict[str, Any] | None = Body(default=None)) -> dict[str, Any]:
    repair = _flag(_body(body), "repair")
    cache = client.cache
    problems = cache.verify(repair=repair, team_only=True)
    return {"path": str(cache.path), "problems": [problem_json(p) for p in problems]}


@router.get("/experiments/datasets")
def shared_datasets(client: TeamClient) -> dict[str, Any]:
    return {"result": codec.encode(client.experiments.shared_datasets())}


@router.post("/experiments/datasets/clean")
def shared_clean(client: TeamClient, body: dict[str, Any] | None = Body(default=None)) -> dict[str, Any]:
    fields = _body(body)
    name = fields.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidInput("name must be a string")
    plan = client.experiments.clean_datasets(
        name=name, older_than=_age(fields), dry_run=_flag(fields, "dryRun")
    )
    return {"result": codec.encode(plan)}
