"""Killing the server (SIGKILL) in the middle of a commit, with the catalog on PostgreSQL.

After a restart the version is either fully committed or still uncommitted, never half; and
committing it again finishes the job with every file.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx

from .conftest import RunningServer, start_server, stop_server

FILES = 400


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _list_all(http: httpx.Client, key: str, ds: str, ver: str) -> list[str]:
    answer = http.post(
        f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls",
        json={
            "calls": [
                {"method": "listObjectsV2", "params": {"Prefix": "/", "Delimiter": "", "MaxKeys": 1000}}
            ]
        },
        headers=_h(key),
    )
    answer.raise_for_status()
    body = http.get(answer.json()[0]["url"]).text
    import re

    return re.findall(r"<Key>[^<]*/([^/<]+)</Key>", body)


def test_kill_during_commit_leaves_all_or_nothing(tmp_path: Path, postgres_database: str) -> None:
    home = tmp_path / "server"
    server: RunningServer = start_server(home, postgres_database)
    key = server.new_key()
    try:
        http = httpx.Client(base_url=server.url, timeout=60)
        ds = http.post("/datasets", json={"name": "crash"}, headers=_h(key)).json()["id"]
        ver = http.post(f"/datasets/{ds}/versions", json={}, headers=_h(key)).json()["version"]
        calls = [{"method": "putObject", "params": {"Key": f"/part/{i:04d}.txt"}} for i in range(FILES)]
        urls = http.post(
            f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls", json={"calls": calls}, headers=_h(key)
        ).json()
        for i, answer in enumerate(urls):
            assert http.put(answer["url"], content=f"file {i}\n".encode()).status_code == 200

        done: dict[str, object] = {}

        def commit() -> None:
            try:
                done["response"] = http.post(
                    f"/datasets/{ds}/versions/{ver}", json={"isCommitted": True}, headers=_h(key)
                )
            except httpx.HTTPError as exc:
                done["error"] = exc

        thread = threading.Thread(target=commit)
        thread.start()
        # Kill as soon as the server has started absorbing the uploads into the version.
        deadline = time.monotonic() + 60
        tmp = home / "tmp"
        while not (tmp.exists() and any(p.name.startswith("absorb-") for p in tmp.iterdir())):
            assert "response" not in done, "the commit finished before it could be interrupted"
            assert time.monotonic() < deadline, "the commit never started"
            time.sleep(0.005)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        thread.join()
        assert "error" in done, "the client should have lost its connection"
    finally:
        stop_server(server)

    restarted = start_server(home, postgres_database)
    try:
        http = httpx.Client(base_url=restarted.url, timeout=120)
        version = http.get(f"/datasets/{ds}/versions/{ver}", headers=_h(key)).json()
        listed = _list_all(http, key, ds, ver)
        if version["isCommitted"]:
            assert len(listed) == FILES  # all of it
        else:
            assert version["dtCommitted"] is None  # none of it: and the uploads are still there
            assert len(listed) == FILES
        finished = http.post(f"/datasets/{ds}/versions/{ver}", json={"isCommitted": True}, headers=_h(key))
        if version["isCommitted"]:
            assert finished.status_code == 403  # already committed: immutable
        else:
            assert finished.status_code == 200, finished.text
        after = http.get(f"/datasets/{ds}/versions/{ver}", headers=_h(key)).json()
        assert after["isCommitted"] is True
        assert after["fileCount"] == FILES
        assert sorted(_list_all(http, key, ds, ver)) == [f"{i:04d}.txt" for i in range(FILES)]
    finally:
        stop_server(restarted)


def test_several_server_processes_share_one_catalog_and_url_key(
    tmp_path: Path, postgres_database: str
) -> None:
    server = start_server(tmp_path / "multi", postgres_database, workers=2)
    key = server.new_key()
    try:
        http = httpx.Client(base_url=server.url, timeout=60)
        ds = http.post("/datasets", json={"name": "multi"}, headers=_h(key)).json()["id"]
        ver = http.post(f"/datasets/{ds}/versions", json={}, headers=_h(key)).json()["version"]
        url = http.post(
            f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls",
            json={"calls": [{"method": "listObjectsV2", "params": {"Prefix": "/"}}]},
            headers=_h(key),
        ).json()[0]["url"]
        # Fresh connections land on either process: each accepts the other's signed URLs.
        for _ in range(10):
            with httpx.Client(timeout=30) as fresh:
                assert fresh.get(url).status_code == 200
                assert fresh.get(f"{server.url}/datasets/{ds}", headers=_h(key)).status_code == 200
    finally:
        stop_server(server)
