"""``datakeep jobs``: run a command over dataset versions (Gradient's ``jobs create --dataset``).

Also adds ``datakeep datasets versions lineage``, since lineage is made of jobs.

The command's output is streamed to stdout as it runs and kept (``jobs logs``); datakeep's own
lines go to stderr. A failed command makes ``jobs create`` exit with the command's status.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from datakeep.cli.common import DatakeepGroup, get_client, json_option
from datakeep.cli.output import echo_details, echo_json, echo_list, echo_table, stderr
from datakeep.domain.models import Job
from datakeep.domain.refs import EXAMPLE_ID, EXAMPLE_VERSION, parse_ref
from datakeep.errors import InvalidInput, JobFailed
from datakeep.services.jobs import Lineage, LineageNode, parse_env

_JOB_HELP = "Job ID (e.g. j4x2k9m0a1b2c3)."


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


@click.group("jobs", cls=DatakeepGroup)
def jobs() -> None:
    """Run commands with dataset versions mounted at /datasets/NAME."""


@jobs.command("create")
@click.option("--command", required=True, help="Shell command to run (with /bin/sh -c).")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    help=f"NAME@REF, repeatable. NAME@{EXAMPLE_ID}:{EXAMPLE_VERSION} (or :TAG, :latest) is an input, "
    f"read-only at /datasets/NAME; NAME@{EXAMPLE_ID} is an output, empty and writable at "
    "/datasets/NAME, committed as a new latest version when the command exits 0.",
)
@click.option("--name", help="Job name.")
@click.option("--env", "env_pairs", multiple=True, help="Environment variable NAME=VALUE, repeatable.")
@click.option("--workingDirectory", "working_directory", help="Working directory inside the job.")
@click.option("--clusterId", "cluster_id", help="Recorded for Gradient compatibility.")
@click.option("--machineType", "machine_type", help="Recorded for Gradient compatibility.")
@click.option("--projectId", "project_id", help="Recorded for Gradient compatibility.")
@click.option("--container", help="Recorded; the command runs on the host in its own mount namespace.")
@click.option(
    "--mountMode",
    "mount_mode",
    type=click.Choice(["namespace", "env"]),
    default="namespace",
    show_default=True,
    help="'env' where no mount namespace can be made: no mounts, paths exported as "
    "DATASETS_DIR (inputs are then not protected by the kernel).",
)
def create_job(
    command: str,
    datasets: Sequence[str],
    name: str | None,
    env_pairs: Sequence[str],
    working_directory: str | None,
    cluster_id: str | None,
    machine_type: str | None,
    project_id: str | None,
    container: str | None,
    mount_mode: str,
) -> None:
    """Create a job and run it to completion, streaming its output."""

    reader_gone = False

    def on_output(chunk: bytes) -> None:
        nonlocal reader_gone
        if reader_gone:
            return
        try:
            click.echo(chunk, nl=False)  # bytes go to the binary stdout, flushed at once
        except BrokenPipeError:
            # The reader went away (`| head`): the job goes on, and its log keeps everything.
            reader_gone = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
            os.close(devnull)

    created: list[str] = []

    def on_created(job_id: str) -> None:
        created.append(job_id)
        stderr(f"New job created with ID: {job_id}")

    client = get_client()
    try:
        job = client.jobs.create(
            command=command,
            datasets=list(datasets),
            name=name,
            env=parse_env(env_pairs),
            working_directory=working_directory,
            cluster_id=cluster_id,
            machine_type=machine_type,
            project_id=project_id,
            container=container,
            mount_mode=mount_mode,
            on_output=on_output,
            on_notice=stderr,
            on_created=on_created,
        )
    except KeyboardInterrupt:
        if not created:
            raise
        # The generic "nothing was committed, run it again" would mislead: a rerun is a new
        # job, while this one's output already sits in an uncommitted version (or, on a
        # server, the job goes on without us).
        stopped = client.jobs.get(created[0])
        if stopped.state in ("Pending", "Running"):
            raise JobFailed(
                f"Stopped following job {stopped.id}; it is still running",
                exit_code=130,
                hint=f"Follow it again with: datakeep jobs logs --id={stopped.id} --follow",
            ) from None
        _say_outputs(stopped)
        raise JobFailed(
            f"Job {stopped.id} was cancelled",
            exit_code=130,
            hint=f"What it wrote is kept uncommitted: see datakeep jobs details --id={stopped.id}",
        ) from None
    _say_outputs(job)
    if job.state != "Succeeded":
        code = job.exit_code if job.exit_code else 1
        raise JobFailed(
            f"Job {job.id} failed with exit code {job.exit_code}",
            exit_code=code,
            hint=f"See: datakeep jobs logs --id={job.id}",
        )


def _say_outputs(job: Job) -> None:
    for mount in job.datasets:
        if mount.output:
            ref = f"{mount.ref}:{mount.version}"
            committed = job.state == "Succeeded"
            stderr(f"Committed dataset version: {ref}" if committed else f"Kept uncommitted: {ref}")


def _job_json(job: Job) -> dict[str, Any]:
    return job.to_dict()


@jobs.command("list")
@json_option
def list_jobs(as_json: bool) -> None:
    """List jobs, newest first."""
    client = get_client()
    echo_list(
        lambda limit, offset: client.jobs.list(limit=limit, offset=offset),
        ("ID", "Name", "State", "Exit code", "Created"),
        lambda j: (j.id, j.name or "", j.state, "" if j.exit_code is None else j.exit_code, _when(j.created)),
        _job_json,
        as_json=as_json,
    )


@jobs.command("details")
@click.option("--id", "job_id", required=True, help=_JOB_HELP)
@json_option
def show_job(job_id: str, as_json: bool) -> None:
    """Show a job: what it ran, on which versions, and how it ended."""
    job = get_client().jobs.get(job_id)
    if as_json:
        echo_json(_job_json(job))
        return
    echo_details(
        [
            ("ID", job.id),
            ("Name", job.name or ""),
            ("State", job.state),
            ("Exit code", "" if job.exit_code is None else job.exit_code),
            ("Command", job.command),
            ("Working directory", job.working_directory or ""),
            ("Mount mode", job.mount_mode),
            ("Cluster", job.cluster_id or ""),
            ("Machine type", job.machine_type or ""),
            ("Project", job.project_id or ""),
            ("Container", job.container or ""),
            ("Env", "\n".join(f"{k}={v}" for k, v in sorted(job.env.items()))),
            ("Created", _when(job.created)),
            ("Started", _when(job.started)),
            ("Finished", _when(job.finished)),
            ("Notes", "\n".join(job.notes)),
        ],
        {},
        as_json=False,
    )
    if job.datasets:
        echo_table(
            [
                ("Dataset", "Ref", "Version", "Mount"),
                *(
                    (
                        m.name,
                        m.ref,
                        m.version or "",
                        ("output" if m.output else "input") + f" /datasets/{m.name}",
                    )
                    for m in job.datasets
                ),
            ]
        )


@jobs.command("logs")
@click.option("--id", "job_id", required=True, help=_JOB_HELP)
@click.option("--line", type=int, default=0, show_default=True, help="First line to show (0 = the start).")
@click.option("--limit", type=int, help="Show at most this many lines.")
@click.option("--follow", is_flag=True, help="Keep printing output until the job finishes.")
@json_option
def job_logs(job_id: str, line: int, limit: int | None, follow: bool, as_json: bool) -> None:
    """Print a job's kept output."""
    client = get_client()
    if as_json:
        if follow:
            raise InvalidInput(
                "--json and --follow cannot be combined", hint="Drop --follow to get the lines so far"
            )
        echo_json(client.jobs.logs(job_id, line=line, limit=limit))
        return
    if follow:
        for chunk in client.jobs.follow(job_id):
            click.echo(chunk, nl=False)
        return
    for text in client.jobs.logs(job_id, line=line, limit=limit):
        click.echo(text)


