"""Jobs through the library: real catalog, real local storage, real cache, real namespaces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datakeep.client import Client
from datakeep.config import Settings
from datakeep.domain.models import SECRET_MASK
from datakeep.errors import (
    InvalidInput,
    JobFailed,
    QuotaExceeded,
    SandboxUnavailable,
    VersionNotCommitted,
)
from datakeep.runner import sandbox
from datakeep.services.jobs import parse_env, redact_env

SRC = str(Path(__file__).resolve().parents[2] / "src")
NEEDS_NS = pytest.mark.skipif(not sandbox.sandbox_status()[0], reason="no mount namespace here")


@pytest.fixture
def client(hermetic_env: object) -> Iterator[Client]:
    c = Client(Settings.from_env(), progress=False)
    yield c
    c.close()


def make_version(client: Client, tmp_path: Path, dataset_id: str, files: dict[str, str]) -> str:
    src = tmp_path / f"src-{dataset_id}-{len(os.listdir(tmp_path))}"
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    return client.versions.create(dataset_id, source_paths=[str(src) + "/"]).ref


def read_version(client: Client, ref: str, tmp_path: Path) -> dict[str, str]:
    target = tmp_path / f"get-{ref.replace(':', '-')}-{len(os.listdir(tmp_path))}"
    client.files.get(ref, target_path=target)
    return {str(p.relative_to(target)): p.read_text() for p in sorted(target.rglob("*")) if p.is_file()}


@NEEDS_NS
def test_seed_example_commits_a_new_latest_output(client: Client, tmp_path: Path) -> None:
    ds = client.datasets.create(name="test").id
    v1 = make_version(client, tmp_path, ds, {"hello.txt": "hello world\n"})
    v2 = make_version(client, tmp_path, ds, {"other.txt": "x"})
    out: list[bytes] = []
    notices: list[str] = []
    job = client.jobs.create(
        command="cat /datasets/input-a/hello.txt > /datasets/output-a/hello2.txt "
        "&& date >> /datasets/output-a/hello2.txt && echo done",
        datasets=[f"output-a@{ds}", f"input-a@{v1}", f"input-b@{v2}"],
        cluster_id="clu",
        machine_type="C5",
        project_id="prj",
        container="bash",
        env={"API_TOKEN": "s3cr3t", "EPOCHS": "3"},
        on_output=out.append,
        on_notice=notices.append,
    )
    assert job.state == "Succeeded"
    assert job.exit_code == 0
    assert b"".join(out) == b"done\n"
    latest = client.versions.get(f"{ds}:latest")
    assert latest.is_committed
    assert latest.message == f"Output of job {job.id}"
    assert latest.job_id == job.id
    files = read_version(client, latest.ref, tmp_path)
    assert list(files) == ["hello2.txt"]
    assert files["hello2.txt"].startswith("hello world\n")
    assert len(files["hello2.txt"].splitlines()) == 2
    # Recorded: Gradient's options, inputs pinned to versions, outputs, env redacted.
    assert (job.cluster_id, job.machine_type, job.project_id, job.container) == ("clu", "C5", "prj", "bash")
    mounts = {m.name: m for m in job.datasets}
    assert mounts["input-a"].version == v1.split(":")[1]
    assert not mounts["input-a"].output
    assert mounts["output-a"].output
    assert mounts["output-a"].version == latest.version
    assert job.env == {"API_TOKEN": SECRET_MASK, "EPOCHS": "3"}
    assert len(notices) == 1  # said once, whichever engine is here
    assert "--container=bash is recorded" in notices[0]
    assert client.jobs.logs(job.id) == ["done"]
    # The version now holds what the job wrote: no second copy is left in the run directory.
    assert not (client.settings.runs_path / "jobs" / job.id / "outputs").exists()
    # The input is now in the cache, unpinned, intact.
    (cached,) = [v for v in client.cache.list() if v.key == v1.replace(":", "/")]
    assert cached.pins == ()
    assert client.cache.verify() == []


@NEEDS_NS
def test_failed_job_keeps_output_uncommitted_and_passes_exit_code(client: Client, tmp_path: Path) -> None:
    ds = client.datasets.create(name="out").id
    before = make_version(client, tmp_path, ds, {"old.txt": "old"})
    job = client.jobs.create(command="echo partial > /datasets/o/part.txt; exit 3", datasets=[f"o@{ds}"])
    assert (job.state, job.exit_code) == ("Failed", 3)
    assert client.versions.get(f"{ds}:latest").ref == before  # latest did not move
    (mount,) = job.datasets
    kept = client.versions.get(f"{ds}:{mount.version}")
    assert not kept.is_committed
    assert kept.job_id == job.id
    assert read_version(client, kept.ref, tmp_path) == {"part.txt": "partial\n"}


@NEEDS_NS
def test_an_output_that_cannot_be_stored_fails_the_job_and_commits_nothing(
    client: Client, tmp_path: Path
) -> None:
    ds = client.datasets.create(name="out").id
    with pytest.raises(JobFailed, match=r"Output bad \(ds\w+:\w+\) cannot be saved: .*FIFO") as caught:
        client.jobs.create(
            command="echo fine > /datasets/good/a.txt; mkfifo /datasets/bad/pipe; echo x > /datasets/bad/b.txt",
            datasets=[f"good@{ds}", f"bad@{ds}"],
        )
    assert "datakeep datasets files put --id=" in caught.value.one_line()
    (job,) = client.jobs.list()
    assert job.state == "Failed"
    assert client.versions.list(ds) == []  # exit 0, yet nothing committed: the job did not succeed
    refs = {m.name: f"{ds}:{m.version}" for m in job.datasets}
    assert read_version(client, refs["good"], tmp_path) == {"a.txt": "fine\n"}
    kept = client.settings.runs_path / "jobs" / job.id / "outputs"
    assert sorted(p.name for p in (kept / "bad").iterdir()) == ["b.txt", "pipe"]
    assert not (kept / "good").exists()


@NEEDS_NS
def test_writing_into_an_input_fails_and_the_input_is_unchanged(client: Client, tmp_path: Path) -> None:
    ds = client.datasets.create(name="in").id
    v1 = make_version(client, tmp_path, ds, {"hello.txt": "hello\n"})
    job = client.jobs.create(
        command="chmod 666 /datasets/in/hello.txt; echo evil > /datasets/in/hello.txt", datasets=[f"in@{v1}"]
    )
    assert job.state == "Failed"
    assert job.exit_code != 0
    assert read_version(client, v1, tmp_path) == {"hello.txt": "hello\n"}
    assert client.cache.verify() == []


@NEEDS_NS
def test_working_directory_and_env(client: Client, tmp_path: Path) -> None:
    ds = client.datasets.create(name="in").id
    v1 = make_version(client, tmp_path, ds, {"a/b.txt": "b"})
    out: list[bytes] = []
    job = client.jobs.create(
        command='pwd; ls; echo "$EPOCHS"',
        datasets=[f"in@{v1}"],
        working_directory="/datasets/in/a",
        env=parse_env(["EPOCHS=3"]),
        on_output=out.append,
    )
    assert job.state == "Succeeded"
    assert b"".join(out).decode() == "/datasets/in/a\nb.txt\n3\n"
    assert job.working_directory == "/datasets/in/a"


def test_env_mode_runs_without_a_namespace(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulates a host with no namespace tool at all (cannot be arranged for real here).
    monkeypatch.setattr(sandbox, "_which", lambda name: None)
    ds_in = client.datasets.create(name="in").id
    ds_out = client.datasets.create(name="out").id
    v1 = make_version(client, tmp_path, ds_in, {"hello.txt": "hi\n"})
    with pytest.raises(SandboxUnavailable, match="bwrap is not installed"):
        client.jobs.create(command="true", datasets=[f"in@{v1}"])
    assert client.jobs.list() == []  # refused before anything was recorded
    job = client.jobs.create(
        command='cp "$DATASETS_DIR/in/hello.txt" "$DATASETS_DIR/out/copy.txt"',
        datasets=[f"in@{v1}", f"out@{ds_out}"],
        mount_mode="env",
    )
    assert job.state == "Succeeded"
    assert job.mount_mode == "env"
    assert read_version(client, f"{ds_out}:latest", tmp_path) == {"copy.txt": "hi\n"}


def test_bad_dataset_options_are_refused(client: Client, tmp_path: Path) -> None:
    ds = client.datasets.create(name="x").id
    with pytest.raises(InvalidInput, match=r"must have an @ \(ex: images@dsr8k5qzn401lb5:klfoyy9\)"):
        client.jobs.create(command="true", datasets=[ds])
    with pytest.raises(InvalidInput, match="Two datasets"):
        client.jobs.create(command="true", datasets=[f"a@{ds}", f"a@{ds}"])
    with pytest.raises(InvalidInput):
        client.jobs.create(command="true", datasets=[f"../x@{ds}"])
    draft = client.versions.create(ds, commit=False)
    with pytest.raises(VersionNotCommitted):
        client.jobs.create(command="true", datasets=[f"in@{draft.ref}"])
    with pytest.raises(InvalidInput, match="absolute path inside the job"):
        client.jobs.create(command="true", datasets=[f"o@{ds}"], working_directory="out")
    assert client.jobs.list() == []
    assert client.versions.list(ds, is_committed=False) == [draft]  # no output version was opened


FAKE_ENGINE = '#!/bin/sh\n[ "$1" = info ] && exit {code}\nexit 0\n'


@pytest.mark.parametrize(
    ("engines", "expected"),
    [
        ({}, "No container engine is running here"),
        ({"docker": 1}, "No container engine is running here"),  # a docker client without its daemon
        ({"docker": 0}, "not in docker"),
        ({"podman": 0}, "not in podman"),
    ],
)
def test_container_is_recorded_and_the_engine_named_once(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engines: dict[str, int], expected: str
) -> None:
    # Stand-in engines (no container engine runs here): only whether `info` succeeds matters.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, code in engines.items():
        (bin_dir / name).write_text(FAKE_ENGINE.format(code=code))
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    notices: list[str] = []
    job = client.jobs.create(command="echo ran", container="bash", mount_mode="env", on_notice=notices.append)
    assert (job.state, job.container) == ("Succeeded", "bash")
    assert len(notices) == 1
    assert expected in notices[0]
    assert "--container=bash is recorded" in notices[0]


def test_env_helpers() -> None:
    assert parse_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(InvalidInput):
        parse_env(["nope"])
    assert redact_env({"AWS_SECRET_ACCESS_KEY": "k", "PASSWORD": "p", "HOME": "/h", "EMPTY_TOKEN": ""}) == {
        "AWS_SECRET_ACCESS_KEY": SECRET_MASK,
        "PASSWORD": SECRET_MASK,
        "HOME": "/h",
        "EMPTY_TOKEN": "",
    }


@NEEDS_NS
def test_lineage_walks_up_and_down(client: Client, tmp_path: Path) -> None:
    a = client.datasets.create(name="a").id
    b = client.datasets.create(name="b").id
    c = client.datasets.create(name="c").id
    va = make_version(client, tmp_path, a, {"x": "1"})
    j1 = client.jobs.create(command="cp /datasets/i/x /datasets/o/y", datasets=[f"i@{va}", f"o@{b}"])
    vb = client.versions.get(f"{b}:latest").ref
    j2 = client.jobs.create(command="cp /datasets/i/y /datasets/o/z", datasets=[f"i@{b}:latest", f"o@{c}"])
    vc = client.versions.get(f"{c}:latest").ref
    lineage = client.jobs.lineage(vb)
    assert lineage.upstream.job == j1.id
    assert [n.ref for n in lineage.upstream.next] == [va]
    assert [(n.ref, n.job) for n in lineage.downstream.next] == [(vc, j2.id)]
    top = client.jobs.lineage(vc).upstream
    assert (top.job, top.next[0].ref, top.next[0].job, top.next[0].next[0].ref) == (j2.id, vb, j1.id, va)
    assert client.jobs.producer(vc) is not None
    assert client.jobs.producer(va) is None
    # The input was recorded pinned to its version, not as "latest".
    assert {m.name: m.version for m in j2.datasets}["i"] == vb.split(":")[1]
    # A failed attempt shows as uncommitted; once deleted, as deleted.
    j3 = client.jobs.create(command="touch /datasets/o/partial; exit 1", datasets=[f"i@{va}", f"o@{c}"])
    failed = f"{c}:{[m.version for m in j3.datasets if m.output][0]}"
    states = {n.ref: (n.state, n.job) for n in client.jobs.lineage(va).downstream.next}
    assert states == {vb: ("committed", j1.id), failed: ("uncommitted", j3.id)}
    assert client.jobs.lineage(failed).upstream.state == "uncommitted"
    client.versions.delete(failed)
    states = {n.ref: (n.state, n.job) for n in client.jobs.lineage(va).downstream.next}
    assert states[failed] == ("deleted", j3.id)


# PROCESSES

RUN_JOB = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {src!r})
    from datakeep.client import Client
    go = Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.01)
    job = Client(progress=False).jobs.create(command=sys.argv[1], datasets=sys.argv[2].split(","))
    print(job.id, job.state)
""")


