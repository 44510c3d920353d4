"""``datakeep cache`` and ``datakeep experiments datasets`` in remote mode, against a real server.

The server's cache and shared storage are shared by every team, so each test has two teams and
checks that one never sees, counts or removes the other's entries. Versions get into the
server's cache through the library call a job makes on the server's machine
(``CacheService.materialize``, with the server's own settings), which is quicker than a job and
puts the very same files there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from datakeep.catalog.schema import LOCAL_TEAM_ID
from datakeep.cli.common import reset_client
from datakeep.cli.main import main
from datakeep.client import Client, connect
from datakeep.config import Settings
from datakeep.errors import InvalidInput
from datakeep.experiments.volumes import team_storage
from fixtures.s3 import MakeBucket, S3Server

from .conftest import RunningServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass
class Team:
    id: str
    key: str
    server: RunningServer

    @property
    def lib(self) -> Client:
        """The library on the server's machine, acting for this team (what a job there uses)."""
        return self.server.admin.for_team(self.id)

    def cached(self, name: str, files: dict[str, bytes], tmp: Path) -> str:
        """A committed version of a new dataset, put in the server's cache; returns its ref."""
        src = tmp / f"src-{self.id}-{name}"
        src.mkdir()
        for rel, data in files.items():
            (src / rel).write_bytes(data)
        dataset = self.lib.datasets.create(name=name)
        ref: str = self.lib.versions.create(dataset.id, source_paths=[f"{src}/"]).ref
        self.lib.cache.materialize(ref)
        return ref


class RemoteCli:
    """The datakeep CLI in this process, in remote mode with one team's key."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def __call__(self, team: Team, *args: str, ok: bool = True) -> tuple[str, str]:
        self._monkeypatch.setenv("DATAKEEP_API_URL", team.server.url)
        self._monkeypatch.setenv("DATAKEEP_API_KEY", team.key)
        reset_client()
        self._capsys.readouterr()
        code = main(list(args))
        out, err = self._capsys.readouterr()
        assert (code == 0) == ok, f"datakeep {' '.join(args)} -> {code}\n{out}\n{err}"
        return out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> RemoteCli:
    return RemoteCli(capsys, monkeypatch)


def _team(server: RunningServer) -> Team:
    name = f"team-{os.urandom(4).hex()}"
    team = server.admin.admin.create_team(name)
    return Team(str(team["id"]), server.admin.admin.create_key(name).key, server)


@pytest.fixture
def teams(dk_server: RunningServer) -> tuple[Team, Team]:
    return _team(dk_server), _team(dk_server)


def _snapshot(server: RunningServer, ref: str) -> Path:
    return server.home / "cache" / "snapshots" / ref.replace(":", "/", 1)


def test_cache_list_shows_only_the_teams_versions(
    cli: RemoteCli, teams: tuple[Team, Team], tmp_path: Path
) -> None:
    a, b = teams
    ref_a = a.cached("alpha", {"a.txt": b"alpha\n"}, tmp_path)
    ref_b = b.cached("beta", {"b.txt": b"beta\n", "c.txt": b"gamma\n"}, tmp_path)

    out_a, _ = cli(a, "cache", "list")
    out_b, _ = cli(b, "cache", "list")
    assert ref_a in out_a
    assert ref_b not in out_a
    assert ref_b in out_b
    assert ref_a not in out_b
    rows = json.loads(cli(b, "cache", "list", "--json")[0])
    assert [(r["ref"], r["files"]) for r in rows] == [(ref_b, 2)]
    assert rows[0]["path"] == str(_snapshot(b.server, ref_b) / "files")
    # A team with nothing cached sees nothing, although the cache holds both versions.
    assert cli(_team(a.server), "cache", "list")[0].strip() == "No data found"


def test_cache_clean_removes_only_the_teams_versions_and_never_a_pinned_one(
    cli: RemoteCli, teams: tuple[Team, Team], tmp_path: Path
) -> None:
    a, b = teams
    ref_a = a.cached("alpha", {"a.txt": b"A" * 1000}, tmp_path)
    ref_b = b.cached("beta", {"b.txt": b"B" * 3000}, tmp_path)

    # Naming another team's dataset is answered as for a dataset that does not exist.
    dataset_a = ref_a.split(":")[0]
    assert cli(b, "cache", "clean", "--dataset", dataset_a)[0].splitlines() == [
        "Nothing to remove",
        "Freed 0 B (0 bytes) from 0 versions",
    ]
    out, _ = cli(b, "cache", "clean", "--dry-run")
    assert ref_b in out
    assert ref_a not in out
    assert "Would free 2.9 KiB (3000 bytes)" in out
    assert _snapshot(b.server, ref_b).is_dir()  # a dry run removes nothing

    out, _ = cli(b, "cache", "clean")
    assert "Freed 2.9 KiB (3000 bytes) from 1 version" in out
    assert not _snapshot(b.server, ref_b).exists()
    assert (_snapshot(a.server, ref_a) / "files" / "a.txt").read_bytes() == b"A" * 1000

    pin = a.lib.cache.store.pin(ref_a.replace(":", "/"), "job-running")
    try:
        out, err = cli(a, "cache", "clean", "--json")
        assert json.loads(out)["kept_pinned"] == [ref_a]
        assert json.loads(out)["remove"] == []
        assert _snapshot(a.server, ref_a).is_dir()
    finally:
        pin.release()
    out, _ = cli(a, "cache", "clean", "--older-than", "1s", "--dataset", dataset_a, "--json")
    assert json.loads(out)["remove"] in ([], [ref_a])  # used less than a second ago, or not
    cli(a, "cache", "clean")
    assert not _snapshot(a.server, ref_a).exists()


def test_freed_bytes_say_nothing_about_other_teams_content(
    cli: RemoteCli, teams: tuple[Team, Team], tmp_path: Path
) -> None:
    """Both teams cache the same bytes (one blob on disk). Team B's clean reports its own bytes as
    freed, whether or not A holds the same content, and A's copy stays whole."""
    a, b = teams
    same = {"data.bin": os.urandom(5000)}
    ref_a = a.cached("shared-content", same, tmp_path)
    ref_b = b.cached("shared-content", same, tmp_path)

    plan = json.loads(cli(b, "cache", "clean", "--dry-run", "--json")[0])
    assert plan["remove"] == [ref_b]
    assert plan["planned_bytes"] == 5000
    done = json.loads(cli(b, "cache", "clean", "--json")[0])
    assert done["freed_bytes"] == 5000
    assert (_snapshot(a.server, ref_a) / "files" / "data.bin").read_bytes() == same["data.bin"]
    assert cli(a, "cache", "verify")[0].strip() == "Cache OK"


