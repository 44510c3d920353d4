"""Whole experiments: datasets fetched from the real S3 server, commands in real sandboxes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from datakeep.errors import IntegrityError, InvalidInput, SandboxUnavailable
from datakeep.experiments.fetch import S3Access, make_client
from datakeep.experiments.options import group_dataset_options
from datakeep.experiments.run import ExperimentPlan, ExperimentRunner, parse_experiment_env
from datakeep.runner.sandbox import sandbox_status

from .conftest import ExpS3, zip_bytes

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from fixtures.s3 import MakeBucket

KEY_A, SECRET_A = "ABCDEFGHIJ0123456789", "aaaabbbbccccddddeeee11112222333344445555"
KEY_C, SECRET_C = "KLMNOPQRST0123456789", "eeeeddddccccbbbbaaaa11112222333344445555"

needs_sandbox = pytest.mark.skipif(not sandbox_status()[0], reason=sandbox_status()[1])


class CountingClients:
    """Makes the clients the runner uses, and counts the object GETs each key received."""

    def __init__(self) -> None:
        self.gets: list[str] = []

    def __call__(self, access: S3Access) -> S3Client:
        client = make_client(access, workers=2)

        def seen(request: Any, **_: Any) -> None:
            if request.method == "GET" and "list-type" not in request.url and "versioning" not in request.url:
                self.gets.append(request.url.split("?")[0].rsplit("/", 1)[-1])

        client.meta.events.register("before-send.s3", seen)
        return client


def runner(tmp_path: Path, clients: CountingClients | None = None, **kwargs: Any) -> ExperimentRunner:
    return ExperimentRunner(
        tmp_path / "run",
        tmp_path / "shared",
        client_factory=clients or CountingClients(),
        download_workers=2,
        **kwargs,
    )


@needs_sandbox
def test_seed_three_dataset_command_on_local_endpoint(
    exp_s3: ExpS3, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    """The seed's example: A pinned by VersionId and ETag, B a folder, C pinned by VersionId."""
    make_bucket("bucket-name", versioned=True)
    make_bucket("another-bucket", versioned=True)
    reply = exp_s3.admin.put_object(
        Bucket="bucket-name", Key="my-dataset.zip", Body=zip_bytes({"train/a.txt": b"A1"})
    )
    version_a, etag_a = reply["VersionId"], reply["ETag"].strip('"')
    exp_s3.admin.put_object(
        Bucket="bucket-name", Key="my-dataset.zip", Body=zip_bytes({"train/a.txt": b"A2"})
    )
    exp_s3.admin.put_object(Bucket="bucket-name", Key="dataset-dir/b.txt", Body=b"B")
    version_c = exp_s3.admin.put_object(
        Bucket="another-bucket", Key="another-dataset.zip", Body=zip_bytes({"c.txt": b"C"})
    )["VersionId"]
    endpoint = exp_s3.endpoint
    specs = group_dataset_options(
        {
            "datasetUri": [
                "s3://bucket-name/my-dataset.zip",
                "s3://bucket-name/dataset-dir",
                "s3://another-bucket/another-dataset.zip",
            ],
            "datasetName": ["dataset A", "dataset B", "dataset C"],
            "datasetAwsAccessKeyId": [KEY_A, KEY_A, KEY_C],
            "datasetAwsSecretAccessKey": [SECRET_A, SECRET_A, SECRET_C],
            "datasetAwsEndpoint": [endpoint, endpoint, endpoint],
            "datasetVersionId": [version_a, "none", version_c],
            "datasetEtag": [etag_a, "none", "none"],
        }
    )
    plan = ExperimentPlan(
        name="singleEx",
        kind="singlenode",
        datasets=tuple(specs),
        env=parse_experiment_env('{"EPOCHS_EVAL":5,"TRAIN_EPOCHS":10,"MAX_STEPS":1000,"EVAL_SECS":10}'),
        command=(
            'cat "/data/dataset A/train/a.txt" "/data/dataset B/b.txt" "/data/dataset C/c.txt" > /artifacts/out.txt;'
            ' echo "$TRAIN_EPOCHS" >> /artifacts/out.txt;'
            ' touch "/data/dataset A/new" 2>/dev/null && echo writable >> /artifacts/out.txt;'
            " ls /storage/data >> /artifacts/out.txt; exit 0"
        ),
        info={"projectId": "prj1", "container": "tensorflow/tensorflow:1.13.1-gpu-py3", "machineType": "K80"},
    )
    output: list[bytes] = []
    result = runner(tmp_path, on_output=lambda _label, data: output.append(data)).run(plan)
    assert result.exit_code == 0, b"".join(output)
    # The old version of A (A1), not the current one (A2); the artifacts stay after the run.
    shared = sorted(p.name for p in (tmp_path / "shared" / "data").iterdir() if not p.name.startswith("."))
    assert shared == [f"dataset A-{etag_a}-{version_a}", "dataset B", f"dataset C-{version_c}"]
    # Also visible under their shared-storage names, as in Gradient's /storage/data.
    assert (result.artifacts / "out.txt").read_text() == "A1BC10\n" + "".join(f"{name}\n" for name in shared)
    # Run records: URI, ETag, VersionId, size and place, never the keys.
    text = json.dumps([plan.record(), list(result.datasets)])
    for secret in (KEY_A, SECRET_A, KEY_C, SECRET_C):
        assert secret not in text
    by_name = {d["name"]: d for d in result.datasets}
    assert by_name["dataset A"]["versionId"] == version_a
    assert by_name["dataset A"]["etag"] == etag_a
    assert by_name["dataset C"]["mountPath"] == "/data/dataset C"


