"""Who may do what on the server: keys, teams, hostile input, and the server's own signed URLs.

These run the app in process (Starlette's TestClient, over a real SQLite catalog), so each
request is cheap enough to try every route.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from datakeep.config import Settings
from datakeep.server.app import MAX_JSON_BODY, create_app
from datakeep.server.state import ServerState


@dataclass
class Api:
    http: TestClient
    state: ServerState

    def key_for_new_team(self, name: str) -> str:
        self.state.admin.create_team(name)
        return self.state.admin.create_key(name).key


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings.from_env({"DATAKEEP_HOME": str(tmp_path / "server"), "DATAKEEP_SERVER_KEY": "k"})
    app = create_app(settings)
    with TestClient(app) as http:
        yield Api(http, app.state.datakeep)


def _h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _dataset_with_version(api: Api, key: str, name: str = "private") -> tuple[str, str]:
    ds = api.http.post("/datasets", json={"name": name}, headers=_h(key))
    assert ds.status_code == 200, ds.text
    ds_id = ds.json()["id"]
    ver = api.http.post(f"/datasets/{ds_id}/versions", json={"message": "m"}, headers=_h(key))
    assert ver.status_code == 200, ver.text
    return ds_id, ver.json()["version"]


# KEYS


def test_requests_without_a_valid_key_are_refused(api: Api) -> None:
    good = api.key_for_new_team("alpha")
    assert api.http.get("/datasets", headers=_h(good)).status_code == 200
    assert api.http.get("/datasets", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    for headers in ({}, _h("dk_wrong"), _h(good + "x"), {"Authorization": f"Basic {good}"}, _h("")):
        response = api.http.get("/datasets", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["message"] == "Invalid or missing API key"
    assert api.http.get("/healthz").status_code == 200


def test_a_revoked_key_stops_working_at_once(api: Api) -> None:
    api.state.admin.create_team("beta")
    created = api.state.admin.create_key("beta", name="ci")
    assert api.http.get("/storageProviders", headers=_h(created.key)).status_code == 200
    api.state.admin.revoke_key(created.id)
    response = api.http.get("/storageProviders", headers=_h(created.key))
    assert response.status_code == 401
    other = api.state.admin.create_key("beta")
    assert api.http.get("/storageProviders", headers=_h(other.key)).status_code == 200


def test_keys_are_stored_hashed(api: Api) -> None:
    api.state.admin.create_team("gamma")
    created = api.state.admin.create_key("gamma")
    from sqlalchemy import text

    with api.state.catalog.begin() as c:
        stored = [tuple(r) for r in c.execute(text("SELECT * FROM api_keys"))]
    assert stored
    assert created.key not in json.dumps(stored, default=str)


# TEAMS


def _routes(ds: str, ver: str, sp: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", f"/datasets/{ds}", None),
        ("POST", f"/datasets/{ds}", {"description": "mine now"}),
        ("DELETE", f"/datasets/{ds}", None),
        ("GET", f"/datasets/ref/{ds}:{ver}", None),
        ("GET", f"/datasets/{ds}/versions", None),
        ("POST", f"/datasets/{ds}/versions", {"message": "x"}),
        ("GET", f"/datasets/{ds}/versions/{ver}", None),
        ("POST", f"/datasets/{ds}/versions/{ver}", {"isCommitted": True}),
        ("DELETE", f"/datasets/{ds}/versions/{ver}", None),
        ("GET", f"/datasets/{ds}/tags", None),
        ("PUT", f"/datasets/{ds}/tags/prod", {"version": ver}),
        ("GET", f"/datasets/{ds}/tags/prod", None),
        ("DELETE", f"/datasets/{ds}/tags/prod", None),
        (
            "POST",
            f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls",
            {"calls": [{"method": "listObjectsV2", "params": {"Prefix": "/"}}]},
        ),
        ("GET", f"/storageProviders/{sp}", None),
        ("POST", f"/storageProviders/{sp}", {"name": "stolen"}),
        ("DELETE", f"/storageProviders/{sp}", None),
        ("POST", "/datasets", {"name": "sneaky", "storageProviderId": sp}),
        # datakeep's own routes, for its remote client
        ("POST", "/datakeep/v1/call", {"service": "datasets", "method": "get", "args": [ds]}),
        ("POST", "/datakeep/v1/call", {"service": "versions", "method": "get", "args": [f"{ds}:{ver}"]}),
        ("POST", "/datakeep/v1/call", {"service": "tags", "method": "get", "args": [f"{ds}:prod"]}),
        ("POST", "/datakeep/v1/call", {"service": "files", "method": "list", "args": [f"{ds}:{ver}"]}),
        ("POST", "/datakeep/v1/call", {"service": "storage_providers", "method": "get", "args": [sp]}),
        ("POST", f"/datakeep/v1/datasets/{ds}/versions/{ver}/missing", {"digests": ["0" * 64]}),
        ("POST", f"/datakeep/v1/datasets/{ds}/versions/{ver}/downloads", {"keys": ["a.txt"]}),
        ("POST", f"/datakeep/v1/datasets/{ds}/versions/{ver}/link", {"files": []}),
        # jobs reading another team's version, or writing into its dataset
        ("POST", "/datakeep/v1/jobs", {"command": "true", "datasets": [f"in@{ds}:{ver}"]}),
        ("POST", "/datakeep/v1/jobs", {"command": "true", "datasets": [f"out@{ds}"]}),
        (
            "POST",
            "/jobs/createJob/?command=true&datasets=" + quote(json.dumps([{"id": ds, "name": "out"}])),
            None,
        ),
    ]


def _normalized(body: dict[str, Any], *ids: str) -> str:
    text = json.dumps(body, sort_keys=True)
    for value in ids:
        text = text.replace(value, "<id>")
    return text


def test_another_teams_ids_look_exactly_like_missing_ones(api: Api) -> None:
    owner = api.key_for_new_team("owner")
    intruder = api.key_for_new_team("intruder")
    ds, ver = _dataset_with_version(api, owner)
    api.http.put(f"/datasets/{ds}/tags/prod", json={"version": ver}, headers=_h(owner))
    sp = api.http.get(f"/datasets/{ds}", headers=_h(owner)).json()["storageProvider"]["id"]
    missing_ds, missing_sp = "ds0000000000000", "sp0000000000000"

    for (method, path, body), (_, missing_path, missing_body) in zip(
        _routes(ds, ver, sp), _routes(missing_ds, ver, missing_sp), strict=True
    ):
        theirs = api.http.request(method, path, json=body, headers=_h(intruder))
        nothing = api.http.request(method, missing_path, json=missing_body, headers=_h(intruder))
        assert theirs.status_code == nothing.status_code == 404, (method, path, theirs.text)
        assert _normalized(theirs.json(), ds, sp) == _normalized(nothing.json(), missing_ds, missing_sp)

    # Another team's job: its logs and record look like a job that does not exist.
    job = api.http.post(
        "/datakeep/v1/jobs", json={"command": "echo private", "mount_mode": "env"}, headers=_h(owner)
    )
    assert job.status_code == 200, job.text
    job_id, missing_job = job.json()["id"], "j" + "0" * 13
    for theirs_path, nothing_path in (
        (f"/jobs/logs?jobId={job_id}&line=0&limit=10", f"/jobs/logs?jobId={missing_job}&line=0&limit=10"),
        (f"/jobs/logs?experimentId={job_id}", f"/jobs/logs?experimentId={missing_job}"),
    ):
        theirs = api.http.get(theirs_path, headers=_h(intruder))
        nothing = api.http.get(nothing_path, headers=_h(intruder))
        assert theirs.status_code == nothing.status_code == 404, (theirs_path, theirs.text)
        assert _normalized(theirs.json(), job_id) == _normalized(nothing.json(), missing_job)
    for method in ("get", "logs"):
        theirs = api.http.post(
            "/datakeep/v1/call",
            json={"service": "jobs", "method": method, "args": [job_id]},
            headers=_h(intruder),
        )
        nothing = api.http.post(
            "/datakeep/v1/call",
            json={"service": "jobs", "method": method, "args": [missing_job]},
            headers=_h(intruder),
        )
        assert theirs.status_code == nothing.status_code == 404, (method, theirs.text)
        assert _normalized(theirs.json(), job_id) == _normalized(nothing.json(), missing_job)
    assert api.http.post(
        "/datakeep/v1/call", json={"service": "jobs", "method": "list"}, headers=_h(intruder)
    ).json() == {"result": []}

    # Lists show nothing of the other team, and the owner's data is untouched.
    assert api.http.get("/datasets", headers=_h(intruder)).json() == []
    assert [p["name"] for p in api.http.get("/storageProviders", headers=_h(intruder)).json()] == ["default"]
    mine = api.http.get(f"/datasets/{ds}", headers=_h(owner)).json()
    assert mine["description"] is None
    assert api.http.get(f"/datasets/{ds}/versions/{ver}", headers=_h(owner)).json()["isCommitted"] is False
    assert [t["name"] for t in api.http.get(f"/datasets/{ds}/tags", headers=_h(owner)).json()] == ["prod"]


# HOSTILE INPUT


@pytest.mark.parametrize(
    "key",
    ["../other/file", "/a/../../b", "a/./b", "..", "a\\..\\b", "a\x00b", "/", ""],
)
def test_path_traversal_in_file_keys_is_refused(api: Api, key: str) -> None:
    owner = api.key_for_new_team("paths")
    ds, ver = _dataset_with_version(api, owner)
    for method in ("getObject", "putObject", "headObject", "deleteObject"):
        response = api.http.post(
            f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls",
            json={"calls": [{"method": method, "params": {"Key": key}}]},
            headers=_h(owner),
        )
        assert response.status_code == 400, (method, key, response.text)
        assert response.json()["error"]["code"] == "invalid_path"


def test_malformed_json_is_a_clear_400(api: Api) -> None:
    owner = api.key_for_new_team("json")
    for body in (b"{not json", b'{"name": ', b"\xff\xfe", b"[1, 2]", b'"text"'):
        response = api.http.post(
            "/datasets", content=body, headers={**_h(owner), "Content-Type": "application/json"}
        )
        assert response.status_code == 400, (body, response.text)
        assert "error" in response.json()
    bad_filter = api.http.get("/datasets", params={"filter[limit]": "lots"}, headers=_h(owner))
    assert bad_filter.status_code == 400
    assert "filter[limit]" in bad_filter.json()["error"]["message"]
    wrong_type = api.http.post("/datasets", json={"name": ["a"]}, headers=_h(owner))
    assert wrong_type.status_code == 400
    bad_env = api.http.post("/jobs/createJob/?command=true&envVars=%7Bnot", headers=_h(owner))
    assert bad_env.status_code == 400, bad_env.text
    assert "envVars" in bad_env.json()["error"]["message"]


def test_oversized_json_is_refused_before_it_is_read(api: Api) -> None:
    owner = api.key_for_new_team("big")
    huge = json.dumps({"name": "x" * (MAX_JSON_BODY + 10)})
    response = api.http.post(
        "/datasets", content=huge, headers={**_h(owner), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["statusCode"] == 413
    assert response.json()["error"]["hint"] == "Send the items in several smaller requests"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is counted as it arrives
        yield b'{"name": "'
        for _ in range(MAX_JSON_BODY // 65536 + 2):
            yield b"y" * 65536
        yield b'"}'

    response = api.http.post(
        "/datasets", content=chunks(), headers={**_h(owner), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert api.http.get("/datasets", headers=_h(owner)).json() == []


# THE SERVER'S SIGNED URLS


def _list_url(api: Api, key: str, ds: str, ver: str) -> str:
    response = api.http.post(
        f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls",
        json={"calls": [{"method": "listObjectsV2", "params": {"Prefix": "/"}}]},
        headers=_h(key),
    )
    assert response.status_code == 200, response.text
    url: str = response.json()[0]["url"]
    return url


def test_signed_urls_work_without_a_key_but_only_as_issued(api: Api) -> None:
    owner = api.key_for_new_team("urls")
    ds, ver = _dataset_with_version(api, owner)
    url = _list_url(api, owner, ds, ver)
    assert api.http.get(url).status_code == 200
    assert "<ListBucketResult" in api.http.get(url).text
    # Used with another verb: refused.
    assert api.http.delete(url).status_code == 405
    # Tampered to name another version: the signature no longer matches.
    token = url.rsplit("/", 1)[1]
    import base64

    body, mac = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    ds2, ver2 = _dataset_with_version(api, owner, "another")
    payload["d"], payload["v"] = ds2, ver2
    forged = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    forged_url = url.rsplit("/", 1)[0] + "/" + forged.decode().rstrip("=") + "." + mac
    response = api.http.get(forged_url)
    assert response.status_code == 403
    assert api.http.get(url.rsplit("/", 1)[0] + "/garbage").status_code == 403


def test_signed_urls_expire(api: Api) -> None:
    owner = api.key_for_new_team("expiry")
    ds, ver = _dataset_with_version(api, owner)
    api.state.signer.ttl = -1  # every URL issued from now on is already past its expiry
    url = _list_url(api, owner, ds, ver)
    response = api.http.get(url)
    assert response.status_code == 403
    assert "expired" in response.json()["error"]["message"]


def test_no_write_url_for_a_committed_version(api: Api) -> None:
    owner = api.key_for_new_team("frozen")
    ds, ver = _dataset_with_version(api, owner)
    delete_url = api.http.post(
        f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls",
        json={"calls": [{"method": "deleteObject", "params": {"Key": "a.txt"}}]},
        headers=_h(owner),
    ).json()[0]["url"]
    assert (
        api.http.post(
            f"/datasets/{ds}/versions/{ver}", json={"isCommitted": True}, headers=_h(owner)
        ).status_code
        == 200
    )
    for method in ("putObject", "deleteObject", "createMultipartUpload"):
        response = api.http.post(
            f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls",
            json={"calls": [{"method": method, "params": {"Key": "a.txt"}}]},
            headers=_h(owner),
        )
        assert response.status_code == 403, (method, response.text)
        assert response.json()["error"]["code"] == "version_committed"
    # A delete URL issued before the commit is refused after it.
    assert api.http.delete(delete_url).status_code == 403


# STORAGE PROVIDER SECRETS AND S3 URLS


def test_provider_secrets_are_encrypted_at_rest_and_masked(api: Api, s3: Any, make_bucket: Any) -> None:
    owner = api.key_for_new_team("secrets")
    make_bucket("secret-bucket")
    created = api.http.post(
        "/storageProviders",
        json={
            "name": "s3",
            "type": "s3",
            "config": {
                "bucket": "secret-bucket",
                "accessKey": s3.access_key,
                "secretAccessKey": s3.secret_key,
                "endpoint": s3.endpoint_url,
            },
        },
        headers=_h(owner),
    )
    assert created.status_code == 200, created.text
    assert created.json()["config"]["secretAccessKey"] == "********"
    sp = created.json()["id"]
    for response in (
        api.http.get(f"/storageProviders/{sp}", headers=_h(owner)),
        api.http.get("/storageProviders", headers=_h(owner)),
    ):
        assert s3.secret_key not in response.text
        assert "********" in response.text
    from sqlalchemy import text

    with api.state.catalog.begin() as c:
        stored = json.dumps(
            [tuple(r) for r in c.execute(text("SELECT config FROM storage_providers"))], default=str
        )
    assert s3.secret_key not in stored
    assert "enc:v1:" in stored
    # Sending the mask back (a client echoing what it read) keeps the real secret.
    api.http.post(
        f"/storageProviders/{sp}", json={"config": {"secretAccessKey": "********"}}, headers=_h(owner)
    )
    ds = api.http.post("/datasets", json={"name": "d", "storageProviderId": sp}, headers=_h(owner)).json()[
        "id"
    ]
    ver = api.http.post(f"/datasets/{ds}/versions", json={}, headers=_h(owner)).json()["version"]
    url = api.http.post(
        f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls",
        json={"calls": [{"method": "putObject", "params": {"Key": "/x.txt"}}]},
        headers=_h(owner),
    ).json()[0]["url"]
    import httpx

    assert httpx.put(url, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 200


def test_s3_urls_are_scoped_to_the_version_and_short_lived(api: Api, s3: Any, make_bucket: Any) -> None:
    from urllib.parse import parse_qs, unquote, urlparse

    owner = api.key_for_new_team("scoped")
    make_bucket("scoped-bucket")
    sp = api.http.post(
        "/storageProviders",
        json={"name": "s3", "type": "s3", "config": {"bucket": "scoped-bucket", "accessKey": s3.access_key,
                                                     "secretAccessKey": s3.secret_key, "endpoint": s3.endpoint_url}},
        headers=_h(owner),
    ).json()["id"]  # fmt: skip
    ds = api.http.post("/datasets", json={"name": "d", "storageProviderId": sp}, headers=_h(owner)).json()[
        "id"
    ]
    ver = api.http.post(f"/datasets/{ds}/versions", json={}, headers=_h(owner)).json()["version"]
    team = api.state.admin.get_team("scoped")["id"]
    answers = api.http.post(
        f"/datasets/{ds}/versions/{ver}/s3/preSignedUrls",
        json={"calls": [{"method": "putObject", "params": {"Key": "/a/b.txt"}}]},
        headers=_h(owner),
    ).json()
    parsed = urlparse(answers[0]["url"])
    assert unquote(parsed.path) == f"/scoped-bucket/uploads/{team}/{ds}/{ver}/a/b.txt"
    query = parse_qs(parsed.query)
    assert int(query["X-Amz-Expires"][0]) <= 15 * 60
    assert answers[0]["expires_in"] <= 15 * 60


def test_lists_follow_loopback_order_and_paging(api: Api) -> None:
    owner = api.key_for_new_team("paging")
    for name in ("b", "a", "d", "c"):
        api.http.post("/datasets", json={"name": name}, headers=_h(owner))

    def names(**params: str) -> list[str]:
        response = api.http.get("/datasets", params=params, headers=_h(owner))
        assert response.status_code == 200, response.text
        return [d["name"] for d in response.json()]

    assert names() == ["a", "b", "c", "d"]
    assert names(**{"filter[limit]": "2", "filter[skip]": "1", "filter[order][]": "name ASC"}) == ["b", "c"]
    assert names(**{"filter[order][]": "name DESC", "filter[limit]": "3"}) == ["d", "c", "b"]
    ds = api.http.get("/datasets", headers=_h(owner)).json()[0]["id"]
    made = [
        api.http.post(f"/datasets/{ds}/versions", json={"message": str(i)}, headers=_h(owner)).json()
        for i in range(3)
    ]
    api.http.post(
        f"/datasets/{ds}/versions/{made[1]['version']}", json={"isCommitted": True}, headers=_h(owner)
    )
    committed = api.http.get(
        f"/datasets/{ds}/versions", params={"filter[where][isCommitted]": "true"}, headers=_h(owner)
    )
    assert [v["message"] for v in committed.json()] == ["1"]
    uncommitted = api.http.get(
        f"/datasets/{ds}/versions",
        params={"filter[where][isCommitted]": "false", "filter[order][]": "dtCreated DESC"},
        headers=_h(owner),
    )
    assert [v["message"] for v in uncommitted.json()] == ["2", "0"]


def test_health_and_openapi_need_no_key(api: Api) -> None:
    health = api.http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    spec = api.http.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for route in (
        "/datasets",
        "/datasets/{dataset_id}",
        "/datasets/ref/{ref}",
        "/datasets/{dataset_id}/versions/{version}",
        "/datasets/{dataset_id}/tags/{name}",
        "/datasets/{dataset_id}/versions/{version}/s3/preSignedUrls",
        "/storageProviders/{provider_id}",
        "/jobs/createJob/",
        "/jobs/logs",
        "/experiments/run/",
    ):
        assert route in paths, route
    assert "put" in paths["/datasets/{dataset_id}/tags/{name}"]
    assert "post" in paths["/datasets/{dataset_id}"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"service": "datasets", "method": "list", "args": ["x"]}, "too many positional"),
        ({"service": "datasets", "method": "get", "args": []}, "missing a required argument"),
        ({"service": "datasets", "method": "get", "args": [5]}, "dataset_id must be a string"),
        ({"service": "datasets", "method": "list", "kwargs": {"limit": "a"}}, "limit must be a whole number"),
        (
            {"service": "datasets", "method": "list", "kwargs": {"offset": -1}},
            "offset must be a whole number",
        ),
        (
            {"service": "versions", "method": "list", "args": ["d"], "kwargs": {"is_committed": "yes"}},
            "true or false",
        ),
        (
            {
                "service": "storage_providers",
                "method": "create",
                "kwargs": {"name": "x", "type": "s3", "config": "c"},
            },
            "config must be an object",
        ),
        (
            {"service": "files", "method": "delete", "args": ["d:v"], "kwargs": {"paths": [1]}},
            "list of strings",
        ),
        ({"service": "files", "method": "get", "args": ["d:v"]}, "cannot be called remotely"),
    ],
)
def test_remote_calls_with_bad_arguments_are_a_clear_400(api: Api, body: dict[str, Any], says: str) -> None:
    """The library is never reached with arguments it would trip over (a bare 500 says nothing)."""
    owner = api.key_for_new_team("calls")
    response = api.http.post("/datakeep/v1/call", json=body, headers=_h(owner))
    assert response.status_code == 400, response.text
    assert says in response.json()["error"]["message"]


def test_an_unexpected_failure_is_a_loopback_500_without_details(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATAKEEP_HOME": str(tmp_path / "server"), "DATAKEEP_SERVER_KEY": "k"})
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail of the server")

    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.get("/boom")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["statusCode"] == 500
    assert error["name"] == "InternalServerError"
    assert "secret detail" not in response.text