jobs_commands: list[click.Command] = [jobs]


# LINEAGE (a subcommand of ``datasets versions``)


def _state(node: LineageNode) -> str:
    return "" if node.state == "committed" else f" ({node.state})"


def _tree(node: LineageNode, arrow: str, prefix: str = "", out: list[str] | None = None) -> list[str]:
    lines = out if out is not None else []
    for index, child in enumerate(node.next):
        last = index == len(node.next) - 1
        via = f" (made by job {child.job})" if child.job else ""
        lines.append(
            f"{prefix}{'`-- ' if last else '|-- '}{arrow} {child.ref}{_state(child)}{via}"
            f"{' ...' if child.truncated else ''}"
        )
        _tree(child, arrow, prefix + ("    " if last else "|   "), lines)
    return lines


def render_lineage(lineage: Lineage) -> str:
    up = lineage.upstream
    lines = [f"{lineage.ref}{_state(up)}"]
    if up.job:
        lines.append(f"  produced by job {up.job}: {up.command}")
    else:
        lines.append("  not produced by a job")
    lines.append("Upstream (inputs it came from):")
    lines += ["  " + line for line in _tree(up, "<-")] or ["  (none)"]
    lines.append("Downstream (versions made from it):")
    lines += ["  " + line for line in _tree(lineage.downstream, "->")] or ["  (none)"]
    return "\n".join(lines)


@click.command("lineage", cls=DatakeepGroup.command_class)
@click.option("--id", "ref", required=True, help=f"Version reference (e.g. {EXAMPLE_ID}:{EXAMPLE_VERSION}).")
@click.option("--depth", type=int, default=20, show_default=True, help="How many jobs to follow each way.")
@json_option
def version_lineage(ref: str, depth: int, as_json: bool) -> None:
    """Show the jobs and versions a version came from, and those made from it."""
    parse_ref(ref, require_selector=True)
    lineage = get_client().jobs.lineage(ref, depth=depth)
    if as_json:
        echo_json(lineage.to_dict())
    else:
        click.echo(render_lineage(lineage))


def producer_rows(ref: str) -> list[tuple[str, str]]:
    """Rows for ``datasets versions details``: which job produced the version, from which inputs.

    That command lives in cli/datasets.py; it appends these rows, so what a job means for
    lineage stays defined here. A version no job produced gets no rows.
    """
    job = get_client().jobs.producer(ref)
    if job is None:
        return []
    inputs = [f"{m.name}@{m.ref.split(':')[0]}:{m.version}" for m in job.datasets if not m.output]
    return [
        ("Produced by job", f"{job.id} ({job.state})"),
        ("Job command", job.command),
        ("Job inputs", "\n".join(inputs) or "(none)"),
    ]


def _attach_lineage() -> None:
    """Add ``lineage`` to the ``datasets versions`` group owned by cli/datasets.py."""
    from datakeep.cli import datasets as datasets_cli

    group = getattr(datasets_cli, "versions", None)
    if isinstance(group, click.Group) and "lineage" not in group.commands:
        group.add_command(version_lineage)


_attach_lineage()

commands: list[click.Command] = jobs_commands
