"""``datasets versions details`` says which job produced a version and from which pinned inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakeep.runner import sandbox

from .conftest import Datakeep

pytestmark = pytest.mark.skipif(not sandbox.sandbox_status()[0], reason="no mount namespace here")


def test_details_of_a_job_output_names_the_job_and_its_inputs(dk: Datakeep, some_data: Path) -> None:
    dataset_id = dk.create_dataset()
    input_ref = dk.create_version(dataset_id, f"{some_data}/")
    dk.ok("datasets", "tags", "set", f"--id={input_ref}", "--name=prod")
    run = dk.ok(
        "jobs",
        "create",
        "--command=cat /datasets/in/hello.txt > /datasets/out/copy.txt",
        f"--dataset=out@{dataset_id}",
        f"--dataset=in@{dataset_id}:prod",
    )
    job_id = (run.stdout + run.stderr).split("New job created with ID: ")[1].split()[0]

    details = dk.ok("datasets", "versions", "details", f"--id={dataset_id}:latest").stdout
    assert f"| Produced by job | {job_id} (Succeeded)" in details
    # The tag was pinned to the version it named when the job started.
    assert f"in@{input_ref}" in details

    data = dk.ok("datasets", "versions", "details", f"--id={dataset_id}:latest", "--json").json()
    assert data["producedBy"]["id"] == job_id
    inputs = [m for m in data["producedBy"]["datasets"] if not m["output"]]
    assert [(m["name"], m["version"]) for m in inputs] == [("in", input_ref.split(":")[1])]


def test_details_of_an_uploaded_version_has_no_job_rows(dk: Datakeep, some_data: Path) -> None:
    ref = dk.create_version(dk.create_dataset(), f"{some_data}/")
    details = dk.ok("datasets", "versions", "details", f"--id={ref}").stdout
    assert "Produced by job" not in details
    assert dk.ok("datasets", "versions", "details", f"--id={ref}", "--json").json().get("producedBy") is None
