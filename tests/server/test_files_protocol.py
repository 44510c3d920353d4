"""The presigned-URL protocol on a ``local`` provider, where the server streams the bytes itself.

Paging of ``listObjectsV2`` (what ``gradient files get`` uses for more than 64 files), ``headObject``
answers, deletes before a commit, and the manifest a commit builds from the uploads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient

from datakeep.config import Settings
from datakeep.server.app import create_app

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture
def http(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    app = create_app(Settings.from_env({"DATAKEEP_HOME": str(tmp_path / "srv"), "DATAKEEP_SERVER_KEY": "k"}))
    with TestClient(app) as client:
        admin = app.state.datakeep.admin
        admin.create_team("files")
        yield client, {"X-API-Key": admin.create_key("files").key}


def _presign(
    http: TestClient, h: dict[str, str], ds: str, ver: str, calls: list[dict[str, Any]]
) -> list[Any]:
    response = http.post(f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls", json={"calls": calls}, headers=h)
    assert response.status_code == 200, response.text
    answer: list[Any] = response.json()
    return answer


def _list(
    http: TestClient, h: dict[str, str], ds: str, ver: str, params: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """Follow NextContinuationToken as Gradient's client does; returns (keys, prefixes), relative."""
    keys: list[str] = []
    prefixes: list[str] = []
    token = None
    while True:
        call = dict(params)
        if token:
            call["ContinuationToken"] = token
        url = _presign(http, h, ds, ver, [{"method": "listObjectsV2", "params": call}])[0]["url"]
        tree = ElementTree.fromstring(http.get(url).text)
        prefix = tree.find(f"{NS}Prefix").text or ""  # type: ignore[union-attr]
        keys += [c.find(f"{NS}Key").text[len(prefix) :] for c in tree.findall(f"{NS}Contents")]  # type: ignore[union-attr,index]
        prefixes += [c.find(f"{NS}Prefix").text[len(prefix) :] for c in tree.findall(f"{NS}CommonPrefixes")]  # type: ignore[union-attr,index]
        next_token = tree.find(f"{NS}NextContinuationToken")
        if next_token is None:
            return keys, prefixes
        token = next_token.text


def test_uploads_listing_paging_head_delete_and_commit(http: tuple[TestClient, dict[str, str]]) -> None:
    client, h = http
    ds = client.post("/datasets", json={"name": "many"}, headers=h).json()["id"]
    ver = client.post(f"/datasets/{ds}/versions", json={}, headers=h).json()["version"]
    names = [f"/d{n % 3}/f{n:03d}.txt" for n in range(150)] + ["/top.txt", "/empty.bin"]
    puts = _presign(client, h, ds, ver, [{"method": "putObject", "params": {"Key": k}} for k in names])
    for key, answer in zip(names, puts, strict=True):
        body = b"" if key == "/empty.bin" else key.encode()
        assert client.put(answer["url"], content=body).status_code == 200

    def check_listing() -> None:
        keys, prefixes = _list(client, h, ds, ver, {"Prefix": "/", "Delimiter": "", "MaxKeys": 64})
        assert sorted(keys) == sorted(k.lstrip("/") for k in names)
        assert len(keys) == len(set(keys))
        keys, prefixes = _list(client, h, ds, ver, {"Prefix": "/", "MaxKeys": 2})
        assert prefixes == ["d0/", "d1/", "d2/"]
        assert keys == ["empty.bin", "top.txt"]
        keys, _ = _list(client, h, ds, ver, {"Prefix": "/d1/", "Delimiter": "", "MaxKeys": 7})
        assert len(keys) == 50

    check_listing()  # uploads only
    head = _presign(client, h, ds, ver, [{"method": "headObject", "params": {"Key": "/top.txt"}}])[0]["url"]
    assert client.head(head).headers["content-length"] == str(len(b"/top.txt"))
    missing = _presign(client, h, ds, ver, [{"method": "headObject", "params": {"Key": "/nope"}}])[0]["url"]
    assert client.head(missing).status_code == 404
    gone = _presign(client, h, ds, ver, [{"method": "deleteObject", "params": {"Key": "/top.txt"}}])[0]["url"]
    assert client.delete(gone).status_code == 204
    names.remove("/top.txt")

    committed = client.post(f"/datasets/{ds}/versions/{ver}", json={"isCommitted": True}, headers=h).json()
    assert committed["isCommitted"] is True
    assert committed["fileCount"] == len(names)
    keys, _ = _list(client, h, ds, ver, {"Prefix": "/", "Delimiter": "", "MaxKeys": 64})
    assert sorted(keys) == sorted(k.lstrip("/") for k in names)
    get = _presign(client, h, ds, ver, [{"method": "getObject", "params": {"Key": "d2/f002.txt"}}])[0]["url"]
    assert client.get(get).content == b"/d2/f002.txt"
    empty = _presign(client, h, ds, ver, [{"method": "getObject", "params": {"Key": "empty.bin"}}])[0]["url"]
    assert client.get(empty).content == b""
    absent = _presign(client, h, ds, ver, [{"method": "getObject", "params": {"Key": "top.txt"}}])[0]["url"]
    assert client.get(absent).status_code == 404
    assert re.search(r"<Code>NoSuchKey</Code>", client.get(absent).text)


