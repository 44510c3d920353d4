"""Where no mount namespace can be made, for real: root without CAP_SYS_ADMIN.

That is docker's default for a container, and the one such case this machine can produce
without changing a system-wide setting: ``setpriv`` drops every capability from the process
that runs datakeep, so bubblewrap and ``unshare`` really fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from datakeep.client import Client
from datakeep.config import Settings

SRC = str(Path(__file__).resolve().parents[2] / "src")
RUN_CLI = "import sys; from datakeep.cli.main import main; sys.exit(main(sys.argv[1:]))"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to drop capabilities"
)


def datakeep_without_caps(*args: str) -> subprocess.CompletedProcess[str]:
    drop = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"]
    return subprocess.run(
        [*drop, sys.executable, "-c", RUN_CLI, *args],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_jobs_create_names_the_cause_and_env_mode_still_runs(hermetic_env: object, tmp_path: Path) -> None:
    client = Client(Settings.from_env(), progress=False)
    try:
        ds = client.datasets.create(name="in").id
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "hello.txt").write_text("hi\n")
        v1 = client.versions.create(ds, source_paths=[f"{tmp_path / 'src'}/"]).ref
    finally:
        client.close()

    done = datakeep_without_caps(
        "jobs", "create", "--command=cat /datasets/in/hello.txt", f"--dataset=in@{v1}"
    )
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()  # one line: what is wrong and how to fix it
    assert line.startswith("Error: Cannot make a mount namespace here: bwrap failed")
    assert "runs as root but without CAP_SYS_ADMIN" in line
    assert line.endswith("Give the container CAP_SYS_ADMIN or use --mountMode=env.")
    assert datakeep_without_caps("jobs", "list", "--json").stdout.strip() == "[]"  # nothing was recorded

    done = datakeep_without_caps(
        "jobs",
        "create",
        "--mountMode=env",
        '--command=cat "$DATASETS_DIR/in/hello.txt"',
        f"--dataset=in@{v1}",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hi\n"
