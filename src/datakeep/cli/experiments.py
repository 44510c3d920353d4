"""``datakeep experiments``: Gradient's legacy experiments with S3 datasets, run locally.

``experiments run singlenode|multinode`` keeps Gradient's option names, including the
repeated ``--dataset*`` options grouped by position, so old scripts run after replacing
``gradient`` with ``datakeep``. The command runs here, in a mount namespace, and its output
is streamed; the exit status of ``run`` is the experiment's.

Keys: ``--datasetAwsAccessKeyId``/``--datasetAwsSecretAccessKey`` work, but a command line
ends up in shell history and ``ps`` output, so AWS's own ``AWS_ACCESS_KEY_ID``/
``AWS_SECRET_ACCESS_KEY`` variables or an ``AWS_PROFILE`` are the better way. Keys are never
printed, logged or stored in run records.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from datakeep.cli.common import DatakeepGroup, GradientCommand, get_client, json_option
from datakeep.cli.output import echo_details, echo_json, echo_list, echo_table
from datakeep.experiments.options import OPTION_FIELDS, dataset_options_from_yaml, group_dataset_options
from datakeep.experiments.run import DEFAULT_MODEL_PATH, ExperimentPlan, Kind, parse_experiment_env
from datakeep.experiments.volumes import parse_age
from datakeep.sizes import format_size

_DATASET_HELP = {
    "datasetId": "datakeep dataset version (ID:VERSION, ID:TAG or ID:latest), mounted at /data/NAME.",
    "datasetUri": "S3 URI of an object, folder or bucket (s3://bucket/key). Repeat for more datasets.",
    "datasetName": "Name (mount point /data/NAME); default: basename without archive extension.",
    "datasetAwsAccessKeyId": "AWS access key ID (better: AWS_ACCESS_KEY_ID or AWS_PROFILE).",
    "datasetAwsSecretAccessKey": "AWS secret access key (better: AWS_SECRET_ACCESS_KEY or AWS_PROFILE).",
    "datasetAwsEndpoint": "Endpoint of an S3-compatible store (e.g. http://minio:9000).",
    "datasetVersionId": "S3 object version to fetch (versioned buckets only).",
    "datasetEtag": "Expected S3 ETag: the run fails before starting if the object differs.",
    "datasetVolumeKind": "shared (default: downloaded once to shared storage) or dynamic (per process).",
    "datasetVolumeSize": "Size of a dynamic volume (default 5Gi; K, M, G, T or Ki, Mi, Gi, Ti).",
}


class ExperimentRunCommand(GradientCommand):
    """Also accepts the ``datasets:`` list-of-objects form in ``--optionsFile``."""

    def read_options_file(self, path: str) -> dict[str, Any]:
        try:
            data = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return super().read_options_file(path)
        if not isinstance(data, dict) or "datasets" not in data:
            return super().read_options_file(path)
        lists = dataset_options_from_yaml(data)
        converted = {k: v for k, v in data.items() if k != "datasets"}
        # Gradient's own marker for an empty slot, so the positions stay as written.
        converted.update({k: ["none" if v is None else str(v) for v in vals] for k, vals in lists.items()})
        # The converted file may hold dataset keys: it lives in memory (a memfd), never on disk,
        # and errors about it name the user's file.
        fd = os.memfd_create("datakeep-options")
        try:
            os.write(fd, yaml.safe_dump(converted).encode("utf-8"))
            in_memory = f"/proc/self/fd/{fd}"
            try:
                return super().read_options_file(in_memory)
            except click.BadParameter as exc:
                raise click.BadParameter(
                    exc.message.replace(in_memory, path), param_hint=exc.param_hint
                ) from None
        finally:
            os.close(fd)

    def write_options_file(self, ctx: click.Context, args: list[str], path: str) -> None:
        """Never write dataset keys to a template: options files get committed and shared."""
        secret = "--datasetAwsSecretAccessKey"
        kept: list[str] = []
        skip = False
        for arg in args:
            if skip:
                skip = False
            elif arg == secret:
                skip = True
            elif not arg.startswith(secret + "="):
                kept.append(arg)
        super().write_options_file(ctx, kept, path)


def _dataset_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(OPTION_FIELDS):
        func = click.option(f"--{option}", option, multiple=True, help=_DATASET_HELP[option])(func)
    return click.option(
        "--datasetRefresh",
        "dataset_refresh",
        is_flag=True,
        help="Fetch shared datasets again when the S3 object changed since their download.",
    )(func)


def _common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--name", required=True, help="Experiment name."),
        click.option(
            "--experimentEnv", "experiment_env", help="Environment as JSON, e.g. '{\"EPOCHS\": 5}'."
        ),
        click.option("--projectId", "project_id", help="Project ID (recorded)."),
        click.option("--machineType", "machine_type", help="Machine type (recorded; runs on this host)."),
        click.option(
            "--workspaceUrl",
            "workspace_url",
            help="Local directory or git URL copied into /paperspace, the command's working directory.",
        ),
        click.option("--modelType", "model_type", help="Model type (recorded)."),
        click.option(
            "--modelPath",
            "model_path",
            default=DEFAULT_MODEL_PATH,
            show_default=True,
            help="Writable directory inside the run whose content is kept afterwards.",
        ),
        click.option(
            "--mountMode",
            "mount_mode",
            type=click.Choice(["namespace", "env"]),
            default="namespace",
            show_default=True,
            help="namespace: real read-only mounts; env: no mounts, DATA_DIR/ARTIFACTS_DIR variables.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return _dataset_options(func)


def _plan(values: dict[str, Any], kind: Kind, info: dict[str, Any], **fields: Any) -> ExperimentPlan:
    """The plan both run commands share: datasets, environment and what is only recorded."""
    return ExperimentPlan(
        name=values["name"],
        kind=kind,
        datasets=tuple(group_dataset_options({opt: values.pop(opt, ()) for opt in OPTION_FIELDS})),
        env=parse_experiment_env(values["experiment_env"]),
        model_path=values["model_path"],
        refresh=values["dataset_refresh"],
        mount_mode=values["mount_mode"],
        info={
            "projectId": values["project_id"],
            **info,
            "machineType": values["machine_type"],
            "workspaceUrl": values["workspace_url"],
            "modelType": values["model_type"],
        },
        **fields,
    )


def _run(plan: ExperimentPlan) -> None:
    client = get_client()
    multi = plan.kind == "multinode"
    pending: dict[str, bytes] = {}

    def output(label: str, data: bytes) -> None:
        if not multi:
            sys.stdout.buffer.write(data)
        else:
            # Whole lines only, each with its process: several processes write at once.
            lines = (pending.pop(label, b"") + data).split(b"\n")
            pending[label] = lines.pop()
            sys.stdout.buffer.write(b"".join(f"[{label}] ".encode() + line + b"\n" for line in lines))
        sys.stdout.buffer.flush()

    def warn(message: str) -> None:
        click.secho(f"Warning: {message}", err=True, fg="yellow")

    def created(experiment_id: str) -> None:
        click.echo(f"New experiment created with ID: {experiment_id}", err=True)

    def progress(name: str) -> Any:
        from datakeep.storage.transfer import Progress

        return Progress(f"Fetching {name}")

    def terminate(_signum: int, _frame: Any) -> None:
        # SIGTERM (kill, timeout, a scheduler) stops the run as Ctrl-C does: processes stopped,
        # dynamic volumes unmounted, the record marked Failed. Python's default would leave
        # tmpfs volumes mounted until the next run's sweep.
        raise KeyboardInterrupt

    # Only the main thread may set a handler (the CLI may be driven from another in tests).
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if main_thread else None
    try:
        experiment = client.experiments.run(
            plan, on_output=output, on_warning=warn, progress=progress, on_created=created
        )
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        for label, rest in pending.items():
            if rest:
                sys.stdout.buffer.write(f"[{label}] ".encode() + rest + b"\n")
        sys.stdout.buffer.flush()
    click.echo(
        f"Experiment {experiment.id} {experiment.state.lower()} (exit code {experiment.exit_code}); "
        f"model directory: {experiment.artifacts}",
        err=True,
    )
    if experiment.exit_code:
        raise click.exceptions.Exit(int(experiment.exit_code))


@click.group("experiments", cls=DatakeepGroup)
def experiments() -> None:
    """Run experiments with S3 datasets (Gradient's legacy experiments), and manage their data."""


@experiments.group("run", cls=DatakeepGroup)
def run_group() -> None:
    """Fetch the datasets, then run the experiment's command(s) with them at /data/NAME."""


@run_group.command("singlenode", cls=ExperimentRunCommand)
@_common_options
@click.option("--command", required=True, help="Shell command to run.")
@click.option("--container", help="Container image (recorded; the command runs on this host).")
def run_singlenode(**values: Any) -> None:
    """Run one process."""
    _run(_plan(values, "singlenode", {"container": values["container"]}, command=values["command"]))


@run_group.command("multinode", cls=ExperimentRunCommand)
@_common_options
@click.option("--experimentTypeId", "experiment_type", help="GRPC or MPI (recorded).")
@click.option("--workerCount", "worker_count", type=int, required=True, help="Number of worker processes.")
@click.option("--workerCommand", "worker_command", help="Command of each worker.")
@click.option("--workerContainer", "worker_container", help="Worker image (recorded).")
@click.option("--workerMachineType", "worker_machine_type", help="Worker machine type (recorded).")
@click.option(
    "--parameterServerCount",
    "ps_count",
    type=int,
    default=0,
    show_default=True,
    help="Number of parameter servers.",
)
@click.option("--parameterServerCommand", "ps_command", help="Command of each parameter server.")
@click.option("--parameterServerContainer", "ps_container", help="Parameter server image (recorded).")
@click.option(
    "--parameterServerMachineType", "ps_machine_type", help="Parameter server machine type (recorded)."
)
@click.option("--command", help="Command for workers and parameter servers without their own.")
def run_multinode(**values: Any) -> None:
    """Run each worker and each parameter server as its own process, all with the datasets."""
    recorded = {
        "experimentTypeId": values["experiment_type"],
        "workerContainer": values["worker_container"],
        "workerMachineType": values["worker_machine_type"],
        "parameterServerContainer": values["ps_container"],
        "parameterServerMachineType": values["ps_machine_type"],
    }
    plan = _plan(
        values,
        "multinode",
        recorded,
        command=values["command"],
        worker_count=values["worker_count"],
        worker_command=values["worker_command"],
        parameter_server_count=values["ps_count"],
        parameter_server_command=values["ps_command"],
    )
    _run(plan)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


@experiments.command("list")
@json_option
def list_experiments(as_json: bool) -> None:
    """List experiments, newest first."""
    client = get_client()
    echo_list(
        lambda limit, offset: client.experiments.list(limit=limit, offset=offset),
        ("Name", "ID", "Status"),
        lambda e: (e.name, e.id, e.state),
        lambda e: e.to_dict(),
        as_json=as_json,
    )


@experiments.command("details")
@click.option("--id", "experiment_id", required=True, help="Experiment ID (e.g. e1a2b3c4d5e6f).")
@json_option
def experiment_details(experiment_id: str, as_json: bool) -> None:
    """Show an experiment: its state, command, datasets and where its model directory is."""
    e = get_client().experiments.get(experiment_id)
    rows: list[tuple[str, Any]] = [
        ("Name", e.name),
        ("ID", e.id),
        ("Type", e.kind),
        ("Status", e.state),
        ("Exit code", e.exit_code),
        ("Command", e.command),
        ("Created", _when(e.created)),
        ("Started", _when(e.started)),
        ("Finished", _when(e.finished)),
        ("Model path", f"{e.spec.get('modelPath')} -> {e.artifacts}"),
    ]
    for d in e.datasets:
        where = d.get("path") or ""
        source = d.get("uri") or d.get("id") or ""
        pins = ", ".join(f"{k} {d[k]}" for k in ("etag", "versionId") if d.get(k))
        label = f"Dataset {d.get('name')}" + (f" ({d['process']})" if d.get("process") else "")
        rows.append((label, f"{source} {pins}".strip() + (f" -> {where}" if where else "")))
    if e.spec.get("error"):
        rows.append(("Error", e.spec["error"]))
    echo_details([("Name", "Value"), *rows], e.to_dict(), as_json=as_json)


@experiments.command("logs")
@click.option("--id", "experiment_id", required=True, help="Experiment ID.")
@click.option("--process", help="Only this process (main, worker-0, ps-0, ...).")
@json_option
def experiment_logs(experiment_id: str, process: str | None, as_json: bool) -> None:
    """Print an experiment's output (stdout and stderr, as interleaved)."""
    logs = get_client().experiments.logs(experiment_id, process=process)
    if as_json:
        echo_json(logs)
        return
    for label, text in logs.items():
        if len(logs) > 1:
            click.echo(f"==> {label} <==")
        click.echo(text, nl=not text.endswith("\n"))


@experiments.group("datasets", cls=DatakeepGroup)
def datasets_group() -> None:
    """Datasets kept on shared storage (<shared>/data/NAME[-ETAG][-VERSIONID])."""


@datasets_group.command("list")
@json_option
def shared_list(as_json: bool) -> None:
    """List shared-storage datasets: name, size, last use and source URI."""
    entries = get_client().experiments.shared_datasets()
    if as_json:
        echo_json(
            [
                {
                    "name": e.name,
                    "directory": e.directory,
                    "path": str(e.path),
                    "size": e.size,
                    "lastUsed": e.last_used.isoformat(),
                    "uri": e.uri,
                    "inUse": e.in_use,
                }
                for e in entries
            ]
        )
        return
    if not entries:
        click.echo("No data found")
        return
    echo_table(
        [
            ("Name", "Directory", "Size", "Last used", "Source URI", "In use"),
            *[
                (
                    e.name,
                    e.directory,
                    format_size(e.size),
                    _when(e.last_used),
                    e.uri or "",
                    "yes" if e.in_use else "",
                )
                for e in entries
            ],
        ]
    )


@datasets_group.command("clean")
@click.option("--name", help="Only this dataset (its name or directory).")
@click.option("--older-than", "older_than", help="Only datasets unused for this long (30d, 12h, 2w).")
@click.option("--dry-run", "dry_run", is_flag=True, help="Show what would be removed, remove nothing.")
def shared_clean(name: str | None, older_than: str | None, dry_run: bool) -> None:
    """Remove shared-storage datasets; one in use by a running experiment is never removed."""
    if name is None and older_than is None and not dry_run and sys.stdin.isatty():
        click.confirm("Remove every shared dataset not in use?", abort=True)
    age = parse_age(older_than) if older_than else None
    plan = get_client().experiments.clean_datasets(name=name, older_than=age, dry_run=dry_run)
    verb = "Would remove" if dry_run else "Removed"
    for entry in plan.remove:
        click.echo(f"{verb} {entry.directory} ({format_size(entry.size)})")
    for entry in plan.in_use:
        click.echo(f"Kept {entry.directory}: in use by a running experiment", err=True)
    if not plan.remove and not plan.in_use:
        click.echo("Nothing to remove")
    else:
        click.echo(f"{verb} {len(plan.remove)} dataset(s), {format_size(plan.freed)}")


commands = [experiments]