def test_unknown_calls_and_bad_parameters_are_refused(http: tuple[TestClient, dict[str, str]]) -> None:
    client, h = http
    ds = client.post("/datasets", json={"name": "bad"}, headers=h).json()["id"]
    ver = client.post(f"/datasets/{ds}/versions", json={}, headers=h).json()["version"]
    bodies: list[dict[str, Any]] = [
        {"calls": [{"method": "copyObject", "params": {"Key": "a"}}]},
        {"calls": [{"method": "listObjectsV2", "params": {"MaxKeys": -1}}]},
        {"calls": [{"method": "listObjectsV2", "params": {"Delimiter": "|"}}]},
        {"calls": [{"method": "uploadPart", "params": {"Key": "a", "UploadId": "u", "PartNumber": 0}}]},
        {"calls": "all of them"},
        {"nothing": []},
    ]
    for body in bodies:
        response = client.post(f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls", json=body, headers=h)
        assert response.status_code == 400, (body, response.text)


def test_a_commit_racing_another_one_for_the_same_uploads_still_succeeds(
    http: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two commits of one version at once (two clients, or a retry): the second finds uploads the
    first has already absorbed and removed; it must finish with every file, not fail half-way."""
    from datakeep.providers.local import LocalProvider
    from datakeep.server.gradient_files import absorb_uploads

    client, h = http
    ds = client.post("/datasets", json={"name": "race"}, headers=h).json()["id"]
    ver = client.post(f"/datasets/{ds}/versions", json={}, headers=h).json()["version"]
    calls = [{"method": "putObject", "params": {"Key": f"/f{i}.txt"}} for i in range(5)]
    for i, answer in enumerate(_presign(client, h, ds, ver, calls)):
        assert client.put(answer["url"], content=f"file {i}\n".encode()).status_code == 200

    state = client.app.state.datakeep  # type: ignore[attr-defined]
    team = state.admin.get_team("files")["id"]
    original = LocalProvider.download
    raced: list[str] = []

    def download(self: LocalProvider, key: str, path: Path) -> None:
        if not raced:  # the other request's commit absorbs the same uploads right now
            raced.append(key)
            team_client = state.client_for(team)
            absorb_uploads(state, team_client, team_client.versions.literal(f"{ds}:{ver}"))
        original(self, key, path)

    monkeypatch.setattr(LocalProvider, "download", download)
    response = client.post(f"/datasets/{ds}/versions/{ver}", json={"isCommitted": True}, headers=h)
    assert raced, "the race was not staged"
    assert response.status_code == 200, response.text
    assert response.json()["isCommitted"] is True
    assert response.json()["fileCount"] == 5
    keys, _ = _list(client, h, ds, ver, {"Prefix": "/", "Delimiter": ""})
    assert sorted(keys) == [f"f{i}.txt" for i in range(5)]


def test_downloading_a_version_file_by_file_reads_its_tree_once_per_request(
    http: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version of many files in one folder: looking each file up in the folder's tree again
    (decoding thousands of entries per file) made a 15,000-file download take over 20 minutes."""
    from datakeep.storage import manifest

    client, h = http
    ds = client.post("/datasets", json={"name": "flat"}, headers=h).json()["id"]
    ver = client.post(f"/datasets/{ds}/versions", json={}, headers=h).json()["version"]
    keys = [f"flat/f{i:03d}.txt" for i in range(64)]
    calls = [{"method": "putObject", "params": {"Key": k}} for k in keys]
    for key, answer in zip(keys, _presign(client, h, ds, ver, calls), strict=True):
        assert client.put(answer["url"], content=key.encode()).status_code == 200
    assert (
        client.post(f"/datasets/{ds}/versions/{ver}", json={"isCommitted": True}, headers=h).status_code
        == 200
    )

    decoded: list[int] = []
    original = manifest.decode

    def counting_decode(data: bytes) -> Any:
        decoded.append(1)
        return original(data)

    monkeypatch.setattr(manifest, "decode", counting_decode)
    plan = client.post(f"/datakeep/v1/datasets/{ds}/versions/{ver}/downloads", json={"keys": keys}, headers=h)
    assert plan.status_code == 200, plan.text
    assert len(decoded) <= 2  # the root and flat/, once each
    decoded.clear()
    for item in plan.json()["files"]:
        assert client.get(item["url"]).content == item["key"].encode()
    assert decoded == []  # each URL names its content: no tree is read per file
    # Gradient's getObject path shares the per-request lookups.
    urls = _presign(client, h, ds, ver, [{"method": "getObject", "params": {"Key": k}} for k in keys])
    assert len(decoded) <= 2
    assert client.get(urls[5]["url"]).content == keys[5].encode()