def test_cache_verify_checks_and_repairs_only_the_teams_versions(
    cli: RemoteCli, teams: tuple[Team, Team], tmp_path: Path
) -> None:
    a, b = teams
    ref_a = a.cached("alpha", {"a.txt": b"alpha alpha\n"}, tmp_path)
    ref_b = b.cached("beta", {"b.txt": b"beta beta\n"}, tmp_path)
    damaged = _snapshot(a.server, ref_a) / "files" / "a.txt"
    os.chmod(damaged, 0o644)
    damaged.write_bytes(b"tampered!!!\n")  # the same inode as its blob: both are corrupt now

    assert cli(b, "cache", "verify")[0].strip() == "Cache OK"  # not B's problem, and not shown to B
    _, err = cli(a, "cache", "verify", ok=False)
    assert "2 problems in the cache at" in err
    rows = json.loads(cli(a, "cache", "verify", "--json", ok=False)[0])
    assert {r["kind"] for r in rows} == {"corrupt_blob", "corrupt_file"}
    assert not any(r["repaired"] for r in rows)

    out, _ = cli(a, "cache", "verify", "--repair")
    assert "fetched again" in out
    assert damaged.read_bytes() == b"alpha alpha\n"
    assert cli(a, "cache", "verify")[0].strip() == "Cache OK"
    assert (_snapshot(b.server, ref_b) / "files" / "b.txt").read_bytes() == b"beta beta\n"


def test_admin_commands_still_refuse_remote_mode(cli: RemoteCli, teams: tuple[Team, Team]) -> None:
    a, _ = teams
    admin = (("teams", "list"), ("keys", "list"), ("fsck",), ("rebuild-catalog",), ("gc",))
    for args in (("admin", *a) for a in admin):
        _, err = cli(a, *args, ok=False)
        assert "DATAKEEP_API_URL" in err, (args, err)
    remote = connect(Settings.from_env({"DATAKEEP_API_URL": a.server.url, "DATAKEEP_API_KEY": a.key}))
    try:
        with pytest.raises(InvalidInput, match="administers the server"):
            _ = remote.admin
    finally:
        remote.close()


