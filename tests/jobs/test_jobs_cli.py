"""``datakeep jobs``, ``datakeep cache`` and ``datasets versions lineage`` through the real entry point."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from datakeep.cli.common import reset_client
from datakeep.cli.jobs import producer_rows
from datakeep.cli.main import main
from datakeep.runner import sandbox

NEEDS_NS = pytest.mark.skipif(not sandbox.sandbox_status()[0], reason="no mount namespace here")


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def dk(*args: str) -> Run:
    reset_client()
    try:
        with CliRunner().isolation() as (out, err, _):
            code = main(list(args))
            return Run(code, out.getvalue().decode(), err.getvalue().decode())
    finally:
        reset_client()


def ok(*args: str) -> Run:
    run = dk(*args)
    assert run.code == 0, run
    return run


@pytest.fixture
def seed(tmp_path: Path) -> tuple[str, str, str]:
    """Seed 002's dataset with two committed versions: (dataset, V1 ref, V2 ref)."""
    ds = re.fullmatch(r"Created dataset: (ds\w{13})\n", ok("datasets", "create", "--name", "test").stdout)
    assert ds
    refs = []
    for i, text in enumerate(["hello world\n", "second\n"]):
        src = tmp_path / f"src{i}"
        src.mkdir()
        (src / "hello.txt").write_text(text)
        out = ok("datasets", "versions", "create", f"--id={ds.group(1)}", f"--source-path={src}/").stdout
        refs.append(out.split()[3])
    return ds.group(1), refs[0], refs[1]


@NEEDS_NS
def test_seed_example_through_the_cli(seed: tuple[str, str, str], tmp_path: Path) -> None:
    ds, v1, v2 = seed
    run = ok(
        "jobs",
        "create",
        "--clusterId=clu",
        "--machineType=C5",
        "--projectId=prj",
        "--container=bash",
        "--command=cat /datasets/input-a/hello.txt > /datasets/output-a/hello2.txt "
        "&& date >> /datasets/output-a/hello2.txt",
        f"--dataset=output-a@{ds}",
        f"--dataset=input-a@{v1}",
        f"--dataset=input-b@{v2}",
    )
    assert run.stdout == ""
    job_id = re.search(r"New job created with ID: (j\w{13})", run.stderr)
    assert job_id
    committed = re.search(rf"Committed dataset version: ({ds}:\w{{7}})", run.stderr)
    assert committed
    files = ok("datasets", "files", "list", f"--id={ds}:latest").stdout
    assert "hello2.txt" in files
    target = tmp_path / "got"
    ok("datasets", "files", "get", f"--id={ds}:latest", f"--target-path={target}")
    assert (target / "hello2.txt").read_text().startswith("hello world\n")
    listing = ok("jobs", "list").stdout
    assert job_id.group(1) in listing
    assert "Succeeded" in listing
    details = ok("jobs", "details", f"--id={job_id.group(1)}").stdout
    assert "| Cluster           | clu" in details
    assert f"| input-a  | {v1} |" in details
    assert (
        json.loads(ok("jobs", "details", f"--id={job_id.group(1)}", "--json").stdout)["state"] == "Succeeded"
    )
    lineage = ok("datasets", "versions", "lineage", f"--id={committed.group(1)}").stdout
    assert f"produced by job {job_id.group(1)}" in lineage
    assert f"<- {v1}" in lineage
    assert f"<- {v2}" in lineage
    down = ok("datasets", "versions", "lineage", f"--id={v1}").stdout
    assert f"-> {committed.group(1)} (made by job {job_id.group(1)})" in down
    failed = dk("jobs", "create", "--command=exit 4", f"--dataset=i@{v1}", f"--dataset=o@{ds}")
    kept = failed.stderr.split("Kept uncommitted: ")[1].split()[0]
    assert (
        f"-> {kept} (uncommitted) (made by job " in ok("datasets", "versions", "lineage", f"--id={v1}").stdout
    )
    # What `datasets versions details` shows once cli/datasets.py appends these rows.
    try:
        rows = dict(producer_rows(committed.group(1)))
        assert rows["Produced by job"] == f"{job_id.group(1)} (Succeeded)"
        assert rows["Job inputs"].splitlines() == [f"input-a@{v1}", f"input-b@{v2}"]
        assert producer_rows(v1) == []
    finally:
        reset_client()


@NEEDS_NS
def test_failed_job_passes_its_exit_code_and_keeps_logs(seed: tuple[str, str, str]) -> None:
    ds, _, _ = seed
    run = dk("jobs", "create", "--command=echo out; echo err >&2; exit 7", f"--dataset=o@{ds}")
    assert run.code == 7
    assert run.stdout == "out\nerr\n"  # streamed, merged in order
    assert run.stderr.splitlines()[-1].startswith("Error: Job j")
    assert "Kept uncommitted:" in run.stderr
    job_id = run.stderr.split("New job created with ID: ")[1].split()[0]
    assert ok("jobs", "logs", f"--id={job_id}").stdout == "out\nerr\n"
    assert ok("jobs", "logs", f"--id={job_id}", "--line=1").stdout == "err\n"
    assert json.loads(ok("jobs", "logs", f"--id={job_id}", "--json").stdout) == ["out", "err"]
    assert dk("jobs", "logs", f"--id={job_id}", "--json", "--follow").code == 1
    assert ok("jobs", "logs", f"--id={job_id}", "--follow").stdout == "out\nerr\n"
    assert "Failed" in ok("jobs", "list").stdout