@needs_sandbox
def test_wrong_etag_fails_before_the_command_and_mounts_nothing(
    exp_s3: ExpS3, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="good.zip", Body=zip_bytes({"g": b"g"}))
    exp_s3.admin.put_object(Bucket="bucket", Key="bad.zip", Body=zip_bytes({"b": b"b"}))
    specs = group_dataset_options(
        {
            "datasetUri": ["s3://bucket/good.zip", "s3://bucket/bad.zip"],
            "datasetAwsEndpoint": [exp_s3.endpoint, exp_s3.endpoint],
            "datasetEtag": ["none", "00000000000000000000000000000000"],
        }
    )
    calls: list[object] = []

    def sandbox(spec: object, **_: object) -> int:
        calls.append(spec)
        return 0

    clients = CountingClients()
    plan = ExperimentPlan(name="x", kind="singlenode", datasets=tuple(specs), command="touch /artifacts/ran")
    with pytest.raises(IntegrityError, match="'bad'.*expected 00000000000000000000000000000000, found"):
        runner(tmp_path, clients, sandbox=sandbox).run(plan)
    assert calls == []
    assert clients.gets == []  # not even the good dataset was downloaded
    assert not (tmp_path / "run" / "artifacts" / "ran").exists()
    assert not (tmp_path / "shared" / "data").exists() or not any((tmp_path / "shared" / "data").iterdir())


@needs_sandbox
def test_multinode_dynamic_downloads_per_process_shared_once(
    exp_s3: ExpS3, make_bucket: MakeBucket, tmp_path: Path
) -> None:
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="dyn.tgz", Body=_tgz({"d.txt": b"dynamic"}))
    exp_s3.admin.put_object(Bucket="bucket", Key="shared.csv", Body=b"shared")
    specs = group_dataset_options(
        {
            "datasetUri": ["s3://bucket/dyn.tgz", "s3://bucket/shared.csv"],
            "datasetAwsEndpoint": [exp_s3.endpoint, exp_s3.endpoint],
            "datasetVolumeKind": ["dynamic", "shared"],
            "datasetVolumeSize": ["1Mi", "none"],
        }
    )
    clients = CountingClients()
    command = (
        'cat /data/dyn/d.txt /data/shared.csv/shared.csv > "/artifacts/$TYPE-$INDEX.tmp";'
        ' echo "$TF_CONFIG" > "/artifacts/$TYPE-$INDEX.json"; mv "/artifacts/$TYPE-$INDEX.tmp" "/artifacts/$TYPE-$INDEX"'
    )
    # Workers wait for the parameter server, as real ones do: it is stopped when they finish.
    worker_command = f"{command}; while [ ! -e /artifacts/ps-0 ]; do sleep 0.05; done"
    plan = ExperimentPlan(
        name="multi",
        kind="multinode",
        datasets=tuple(specs),
        worker_count=2,
        worker_command=worker_command,
        parameter_server_count=1,
        parameter_server_command=command,
    )
    result = runner(tmp_path, clients).run(plan)
    assert result.exit_code == 0, [p.log_path.read_text() for p in result.processes]
    assert [p.label for p in result.processes] == ["worker-0", "worker-1", "ps-0"]
    assert clients.gets.count("dyn.tgz") == 3
    assert clients.gets.count("shared.csv") == 1
    for name in ("worker-0", "worker-1", "ps-0"):
        assert (result.artifacts / name).read_text() == "dynamicshared"
    config = json.loads((result.artifacts / "worker-1.json").read_text())
    assert config["task"] == {"type": "worker", "index": 1}
    assert len(config["cluster"]["worker"]) == 2
    assert len(config["cluster"]["ps"]) == 1
    # Dynamic volumes are gone after the run; the shared copy stays.
    assert not (tmp_path / "run" / "volumes").exists()
    assert (tmp_path / "shared" / "data" / "shared.csv" / "shared.csv").exists()


