"""``gradient==1.11.0`` (the last CLI with dataset options on jobs and experiments) against the server.

The seeds' commands run on the server's machine, stream their logs back and end.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from datakeep.config import Settings
from datakeep.remote.client import RemoteClient
from datakeep.runner.sandbox import sandbox_status
from fixtures.s3 import MakeBucket, S3Server

from .conftest import Gradient, RunningServer, gradient_bin

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

needs_sandbox = pytest.mark.skipif(
    not sandbox_status()[0], reason=f"no mount namespace: {sandbox_status()[1]}"
)


@pytest.fixture
def gradient1(dk_server: RunningServer, tmp_path: Path) -> Gradient:
    home = tmp_path / "gradient1-home"
    home.mkdir()
    return Gradient(gradient_bin("1.11.0"), dk_server.url, dk_server.new_key(), home, tmp_path)


def _env_extra(g: Gradient) -> dict[str, str]:
    return {
        "PAPERSPACE_CONFIG_LOG_HOST": g.server_url,
        "PAPERSPACE_CONFIG_EXPERIMENTS_HOST": g.server_url + "/",
    }


def _run(g: Gradient, *args: str) -> str:
    import subprocess

    env = g.env() | _env_extra(g)
    result = subprocess.run(
        [str(g.binary), *args], env=env, cwd=g.cwd, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stderr.lower(), result.stdout + result.stderr
    return result.stdout


@needs_sandbox
def test_jobs_create_with_datasets(gradient1: Gradient, tmp_path: Path) -> None:
    remote = RemoteClient(Settings(api_url=gradient1.server_url, api_key=gradient1.api_key))
    data = tmp_path / "input"
    data.mkdir()
    (data / "hello.txt").write_text("hello from the input\n")
    ds_in = remote.datasets.create(name="inputs")
    version = remote.versions.create(ds_in.id, source_paths=[f"{data}/"])
    ds_out = remote.datasets.create(name="outputs")

    out = _run(
        gradient1, "jobs", "create",
        "--clusterId=cluster", "--machineType=C4", "--projectId=prj", "--container=bash",
        "--command=cat /datasets/input/hello.txt > /datasets/output/hello2.txt && echo copied",
        f"--dataset=output@{ds_out.id}", f"--dataset=input@{version.ref}",
    )  # fmt: skip
    job_id = re.search(r"New job created with ID: (j[0-9a-z]{13})", out)
    assert job_id, out
    # 1.11.0's create prints the ID only; its logs command follows the run until PSEOF.
    logs = _run(gradient1, "jobs", "logs", "--id", job_id.group(1), "--follow", "true")
    assert "copied" in logs, logs

    job = remote.jobs.get(job_id.group(1))
    assert job.state == "Succeeded", job
    produced = remote.versions.get(f"{ds_out.id}:latest")
    assert produced.is_committed
    target = tmp_path / "got"
    remote.files.get(produced.ref, target_path=target)
    assert (target / "hello2.txt").read_text() == "hello from the input\n"
    remote.close()


@needs_sandbox
def test_experiments_run_singlenode_with_an_s3_dataset(
    gradient1: Gradient, s3: S3Server, make_bucket: MakeBucket, s3_client: S3Client
) -> None:
    make_bucket("bucket-name")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("mnist.py", "print('training on', open('/data/dataset A/train.csv').read().strip())\n")
        zf.writestr("train.csv", "1,2,3\n")
    s3_client.put_object(Bucket="bucket-name", Key="my-dataset.zip", Body=archive.getvalue())

    out = _run(
        gradient1, "experiments", "run", "singlenode",
        "--projectId", "prj", "--name", "singleEx",
        "--experimentEnv", '{"EPOCHS_EVAL":5,"TRAIN_EPOCHS":10}',
        "--container", "tensorflow/tensorflow:1.13.1-gpu-py3", "--machineType", "K80",
        "--command", "cat '/data/dataset A/train.csv' && echo TRAIN_EPOCHS=$TRAIN_EPOCHS",
        "--modelType", "Tensorflow",
        "--datasetUri", "s3://bucket-name/my-dataset.zip",
        "--datasetName", "dataset A",
        "--datasetAwsAccessKeyId", s3.access_key,
        "--datasetAwsSecretAccessKey", s3.secret_key,
        "--datasetAwsEndpoint", s3.endpoint_url,
    )  # fmt: skip
    assert "1,2,3" in out, out
    assert "TRAIN_EPOCHS=10" in out, out
    assert s3.secret_key not in out
