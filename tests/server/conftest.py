"""Fixtures for the server tests: a real ``datakeep server`` in a subprocess, teams, keys, CLIs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from datakeep.client import Client
from datakeep.config import Settings

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
SERVER_KEY = "test-server-key-not-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    home: Path
    database_url: str
    process: subprocess.Popen[bytes]
    log: Path
    _admin: Client | None = field(default=None, repr=False)

    @property
    def admin(self) -> Client:
        """A library client on the server's own catalog, as ``datakeep admin`` on its machine."""
        if self._admin is None:
            settings = Settings.from_env(
                {
                    "DATAKEEP_HOME": str(self.home),
                    "DATAKEEP_DATABASE_URL": self.database_url,
                    "DATAKEEP_SERVER_KEY": SERVER_KEY,
                }
            )
            self._admin = Client(settings, progress=False)
        return self._admin

    def new_key(self, team: str | None = None) -> str:
        """A key for a new team (or for ``team``), straight from the server's catalog."""
        if team is None:
            team = f"team-{os.urandom(4).hex()}"
            self.admin.admin.create_team(team)
        return self.admin.admin.create_key(team).key


def start_server(
    home: Path, database_url: str | None = None, extra_env: dict[str, str] | None = None, workers: int = 1
) -> RunningServer:
    port = _free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAKEEP_", "AWS_"))}
    env.update(
        DATAKEEP_HOME=str(home),
        DATAKEEP_SERVER_KEY=SERVER_KEY,
        DATAKEEP_CACHE=str(home / "cache"),
        DATAKEEP_SHARED_STORAGE=str(home / "shared"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    db_url = database_url or f"sqlite:///{home / 'catalog.db'}"
    env["DATAKEEP_DATABASE_URL"] = db_url
    env.update(extra_env or {})
    log = home / "server.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from datakeep.cli.main import entry_point; entry_point()",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"datakeep server did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return RunningServer(url=url, home=home, database_url=db_url, process=process, log=log)


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    if server._admin is not None:
        server._admin.close()


@pytest.fixture(scope="module")
def dk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server per test module (SQLite catalog); tests isolate themselves with their own team."""
    server = start_server(tmp_path_factory.mktemp("dk-server"))
    try:
        yield server
    finally:
        stop_server(server)


def gradient_bin(version: str) -> Path:
    path = TOOLS / f"gradient-{version}" / "bin" / "gradient"
    if not path.exists():
        message = f"gradient {version} is not installed in .tools/ (run scripts/setup.sh)"
        # CI must run the compatibility tests, not pass by skipping them.
        if os.environ.get("DATAKEEP_TEST_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class Gradient:
    """Runs the original ``gradient`` CLI against the server, as a user would."""

    binary: Path
    server_url: str
    api_key: str
    home: Path
    cwd: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAKEEP_", "AWS_", "PAPERSPACE_"))}
        env.update(
            HOME=str(self.home),
            PAPERSPACE_CONFIG_HOST=self.server_url,
            PAPERSPACE_API_KEY=self.api_key,
            PYTHONWARNINGS="ignore",
            COLUMNS="200",
        )
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args],
            env=self.env(),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        # gradient exits 0 even on errors, printing them on stderr: a test must look at both.
        if check and (result.returncode != 0 or result.stderr.strip()):
            raise AssertionError(
                f"gradient {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result


@pytest.fixture(scope="module")
def dk_server_pg(tmp_path_factory: pytest.TempPathFactory, postgres_server: Any) -> Iterator[RunningServer]:
    """The same, with the catalog on the session's PostgreSQL server (a database of its own)."""
    import psycopg

    name = f"server_{os.urandom(6).hex()}"
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    server = start_server(tmp_path_factory.mktemp("dk-server-pg"), postgres_server.url(name))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def gradient(request: pytest.FixtureRequest, tmp_path: Path) -> Gradient:
    """Gradient's 2.99.3 CLI, pointed at a server whose catalog is SQLite, then PostgreSQL."""
    server: RunningServer = request.getfixturevalue(
        "dk_server" if request.param == "sqlite" else "dk_server_pg"
    )
    home = tmp_path / "gradient-home"
    home.mkdir()
    return Gradient(gradient_bin("2.99.3"), server.url, server.new_key(), home, tmp_path)


@pytest.fixture
def gradient_pg(dk_server_pg: RunningServer, tmp_path: Path) -> Gradient:
    """Gradient's 2.99.3 CLI against a server on PostgreSQL only (for the longest scenario)."""
    home = tmp_path / "gradient-home"
    home.mkdir()
    return Gradient(gradient_bin("2.99.3"), dk_server_pg.url, dk_server_pg.new_key(), home, tmp_path)