def _tgz(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_plan_checks() -> None:
    with pytest.raises(InvalidInput, match="needs --command"):
        ExperimentPlan(name="x", kind="singlenode")
    with pytest.raises(InvalidInput, match="under /data"):
        ExperimentPlan(name="x", kind="singlenode", command="true", model_path="/data/out")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_experiment_env("{nope")
    assert parse_experiment_env('{"A": 5, "B": "x", "C": true}') == {"A": "5", "B": "x", "C": "true"}


@needs_sandbox
@pytest.mark.parametrize("mount_mode", ["namespace", "env"])
def test_parameter_servers_are_stopped_when_workers_finish(tmp_path: Path, mount_mode: str) -> None:
    # In env mode the artifacts are at $ARTIFACTS_DIR; in a namespace, at /artifacts.
    artifacts = "${ARTIFACTS_DIR:-/artifacts}"
    plan = ExperimentPlan(
        name="ps",
        kind="multinode",
        worker_count=1,
        worker_command=f"echo done > {artifacts}/worker",
        parameter_server_count=2,
        # Were it not stopped, the subshell (a process the server started, which a kill of the
        # server's shell alone would miss) would hold the run for 3 s and then leave a file.
        parameter_server_command=f'(sleep 3; touch "{artifacts}/late-$INDEX"); echo unreached',
        mount_mode=mount_mode,
    )
    result = runner(tmp_path).run(plan)
    assert result.exit_code == 0
    assert [p.exit_code for p in result.processes] == [0, 0, 0]
    assert (result.artifacts / "worker").read_text() == "done\n"
    assert not list(result.artifacts.glob("late-*"))


@needs_sandbox
@pytest.mark.parametrize("mount_mode", ["namespace", "env"])
def test_interrupted_multinode_run_stops_every_process(tmp_path: Path, mount_mode: str) -> None:
    import signal
    import threading

    artifacts = "${ARTIFACTS_DIR:-/artifacts}"
    seen: list[str] = []

    def output(label: str, data: bytes) -> None:
        seen.append(label)
        if len(seen) == 3:  # all three started: what Ctrl-C or SIGTERM does to datakeep
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    plan = ExperimentPlan(
        name="stopped",
        kind="multinode",
        worker_count=2,
        # Were they not stopped, the run would wait for them and then find these files.
        worker_command=f'echo started; (sleep 3; touch "{artifacts}/late-$TYPE-$INDEX"); echo unreached',
        parameter_server_count=1,
        parameter_server_command=f'echo started; (sleep 3; touch "{artifacts}/late-$TYPE-$INDEX")',
        mount_mode=mount_mode,
    )
    run = runner(tmp_path, on_output=output)
    with pytest.raises(KeyboardInterrupt):
        run.run(plan)
    assert sorted(seen) == ["ps-0", "worker-0", "worker-1"]
    assert not list(run.artifacts.glob("late-*"))


@needs_sandbox
def test_workspace_directory_and_git_url(tmp_path: Path) -> None:
    import subprocess

    source = tmp_path / "mnist-sample"
    source.mkdir()
    (source / "mnist.py").write_text("print('training')\n")
    plan = ExperimentPlan(
        name="ws",
        kind="singlenode",
        command="cat mnist.py > /artifacts/seen; touch made-here",
        info={"workspaceUrl": str(source)},
    )
    result = runner(tmp_path / "a").run(plan)
    assert result.exit_code == 0
    assert (result.artifacts / "seen").read_text() == "print('training')\n"
    assert not (source / "made-here").exists()  # the run works on its own copy

    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", str(source)], check=True)
    subprocess.run([*git, "-C", str(source), "add", "."], check=True)
    subprocess.run([*git, "-C", str(source), "commit", "-qm", "init"], check=True)
    plan = ExperimentPlan(
        name="ws",
        kind="singlenode",
        command="cat mnist.py > /artifacts/seen",
        info={"workspaceUrl": f"file://{source}"},
    )
    result = runner(tmp_path / "b").run(plan)
    assert (result.artifacts / "seen").read_text() == "print('training')\n"

    bad = ExperimentPlan(
        name="ws", kind="singlenode", command="true", info={"workspaceUrl": f"file://{tmp_path}/nope"}
    )
    with pytest.raises(InvalidInput, match="Cannot fetch the workspace"):
        runner(tmp_path / "c").run(bad)


def test_no_sandbox_fails_before_any_download(
    exp_s3: ExpS3, make_bucket: MakeBucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datakeep.experiments.run as run_module

    # This machine can make namespaces; pretend it cannot (the one thing not reproducible here).
    monkeypatch.setattr(run_module, "sandbox_status", lambda: (False, "no user namespaces"))
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="d.csv", Body=b"d")
    specs = group_dataset_options(
        {"datasetUri": ["s3://bucket/d.csv"], "datasetAwsEndpoint": [exp_s3.endpoint]}
    )
    clients = CountingClients()
    plan = ExperimentPlan(name="x", kind="singlenode", datasets=tuple(specs), command="true")
    with pytest.raises(SandboxUnavailable, match="no user namespaces"):
        runner(tmp_path, clients).run(plan)
    assert clients.gets == []


def test_workspace_url_credentials_are_redacted(tmp_path: Path) -> None:
    url = "https://user:ghp_secret123@127.0.0.1:9/org/repo.git"
    plan = ExperimentPlan(name="ws", kind="singlenode", command="true", info={"workspaceUrl": url})
    assert plan.record()["workspaceUrl"] == "https://********@127.0.0.1:9/org/repo.git"
    with pytest.raises(InvalidInput) as info:
        runner(tmp_path, sandbox=lambda *_a, **_k: 0).run(plan)
    assert "ghp_secret123" not in info.value.one_line()
    assert "Cannot fetch the workspace https://********@127.0.0.1:9/org/repo.git" in str(info.value)
