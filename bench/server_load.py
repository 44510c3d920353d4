"""Load on ``datakeep server`` with its catalog on PostgreSQL: many clients at once, for a while.

    .venv/bin/python -m bench.server_load                   # 50 clients for 60 s
    .venv/bin/python -m bench.server_load --clients 10 --duration 5

Each client loops over a mix of what a team does all day: list datasets (Gradient's paged
``GET /datasets``), resolve a reference (``GET /datasets/ref/ds:latest``, as ``files list``
does), list a dataset's versions, and create a small version (an uncommitted one, then
committed, as ``versions create`` without files does). Clients are spread over several teams,
each with its own key. The server runs as it would in production: ``datakeep server`` in its
own process, PostgreSQL in another (a throw-away cluster, or ``DATAKEEP_DATABASE_URL`` if set).

Prints throughput, p50/p99 latency and errors per operation, and writes the same as JSON to
``bench/results/server_load.json``. The target is zero errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
TEAMS = 5
DATASETS_PER_TEAM = 10


@contextlib.contextmanager
def _database() -> Iterator[str]:
    url = os.environ.get("DATAKEEP_DATABASE_URL")
    if url:
        yield url
        return
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.postgres import started_postgres

    with started_postgres() as server:
        import psycopg

        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        yield server.url("bench")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(home: Path, database_url: str, workers: int) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAKEEP_")}
    env.update(DATAKEEP_HOME=str(home), DATAKEEP_DATABASE_URL=database_url, DATAKEEP_SERVER_KEY="bench-key")
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from datakeep.cli.main import entry_point; entry_point()",
         "server", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--workers", str(workers)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((home / "server.log").read_text()) from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _keys(home: Path, database_url: str) -> list[str]:
    from datakeep.client import Client
    from datakeep.config import Settings

    settings = Settings.from_env(
        {
            "DATAKEEP_HOME": str(home),
            "DATAKEEP_DATABASE_URL": database_url,
            "DATAKEEP_SERVER_KEY": "bench-key",
        }
    )
    client = Client(settings, progress=False)
    keys = []
    for n in range(TEAMS):
        client.admin.create_team(f"bench-{n}")
        keys.append(client.admin.create_key(f"bench-{n}").key)
    client.close()
    return keys


async def _setup(url: str, key: str) -> list[str]:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60) as http:
        ids = []
        for n in range(DATASETS_PER_TEAM):
            ds = (await http.post("/datasets", json={"name": f"dataset-{n:02d}"})).json()["id"]
            ver = (await http.post(f"/datasets/{ds}/versions", json={"message": "seed"})).json()["version"]
            await http.post(f"/datasets/{ds}/versions/{ver}", json={"isCommitted": True})
            ids.append(ds)
        return ids


async def _client(
    url: str, key: str, datasets: list[str], stop_at: float, samples: dict[str, list[float]],
    errors: dict[str, list[str]], seed: int,
) -> None:  # fmt: skip
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=60) as http:
        while time.monotonic() < stop_at:
            ds = rng.choice(datasets)
            op = rng.choices(["list", "ref", "versions", "create"], weights=[3, 4, 2, 1])[0]
            start = time.perf_counter()
            try:
                if op == "list":
                    r = await http.get(
                        "/datasets",
                        params={"filter[limit]": 21, "filter[skip]": 0, "filter[order][]": "name ASC"},
                    )
                elif op == "ref":
                    r = await http.get(f"/datasets/ref/{ds}:latest")
                elif op == "versions":
                    r = await http.get(
                        f"/datasets/{ds}/versions",
                        params={"filter[where][isCommitted]": "true", "filter[limit]": 21,
                                "filter[order][]": "dtCreated DESC"},
                    )  # fmt: skip
                else:
                    r = await http.post(f"/datasets/{ds}/versions", json={"message": "bench"})
                    if r.status_code == 200:
                        ver = r.json()["version"]
                        r = await http.post(f"/datasets/{ds}/versions/{ver}", json={"isCommitted": True})
                if r.status_code >= 400:
                    errors[op].append(f"HTTP {r.status_code}: {r.text[:200]}")
                    continue
            except httpx.HTTPError as exc:
                errors[op].append(f"{type(exc).__name__}: {exc}")
                continue
            samples[op].append(time.perf_counter() - start)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(url: str, keys: list[str], clients: int, duration: float) -> dict[str, Any]:
    datasets = {key: await _setup(url, key) for key in keys}
    samples: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, list[str]] = defaultdict(list)
    started = time.monotonic()
    stop_at = started + duration
    await asyncio.gather(
        *(
            _client(url, keys[n % len(keys)], datasets[keys[n % len(keys)]], stop_at, samples, errors, n)
            for n in range(clients)
        )
    )
    elapsed = time.monotonic() - started
    per_op = {}
    for op in sorted(set(samples) | set(errors)):
        values = samples[op]
        per_op[op] = {
            "requests": len(values),
            "per_second": round(len(values) / elapsed, 1),
            "p50_ms": round(_percentile(values, 0.50) * 1000, 1),
            "p99_ms": round(_percentile(values, 0.99) * 1000, 1),
            "mean_ms": round(statistics.fmean(values) * 1000, 1) if values else 0.0,
            "errors": len(errors[op]),
            "first_errors": errors[op][:3],
        }
    everything = [v for values in samples.values() for v in values]
    return {
        "clients": clients,
        "duration_s": round(elapsed, 1),
        "requests": len(everything),
        "per_second": round(len(everything) / elapsed, 1),
        "p50_ms": round(_percentile(everything, 0.50) * 1000, 1),
        "p99_ms": round(_percentile(everything, 0.99) * 1000, 1),
        "errors": sum(len(e) for e in errors.values()),
        "operations": per_op,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2, help="datakeep server processes")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "server_load.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dk-bench-server-") as tmp, _database() as database_url:
        home = Path(tmp)
        keys = _keys(home, database_url)
        with _server(home, database_url, args.workers) as url:
            result = asyncio.run(_load(url, keys, args.clients, args.duration))
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }
    result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["catalog"] = "postgresql"
    result["server_workers"] = args.workers
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{result['clients']} clients, {result['duration_s']} s, {args.workers} server process(es), PostgreSQL"
    )
    print(f"{'operation':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for op, row in result["operations"].items():
        print(f"{op:<10} {row['per_second']:>8} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['errors']:>7}")
    print(
        f"{'all':<10} {result['per_second']:>8} {result['p50_ms']:>8} {result['p99_ms']:>8} {result['errors']:>7}"
    )
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