def test_env_mount_mode_and_bad_options(seed: tuple[str, str, str]) -> None:
    ds, v1, _ = seed
    run = ok(
        "jobs",
        "create",
        "--mountMode=env",
        "--env=GREETING=hi",
        '--command=cat "$DATASETS_DIR/in/hello.txt"; echo "$GREETING"',
        f"--dataset=in@{v1}",
    )
    assert run.stdout == "hello world\nhi\n"
    bad = dk("jobs", "create", "--command=true", f"--dataset={ds}")
    assert bad.code == 1
    assert "must have an @ (ex: images@dsr8k5qzn401lb5:klfoyy9)" in bad.stderr
    assert dk("jobs", "create", "--command=true", "--env=novalue").code == 1
    assert dk("jobs", "details", "--id=jnotthere0000000").code == 1


def test_cache_commands(seed: tuple[str, str, str], hermetic_env: object) -> None:
    ds, v1, v2 = seed
    assert ok("cache", "list").stdout == "No data found\n"
    from datakeep.client import Client

    client = Client(progress=False)
    try:
        path = client.cache.materialize(v1)
        client.cache.materialize(v2)
    finally:
        client.close()
    listing = ok("cache", "list").stdout
    assert v1 in listing
    assert v2 in listing
    assert ok("cache", "verify").stdout == "Cache OK\n"
    # Corrupt a cached file: verify fails until repaired.
    os.chmod(path / "hello.txt", 0o644)
    (path / "hello.txt").write_text("tampered")
    bad = dk("cache", "verify")
    assert bad.code == 1
    assert "corrupt_blob" in bad.stdout
    repaired = ok("cache", "verify", "--repair").stdout
    assert "shares the corrupted blob; fetched again" in repaired
    assert ok("cache", "verify").stdout == "Cache OK\n"
    assert (path / "hello.txt").read_text() == "hello world\n"  # the repair fetched it again
    dry = ok("cache", "clean", "--dry-run", f"--dataset={ds}").stdout
    assert v1 in dry
    assert v2 in dry
    assert "Would free 19 B (19 bytes)" in dry
    assert v2 in ok("cache", "list").stdout
    assert "Nothing to remove" in ok("cache", "clean", "--older-than=7d").stdout
    done = ok("cache", "clean").stdout
    assert "Freed 19 B (19 bytes) from 2 versions" in done
    assert ok("cache", "list").stdout == "No data found\n"
    assert dk("cache", "clean", "--older-than=soon").code == 1


def _cli_process(*args: str) -> subprocess.Popen[str]:
    """``datakeep`` in its own process (this checkout's code), for signals and closed pipes."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from datakeep.cli.main import main; sys.exit(main(sys.argv[1:]))",
            *args,
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_reader_that_goes_away_does_not_stop_the_job(seed: tuple[str, str, str]) -> None:
    """``datakeep jobs create ... | head -1``: the job runs to the end and its log keeps it all."""
    proc = _cli_process("jobs", "create", "--mountMode=env", "--command=seq 1 100000; echo done")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "1\n"
        proc.stdout.close()
        assert proc.wait(timeout=120) == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    job_id = err.split("New job created with ID: ")[1].split()[0]
    assert json.loads(ok("jobs", "details", f"--id={job_id}", "--json").stdout)["state"] == "Succeeded"
    assert ok("jobs", "logs", f"--id={job_id}", "--line=99999").stdout == "100000\ndone\n"


@NEEDS_NS
def test_ctrl_c_cancels_the_job_and_keeps_its_output_uncommitted(seed: tuple[str, str, str]) -> None:
    ds, _, _ = seed
    proc = _cli_process(
        "jobs",
        "create",
        "--command=echo kept > /datasets/o/a.txt; echo started; exec sleep 60",
        f"--dataset=o@{ds}",
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "started\n"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends datakeep (the command has its own session)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130
    job_id = err.split("New job created with ID: ")[1].split()[0]
    kept = re.search(rf"Kept uncommitted: ({ds}:\w{{7}})", err)
    assert kept
    assert err.splitlines()[-1] == (
        f"Error: Job {job_id} was cancelled. "
        f"What it wrote is kept uncommitted: see datakeep jobs details --id={job_id}"
    )
    assert json.loads(ok("jobs", "details", f"--id={job_id}", "--json").stdout)["state"] == "Cancelled"
    assert "a.txt" in ok("datasets", "files", "list", f"--id={kept.group(1)}").stdout
    details = json.loads(ok("datasets", "versions", "details", f"--id={kept.group(1)}", "--json").stdout)
    assert details["is_committed"] is False
