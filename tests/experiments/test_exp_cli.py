"""``datakeep experiments``: the seed's commands, run through the CLI against the real S3 server."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from datakeep.catalog import Catalog
from datakeep.runner.sandbox import sandbox_status

from .conftest import Cli, ExpS3, zip_bytes

if TYPE_CHECKING:
    from fixtures.s3 import MakeBucket

KEY_A, SECRET_A = "ABCDEFGHIJ0123456789", "aaaabbbbccccddddeeee11112222333344445555"
KEY_C, SECRET_C = "KLMNOPQRST0123456789", "eeeeddddccccbbbbaaaa11112222333344445555"

pytestmark = pytest.mark.skipif(not sandbox_status()[0], reason=sandbox_status()[1])


def experiment_id(stderr: str) -> str:
    match = re.search(r"New experiment created with ID: (e[0-9a-z]{13})", stderr)
    assert match, stderr
    return match.group(1)


def test_seed_command_through_the_cli(
    exp_s3: ExpS3, make_bucket: MakeBucket, cli: Cli, tmp_path: Path
) -> None:
    make_bucket("bucket-name", versioned=True)
    make_bucket("another-bucket", versioned=True)
    reply = exp_s3.admin.put_object(
        Bucket="bucket-name", Key="my-dataset.zip", Body=zip_bytes({"a.txt": b"A"})
    )
    version_a, etag_a = reply["VersionId"], reply["ETag"].strip('"')
    exp_s3.admin.put_object(Bucket="bucket-name", Key="dataset-dir/b.txt", Body=b"B")
    version_c = exp_s3.admin.put_object(
        Bucket="another-bucket", Key="another-dataset.zip", Body=zip_bytes({"c.txt": b"C"})
    )["VersionId"]
    ep = exp_s3.endpoint
    # A local clone source stands in for github.com/Paperspace/mnist-sample (no network here).
    workspace = tmp_path / "mnist-sample"
    workspace.mkdir()
    (workspace / "mnist.py").write_text("print('mnist')\n")
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(workspace)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "sample"], check=True)
    # The seed's command, with its fake keys, pointed at the local S3 server.
    args = [
        "experiments", "run", "singlenode",
        "--projectId", "prj0001",
        "--name", "singleEx",
        "--experimentEnv", '{"EPOCHS_EVAL":5,"TRAIN_EPOCHS":10,"MAX_STEPS":1000,"EVAL_SECS":10}',
        "--container", "tensorflow/tensorflow:1.13.1-gpu-py3",
        "--machineType", "K80",
        "--command", 'test -f mnist.py && cat "/data/dataset A/a.txt" "/data/dataset B/b.txt" "/data/dataset C/c.txt"; '
        'echo " epochs=$TRAIN_EPOCHS"; echo model > /artifacts/model.txt',
        "--workspaceUrl", f"file://{workspace}",
        "--modelType", "Tensorflow",
        "--modelPath", "/artifacts",
        "--datasetUri", "s3://bucket-name/my-dataset.zip",
        "--datasetName", "dataset A",
        "--datasetAwsAccessKeyId", KEY_A,
        "--datasetAwsSecretAccessKey", SECRET_A,
        "--datasetAwsEndpoint", ep,
        "--datasetVersionId", version_a,
        "--datasetEtag", etag_a,
        "--datasetUri", "s3://bucket-name/dataset-dir",
        "--datasetName", "dataset B",
        "--datasetAwsAccessKeyId", KEY_A,
        "--datasetAwsSecretAccessKey", SECRET_A,
        "--datasetAwsEndpoint", ep,
        "--datasetVersionId", "none",
        "--datasetEtag", "none",
        "--datasetUri", "s3://another-bucket/another-dataset.zip",
        "--datasetName", "dataset C",
        "--datasetAwsAccessKeyId", KEY_C,
        "--datasetAwsSecretAccessKey", SECRET_C,
        "--datasetAwsEndpoint", ep,
        "--datasetVersionId", version_c,
        "--datasetEtag", "none",
    ]  # fmt: skip
    run = cli(*args)
    assert run.exit_code == 0, run.stderr
    assert run.stdout == "ABC epochs=10\n"
    exp_id = experiment_id(run.stderr)
    for secret in (KEY_A, SECRET_A, KEY_C, SECRET_C):
        assert secret not in run.stdout + run.stderr

    listed = cli("experiments", "list", "--json")
    assert [(e["id"], e["name"], e["state"]) for e in json.loads(listed.stdout)] == [
        (exp_id, "singleEx", "Succeeded")
    ]
    details = cli("experiments", "details", "--id", exp_id, "--json")
    for secret in (KEY_A, SECRET_A, KEY_C, SECRET_C):
        assert secret not in details.stdout
    record = json.loads(details.stdout)
    placed = {d["name"]: d for d in record["spec"]["placed"]}
    assert placed["dataset A"]["versionId"] == version_a
    assert placed["dataset A"]["etag"] == etag_a
    assert placed["dataset B"]["uri"] == "s3://bucket-name/dataset-dir"
    assert Path(record["spec"]["artifacts"], "model.txt").read_text() == "model\n"
    table = cli("experiments", "details", "--id", exp_id)
    assert "Dataset dataset A" in table.stdout
    assert cli("experiments", "logs", "--id", exp_id).stdout == "ABC epochs=10\n"

    shared = cli("experiments", "datasets", "list")
    assert f"dataset A-{etag_a}-{version_a}" in shared.stdout
    assert "s3://another-bucket/another-dataset.zip" in shared.stdout
    dry = cli("experiments", "datasets", "clean", "--name", "dataset B", "--dry-run")
    assert dry.stdout.startswith("Would remove dataset B ")
    assert "dataset B" in cli("experiments", "datasets", "list").stdout
    cli("experiments", "datasets", "clean", "--name", "dataset B")
    assert "dataset B " not in cli("experiments", "datasets", "list").stdout


def test_wrong_etag_through_the_cli(exp_s3: ExpS3, make_bucket: MakeBucket, cli: Cli, tmp_path: Path) -> None:
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="d.zip", Body=zip_bytes({"x": b"x"}))
    marker = tmp_path / "ran"
    run = cli(
        "experiments", "run", "singlenode", "--name", "bad", "--command", f"touch {marker}",
        "--datasetUri", "s3://bucket/d.zip", "--datasetAwsEndpoint", exp_s3.endpoint,
        "--datasetEtag", "3823e4ab23cc48ad83e9e3fa99ecc12a",
    )  # fmt: skip
    assert run.exit_code != 0
    assert "Error: Dataset 'd': ETag mismatch" in run.stderr
    assert "expected 3823e4ab23cc48ad83e9e3fa99ecc12a" in run.stderr
    assert not marker.exists()
    record = json.loads(cli("experiments", "details", "--id", experiment_id(run.stderr), "--json").stdout)
    assert record["state"] == "Failed"
    assert "ETag mismatch" in record["spec"]["error"]


def test_grouping_errors_through_the_cli(cli: Cli) -> None:
    run = cli(
        "experiments", "run", "singlenode", "--name", "x", "--command", "true",
        "--datasetUri", "s3://b/a.zip", "--datasetName", "a", "--datasetName", "b",
    )  # fmt: skip
    assert run.exit_code == 1
    assert run.stderr == (
        "Error: Too many dataset parameter sets (2) for 1 dataset URIs. Forgot to add one more dataset URI? "
        "Give every dataset option once per --datasetUri, using 'none' for an empty slot\n"
    )


def test_options_file_with_dataset_objects_and_multinode(
    exp_s3: ExpS3,
    make_bucket: MakeBucket,
    cli: Cli,
    tmp_path: Path,
) -> None:
    make_bucket("bucket")
    exp_s3.admin.put_object(Bucket="bucket", Key="train.zip", Body=zip_bytes({"t.txt": b"T"}))
    options = tmp_path / "experiment.yaml"
    options.write_text(
        yaml.safe_dump(
            {
                "name": "multi",
                "workerCount": 2,
                "parameterServerCount": 1,
                # Workers wait for their parameter server, which serves until they are done.
                "workerCommand": 'until [ -e /artifacts/ps-up ]; do sleep 0.05; done; cat /data/train/t.txt; echo " $TYPE$INDEX"',
                "parameterServerCommand": 'echo "ps $INDEX"; touch /artifacts/ps-up; sleep 600',
                "datasets": [
                    {
                        "uri": "s3://bucket/train.zip",
                        "awsEndpoint": exp_s3.endpoint,
                        "volumeKind": "dynamic",
                        "volumeSize": "1Mi",
                    },
                ],
            }
        )
    )
    run = cli("experiments", "run", "multinode", "--optionsFile", str(options))
    assert run.exit_code == 0, run.stderr
    assert sorted(run.stdout.splitlines()) == ["[ps-0] ps 0", "[worker-0] T worker0", "[worker-1] T worker1"]


def test_options_file_errors_name_the_users_file(cli: Cli, tmp_path: Path) -> None:
    options = tmp_path / "experiment.yaml"
    options.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "command": "true",
                "bogus": 1,
                "datasets": [
                    {"uri": "s3://b/a.zip", "awsAccessKeyId": KEY_A, "awsSecretAccessKey": SECRET_A}
                ],
            }
        )
    )
    run = cli("experiments", "run", "singlenode", "--optionsFile", str(options))
    assert run.exit_code == 2
    assert f"unknown option 'bogus' in {options}" in run.stderr
    assert SECRET_A not in run.stderr


def test_options_template_never_holds_the_secret(cli: Cli, tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    run = cli(
        "experiments", "run", "singlenode", "--name", "x", "--command", "true",
        "--datasetUri", "s3://b/a.zip", "--datasetAwsAccessKeyId", KEY_A,
        "--datasetAwsSecretAccessKey", SECRET_A, "--createOptionsFile", str(template),
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert SECRET_A not in template.read_text()
    assert yaml.safe_load(template.read_text())["datasetUri"] == ["s3://b/a.zip"]


def test_dataset_id_mounts_a_datakeep_version_read_only(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "some-data"
    source.mkdir()
    (source / "hello.txt").write_text("hello world\n")
    created = cli("datasets", "create", "--name", "digits")
    dataset_id = re.search(r"(ds[0-9a-z]{13})", created.stdout)
    assert dataset_id, created.stdout + created.stderr
    made = cli("datasets", "versions", "create", f"--id={dataset_id.group(1)}", f"--source-path={source}/")
    assert made.exit_code == 0, made.stderr
    run = cli(
        "experiments", "run", "singlenode", "--name", "ref", "--datasetId", f"{dataset_id.group(1)}:latest",
        "--datasetName", "digits",
        "--command", "cat /data/digits/hello.txt; touch /data/digits/x 2>/dev/null || echo read-only",
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert run.stdout == "hello world\nread-only\n"


def pretend_killed(catalog: Catalog, experiment: str) -> None:
    """What ``kill -9`` of datakeep during a run leaves: a Running row whose owner is dead."""
    from sqlalchemy import select, update

    from datakeep.cache.owners import Owner
    from datakeep.catalog import schema as t

    dead = subprocess.Popen(["true"])
    dead.wait()
    with catalog.begin() as c:
        spec = c.execute(select(t.jobs.c.spec).where(t.jobs.c.id == experiment)).scalar_one()
        owner = Owner.me()
        spec = {**spec, "owner": Owner(owner.host, dead.pid, owner.started).tag}
        c.execute(update(t.jobs).where(t.jobs.c.id == experiment).values(state="Running", spec=spec))


def test_run_whose_process_died_shows_as_failed(cli: Cli, catalog_url: str) -> None:
    run = cli(
        "experiments", "run", "singlenode", "--name", "short", "--command", "test ${#API_TOKEN} = 6",
        "--experimentEnv", '{"API_TOKEN": "s3cr3t", "EPOCHS": 3}',
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    exp_id = experiment_id(run.stderr)
    catalog = Catalog(catalog_url)
    try:
        details = cli("experiments", "details", "--id", exp_id, "--json").stdout
        assert json.loads(details)["state"] == "Succeeded"
        pretend_killed(catalog, exp_id)
    finally:
        catalog.close()
    details = cli("experiments", "details", "--id", exp_id, "--json").stdout
    assert json.loads(details)["state"] == "Failed"
    # The command saw the token; the record keeps it masked.
    assert json.loads(details)["spec"]["experimentEnv"] == {"API_TOKEN": "********", "EPOCHS": "3"}
    assert "s3cr3t" not in details


@pytest.mark.skipif(os.geteuid() != 0, reason="a tmpfs mount needs root")
def test_next_run_cleans_up_after_a_killed_one(cli: Cli, catalog_url: str) -> None:
    from datakeep import Client, Settings
    from datakeep.catalog import schema as t

    run = cli("experiments", "run", "singlenode", "--name", "killed", "--command", "true")
    exp_id = experiment_id(run.stderr)
    client = Client(dataclasses.replace(Settings.from_env(), database_url=catalog_url))
    try:
        # A killed run also leaves its dynamic volumes mounted.
        volume = client.settings.runs_path / exp_id / "volumes" / "worker 0" / "0"
        volume.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "datakeep-dynamic", str(volume)], check=True)
        assert client.experiments.sweep() == []
        pretend_killed(client.catalog, exp_id)
        assert client.experiments.sweep() == [exp_id]
        assert str(volume).replace(" ", "\\040") not in Path("/proc/self/mounts").read_text()
        assert not volume.exists()
        with client.catalog.begin() as c:
            row = c.execute(t.jobs.select().where(t.jobs.c.id == exp_id)).one()
        assert row.state == "Failed"
        assert "stopped before the experiment ended" in row.spec["error"]
    finally:
        subprocess.run(["umount", str(volume)], capture_output=True, check=False)
        client.close()


def test_exit_status_and_logs_of_a_failed_multinode_run(cli: Cli) -> None:
    run = cli(
        "experiments", "run", "multinode", "--name", "fails", "--workerCount", "2",
        "--workerCommand", 'echo "out $INDEX"; echo "err $INDEX" >&2; exit $((INDEX + 4))',
    )  # fmt: skip
    assert run.exit_code == 4  # the first failing worker's status
    assert sorted(run.stdout.splitlines()) == [
        "[worker-0] err 0",
        "[worker-0] out 0",
        "[worker-1] err 1",
        "[worker-1] out 1",
    ]
    exp_id = experiment_id(run.stderr)
    record = json.loads(cli("experiments", "details", "--id", exp_id, "--json").stdout)
    assert (record["state"], record["exit_code"]) == ("Failed", 4)
    assert [(p["label"], p["exitCode"]) for p in record["spec"]["processes"]] == [
        ("worker-0", 4),
        ("worker-1", 5),
    ]
    logs = json.loads(cli("experiments", "logs", "--id", exp_id, "--json").stdout)
    assert logs == {"worker-0": "out 0\nerr 0\n", "worker-1": "out 1\nerr 1\n"}
    assert cli("experiments", "logs", "--id", exp_id, "--process", "worker-1").stdout == "out 1\nerr 1\n"
    missing = cli("experiments", "logs", "--id", exp_id, "--process", "ps-0")
    assert missing.exit_code != 0
    assert "has no process 'ps-0'" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_sigterm_stops_a_multinode_run_and_records_it(cli: Cli, catalog_url: str, tmp_path: Path) -> None:
    import signal
    import sys
    import time

    out, err = tmp_path / "out", tmp_path / "err"
    program = "import sys; from datakeep.cli.main import main; sys.exit(main(sys.argv[1:]))"
    args = [
        "experiments", "run", "multinode", "--name", "terminated", "--workerCount", "2",
        # Were they not stopped, datakeep would wait for them and they would leave these files.
        "--workerCommand", 'echo started; (sleep 5; touch "/artifacts/late-$INDEX"); echo unreached',
    ]  # fmt: skip
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", program, *args],
            env={**os.environ, "DATAKEEP_DATABASE_URL": catalog_url},
            stdout=stdout,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a timing check
        while out.read_text().count("started") < 2:
            assert proc.poll() is None, (out.read_text(), err.read_text())
            assert time.monotonic() < deadline, (out.read_text(), err.read_text())
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 130, err.read_text()
    finally:
        proc.kill()
        proc.wait()
    assert "Interrupted" in err.read_text()
    record = json.loads(
        cli("experiments", "details", "--id", experiment_id(err.read_text()), "--json").stdout
    )
    assert record["state"] == "Failed"
    assert not list(Path(record["spec"]["artifacts"]).glob("late-*"))