def test_team_storage_keeps_the_local_teams_paths(tmp_path: Path) -> None:
    assert team_storage(tmp_path, LOCAL_TEAM_ID) == tmp_path
    assert team_storage(tmp_path, "te0123456789abc") == tmp_path / "teams" / "te0123456789abc"
    with pytest.raises(InvalidInput):
        team_storage(tmp_path, "../../etc")
    client = Client(Settings.from_env(), progress=False)
    try:
        assert client.experiments.shared.root == Settings.from_env().shared_storage_path / "data"
    finally:
        client.close()


def _run_experiment(cli: RemoteCli, team: Team, s3: S3Server, name: str) -> str:
    out, _ = cli(
        team,
        "experiments", "run", "singlenode", "--name", f"ex-{name}", "--projectId", "prj",
        "--container", "img", "--machineType", "K80",
        "--command", f"cat /data/{name}/numbers.csv",
        "--datasetUri", "s3://team-exp/numbers.csv", "--datasetName", name,
        "--datasetAwsAccessKeyId", s3.access_key, "--datasetAwsSecretAccessKey", s3.secret_key,
        "--datasetAwsEndpoint", s3.endpoint_url,
    )  # fmt: skip
    return out


def test_experiment_shared_datasets_are_each_teams_own(
    cli: RemoteCli,
    teams: tuple[Team, Team],
    s3: S3Server,
    make_bucket: MakeBucket,
    s3_client: S3Client,
) -> None:
    from datakeep.runner.sandbox import sandbox_status

    if not sandbox_status()[0]:
        pytest.skip(f"no mount namespace here: {sandbox_status()[1]}")
    a, b = teams
    make_bucket("team-exp")
    s3_client.put_object(Bucket="team-exp", Key="numbers.csv", Body=b"7,8,9\n")
    assert "7,8,9" in _run_experiment(cli, a, s3, "numbers")
    assert "7,8,9" in _run_experiment(cli, b, s3, "other")
    shared = a.server.home / "shared"
    assert (shared / "teams" / a.id / "data" / "numbers" / "numbers.csv").read_bytes() == b"7,8,9\n"
    assert (shared / "teams" / b.id / "data" / "other").is_dir()
    assert not (shared / "data").exists()  # the server's local team has run nothing

    out_a, _ = cli(a, "experiments", "datasets", "list")
    assert "numbers" in out_a
    assert "s3://team-exp/numbers.csv" in out_a
    assert "other" not in out_a
    rows = json.loads(cli(b, "experiments", "datasets", "list", "--json")[0])
    assert [(r["name"], r["path"]) for r in rows] == [
        ("other", str(shared / "teams" / b.id / "data" / "other"))
    ]

    # B cannot name, plan or remove A's copy.
    _, err = cli(b, "experiments", "datasets", "clean", "--name", "numbers", ok=False)
    assert "No shared dataset named 'numbers'" in err
    out, _ = cli(b, "experiments", "datasets", "clean", "--older-than", "0s")
    assert "Removed other" in out
    assert "numbers" not in out
    assert (shared / "teams" / a.id / "data" / "numbers").is_dir()
    assert cli(b, "experiments", "datasets", "list")[0].strip() == "No data found"

    out, _ = cli(a, "experiments", "datasets", "clean", "--name", "numbers", "--dry-run")
    assert "Would remove numbers" in out
    assert (shared / "teams" / a.id / "data" / "numbers").is_dir()
    out, _ = cli(a, "experiments", "datasets", "clean", "--name", "numbers")
    assert "Removed numbers" in out
    assert not (shared / "teams" / a.id / "data" / "numbers").exists()


def test_the_routes_refuse_other_teams_refs_and_missing_keys(
    teams: tuple[Team, Team], tmp_path: Path
) -> None:
    """A client that skips the CLI and names another team's version outright removes nothing."""
    import httpx

    a, b = teams
    ref_a = a.cached("alpha", {"a.txt": b"alpha\n"}, tmp_path)
    url = f"{a.server.url}/datakeep/v1/cache/clean"
    answer = httpx.post(url, json={"refs": [ref_a]}, headers={"X-API-Key": b.key})
    assert answer.status_code == 200
    assert answer.json()["versions"] == []
    assert answer.json()["freedBytes"] == 0
    assert _snapshot(a.server, ref_a).is_dir()
    assert httpx.post(url, json={"refs": [ref_a]}).status_code == 401
    assert httpx.get(f"{a.server.url}/datakeep/v1/cache").status_code == 401
    bad = httpx.post(url, json={"refs": "all"}, headers={"X-API-Key": b.key})
    assert bad.status_code == 400
    assert httpx.post(url, json={"refs": [ref_a]}, headers={"X-API-Key": a.key}).json()["freedBytes"] == 6
    assert not _snapshot(a.server, ref_a).exists()