def _spawn(tmp_path: Path, command: str, datasets: list[str]) -> subprocess.Popen[str]:
    script = tmp_path / "run_job.py"
    script.write_text(RUN_JOB.format(src=SRC))
    return subprocess.Popen(
        [sys.executable, str(script), command, ",".join(datasets), str(tmp_path / "go")],
        stdout=subprocess.PIPE,
        text=True,
    )


@NEEDS_NS
def test_two_jobs_writing_one_dataset_at_once(
    catalog_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATAKEEP_DATABASE_URL", catalog_url)
    client = Client(Settings.from_env(), progress=False)
    try:
        ds = client.datasets.create(name="shared-out").id
        procs = [_spawn(tmp_path, f"echo {i} > /datasets/o/f.txt; sleep 0.3", [f"o@{ds}"]) for i in range(2)]
        (tmp_path / "go").touch()
        results = []
        for p in procs:
            stdout, _ = p.communicate(timeout=120)
            assert p.returncode == 0
            results.append(stdout.split())
        assert [state for _, state in results] == ["Succeeded", "Succeeded"]
        versions = client.versions.list(ds)
        assert len(versions) == 2
        assert all(v.is_committed for v in versions)
        assert {v.job_id for v in versions} == {job_id for job_id, _ in results}
        latest = client.versions.get(f"{ds}:latest")
        # ``latest`` is the one committed last: both commits got distinct sequence numbers.
        assert latest.committed == max(v.committed for v in versions if v.committed)
        assert read_version(client, latest.ref, tmp_path)["f.txt"] in ("0\n", "1\n")
    finally:
        client.close()


@NEEDS_NS
def test_kill_9_leaves_output_uncommitted_and_cache_consistent(client: Client, tmp_path: Path) -> None:
    ds_in = client.datasets.create(name="in").id
    ds_out = client.datasets.create(name="out").id
    v1 = make_version(client, tmp_path, ds_in, {"hello.txt": "hello\n"})
    proc = _spawn(tmp_path, "echo partial > /datasets/o/part.txt; exec sleep 120", [f"i@{v1}", f"o@{ds_out}"])
    (tmp_path / "go").touch()
    runs = client.settings.runs_path / "jobs"
    deadline = time.monotonic() + 60
    while not list(runs.glob("*/outputs/o/part.txt")):
        assert proc.poll() is None, "the job ended early"
        assert time.monotonic() < deadline, "the job never wrote its output"
        time.sleep(0.02)
    try:
        (job_id,) = [p.name for p in runs.iterdir()]
        assert client.jobs.get(job_id).state == "Running"
        assert [len(v.pins) for v in client.cache.list()] == [1]  # the input is pinned while it runs
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    job = client.jobs.get(job_id)
    assert job.state == "Failed"
    assert [n for n in job.notes if "datakeep process running it died" in n]
    (out_mount,) = [m for m in job.datasets if m.output]
    kept = f"{ds_out}:{out_mount.version}"
    assert not client.versions.get(kept).is_committed
    assert client.versions.list(ds_out) == []  # nothing committed, so no latest
    assert client.cache.verify() == []
    assert [v.pins for v in client.cache.list()] == [()]  # the dead job's pin no longer holds
    # Noticing the death put what the command wrote into the uncommitted version, once.
    assert read_version(client, kept, tmp_path) == {"part.txt": "partial\n"}
    assert not (runs / job_id / "outputs").exists()
    assert client.jobs.get(job_id).state == "Failed"


@NEEDS_NS
def test_cache_cap_never_evicts_a_running_jobs_input(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = client.datasets.create(name="in").id
    v1 = make_version(client, tmp_path, ds, {"big.bin": "1" * 1000})
    v2 = make_version(client, tmp_path, ds, {"big.bin": "2" * 1000})
    proc = _spawn(tmp_path, "touch /datasets/o/started; exec sleep 120", [f"i@{v1}", f"o@{ds}"])
    (tmp_path / "go").touch()
    runs = client.settings.runs_path / "jobs"
    try:
        deadline = time.monotonic() + 60
        while not list(runs.glob("*/outputs/o/started")):
            assert proc.poll() is None, "the job ended early"
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.02)
        # Room for one version only, and the running job's input holds it.
        monkeypatch.setenv("DATAKEEP_CACHE_MAX_SIZE", "1500")
        capped = Client(Settings.from_env(), progress=False)
        try:
            with pytest.raises(QuotaExceeded):
                capped.cache.materialize(v2)
            assert [v.key for v in capped.cache.list()] == [v1.replace(":", "/")]
            proc.send_signal(signal.SIGKILL)  # the job ends: its pin no longer holds
            proc.wait()
            capped.cache.materialize(v2)
            assert [v.key for v in capped.cache.list()] == [v2.replace(":", "/")]
        finally:
            capped.close()
    finally:
        proc.kill()
        proc.wait()
