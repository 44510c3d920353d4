"""The datakeep CLI in remote mode (DATAKEEP_API_URL + DATAKEEP_API_KEY) against a real server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from datakeep.cli.common import reset_client
from datakeep.cli.main import main
from datakeep.domain.models import Dataset
from fixtures.s3 import MakeBucket, S3Server

from .conftest import RunningServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

IDS = re.compile(r"\b(ds|sp)[0-9a-z]{13}\b|(?<=:)[0-9a-z]{7}\b")


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def __call__(self, *args: str, ok: bool = True) -> str:
        reset_client()
        self._capsys.readouterr()
        code = main(list(args))
        out, err = self._capsys.readouterr()
        if ok:
            assert code == 0, f"datakeep {' '.join(args)} -> {code}\n{out}\n{err}"
        else:
            assert code != 0, f"datakeep {' '.join(args)} should have failed\n{out}"
            return err
        return out


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
def remote(dk_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    monkeypatch.setenv("DATAKEEP_API_URL", dk_server.url)
    monkeypatch.setenv("DATAKEEP_API_KEY", dk_server.new_key())
    reset_client()
    return dk_server


def _data(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.txt").write_text("beta\n")
    (root / "empty").write_bytes(b"")
    (root / "big.bin").write_bytes(bytes(range(256)) * 8192)  # 2 MiB: stored whole, not packed
    return root


def _s3_dataset(client: Any, s3: S3Server, make_bucket: MakeBucket, name: str) -> Dataset:
    """A dataset on an S3 provider on the test's S3 server, both named ``name``."""
    make_bucket(name)
    config = {
        "bucket": name,
        "accessKey": s3.access_key,
        "secretAccessKey": s3.secret_key,
        "endpoint": s3.endpoint_url,
    }
    sp = client.storage_providers.create(name=name, type="s3", config=config)
    dataset: Dataset = client.datasets.create(name=name, storage_provider_id=sp.id)
    return dataset


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _story(cli: Cli, data: Path, out: Path, provider: list[str]) -> list[str]:
    """The seed's story; returns each command's output."""
    outputs = []
    created = cli("datasets", "create", "--name", "mnist", *provider)
    outputs.append(created)
    ds = re.search(r"ds[0-9a-z]{13}", created)
    assert ds, created
    ds_id = ds.group(0)
    made = cli("datasets", "versions", "create", f"--id={ds_id}", f"--source-path={data}/")
    outputs.append(made)
    ver = re.search(rf"{ds_id}:([0-9a-z]{{7}})", made)
    assert ver, made
    ref = f"{ds_id}:{ver.group(1)}"
    outputs.append(cli("datasets", "tags", "set", f"--id={ref}", "--name=prod"))
    outputs.append(cli("datasets", "list"))
    outputs.append(cli("datasets", "details", f"--id={ds_id}"))
    outputs.append(cli("datasets", "versions", "list", f"--id={ds_id}"))
    outputs.append(cli("datasets", "versions", "details", f"--id={ds_id}:prod"))
    outputs.append(cli("datasets", "tags", "list", f"--id={ds_id}"))
    outputs.append(cli("datasets", "files", "list", f"--id={ref}"))
    outputs.append(cli("datasets", "files", "list", f"--id={ds_id}:latest", "--recursive"))
    outputs.append(cli("datasets", "files", "get", f"--id={ref}", f"--target-path={out}"))
    assert _tree(out) == _tree(data)
    return outputs


def test_remote_output_is_the_embedded_output(
    cli: Cli, tmp_path: Path, dk_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data(tmp_path / "some-data")
    embedded = _story(cli, data, tmp_path / "out-embedded", [])
    monkeypatch.setenv("DATAKEEP_API_URL", dk_server.url)
    monkeypatch.setenv("DATAKEEP_API_KEY", dk_server.new_key())
    remote = _story(cli, data, tmp_path / "out-remote", [])
    # Same text, once IDs are blanked; the default provider's name is the same, its path is not shown.
    assert [IDS.sub("<id>", o) for o in remote] == [IDS.sub("<id>", o) for o in embedded]


def test_remote_mode_with_an_s3_provider_uploads_only_missing_content(
    cli: Cli,
    remote: RunningServer,
    s3: S3Server,
    make_bucket: MakeBucket,
    s3_client: S3Client,
    tmp_path: Path,
) -> None:
    bucket = make_bucket("remote-bucket")
    out = cli(
        "storageProviders", "create", "s3", "--name", "moto", f"--bucket={bucket}",
        f"--accessKey={s3.access_key}", f"--secretAccessKey={s3.secret_key}",
        f"--endpoint={s3.endpoint_url}", f"--region={s3.region}",
    )  # fmt: skip
    sp = re.search(r"sp[0-9a-z]{13}", out)
    assert sp, out
    details = cli("storageProviders", "details", f"--id={sp.group(0)}")
    assert s3.secret_key not in details
    data = _data(tmp_path / "data")
    outputs = _story(cli, data, tmp_path / "out", [f"--storageProviderId={sp.group(0)}"])
    ds = re.search(r"ds[0-9a-z]{13}", outputs[0])
    assert ds
    keys_before = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert any(k.startswith("blobs/") for k in keys_before), keys_before
    assert not any(k.startswith("uploads/") for k in keys_before)

    # Same content again, plus one new file: only the new file travels.
    (data / "new.txt").write_text("new\n")
    made = cli("datasets", "versions", "create", f"--id={ds.group(0)}", f"--source-path={data}/")
    assert "Committed dataset version" in made
    keys_after = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", []))
    new = sorted(set(keys_after) - set(keys_before))
    assert not any(k.startswith("blobs/") for k in new), new
    files = cli("datasets", "files", "list", f"--id={ds.group(0)}:latest", "--recursive")
    assert "new.txt" in files
    assert "big.bin" in files

    # Through the library, watching the client's own transfer connection: the server dedups
    # uploads at commit too, so only what goes over the wire shows that nothing known is sent.
    import datakeep

    client = datakeep.connect(progress=False)
    sent: list[str] = []
    client.session.transfers.event_hooks["request"].append(
        lambda request: sent.append(f"{request.method} {request.url.path}")
    )
    (data / "newer.txt").write_text("newer\n")
    (data / "copy-of-big.bin").write_bytes((data / "big.bin").read_bytes())
    version = client.versions.create(ds.group(0), source_paths=[f"{data}/"])
    assert version.is_committed
    puts = [s for s in sent if s.startswith("PUT ")]
    assert len(puts) == 1, sent
    assert puts[0].endswith("/newer.txt"), sent
    assert {f.path for f in client.files.list(version.ref, recursive=True)} >= {
        "copy-of-big.bin",
        "newer.txt",
    }
    client.close()


def test_remote_errors_match_embedded(cli: Cli, remote: RunningServer, tmp_path: Path) -> None:
    err = cli("datasets", "details", "--id=ds0000000000000", ok=False)
    assert "not found" in err.lower()
    created = cli("datasets", "create", "--name", "x")
    ds = re.search(r"ds[0-9a-z]{13}", created)
    assert ds
    made = cli(
        "datasets", "versions", "create", f"--id={ds.group(0)}", f"--source-path={_data(tmp_path / 'd')}"
    )
    ver = re.search(r":([0-9a-z]{7})", made)
    assert ver
    err = cli(
        "datasets",
        "files",
        "put",
        f"--id={ds.group(0)}:{ver.group(1)}",
        f"--source-path={tmp_path}",
        ok=False,
    )
    assert "committed" in err.lower()
    err = cli("datasets", "versions", "create", f"--id={ds.group(0)}", "--source-path=/no/such/dir", ok=False)
    assert "Source path not found: /no/such/dir" in err


def test_remote_without_a_key_says_how_to_fix_it(
    cli: Cli, dk_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAKEEP_API_URL", dk_server.url)
    monkeypatch.setenv("DATAKEEP_API_KEY", "dk_not-a-key")
    err = cli("datasets", "list", ok=False)
    assert "Invalid or missing API key" in err


def test_remote_jobs_run_on_the_server(cli: Cli, remote: RunningServer, tmp_path: Path) -> None:
    from datakeep.runner.sandbox import sandbox_status

    if not sandbox_status()[0]:
        pytest.skip(f"no mount namespace here: {sandbox_status()[1]}")
    created = cli("datasets", "create", "--name", "in")
    ds_in = re.search(r"ds[0-9a-z]{13}", created)
    assert ds_in
    made = cli(
        "datasets", "versions", "create", f"--id={ds_in.group(0)}", f"--source-path={_data(tmp_path / 'd')}/"
    )
    ref = re.search(r"ds[0-9a-z]{13}:[0-9a-z]{7}", made)
    assert ref
    out = cli("jobs", "create", "--command=cat /datasets/input/a.txt", f"--dataset=input@{ref.group(0)}")
    assert "alpha" in out
    listed = cli("jobs", "list")
    assert "Succeeded" in listed


def test_admin_teams_and_keys_commands(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = cli("admin", "teams", "create", "vision")
    assert re.search(r"Created team: te[0-9a-z]{13} \(vision\)", out), out
    assert "vision" in cli("admin", "teams", "list")
    key = cli("admin", "keys", "create", "--team", "vision", "--name", "ci").strip()
    assert key.startswith("dk_")
    listed = cli("admin", "keys", "list", "--team", "vision", "--json")
    import json

    rows = json.loads(listed)
    assert [r["name"] for r in rows] == ["ci"]
    assert key not in listed  # only the prefix is ever shown
    assert key.startswith(rows[0]["prefix"])
    assert f"Revoked API key: {rows[0]['id']}" in cli("admin", "keys", "revoke", rows[0]["id"])
    assert json.loads(cli("admin", "keys", "list", "--json"))[0]["revoked"]
    monkeypatch.setenv("DATAKEEP_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DATAKEEP_API_KEY", "x")
    assert "server's own catalog" in cli("admin", "teams", "list", ok=False)


def test_admin_names_are_checked_like_other_names(cli: Cli) -> None:
    """A newline would garble `teams list`, and PostgreSQL refuses what its column cannot hold."""
    assert "teams create NAME" in cli("admin", "teams", "create", " ", ok=False)
    assert "control characters" in cli("admin", "teams", "create", "a\nb", ok=False)
    assert "at most 200" in cli("admin", "teams", "create", "x" * 201, ok=False)
    assert "No data" in cli("admin", "keys", "list")  # nothing was created by the refusals
    cli("admin", "teams", "create", "named")
    assert "control characters" in cli(
        "admin", "keys", "create", "--team", "named", "--name", "a\tb", ok=False
    )
    import json

    assert [t["name"] for t in json.loads(cli("admin", "teams", "list", "--json"))] == ["local", "named"]


def test_remote_experiment_runs_on_the_server(
    cli: Cli, remote: RunningServer, s3: S3Server, make_bucket: MakeBucket, s3_client: S3Client
) -> None:
    from datakeep.runner.sandbox import sandbox_status

    if not sandbox_status()[0]:
        pytest.skip(f"no mount namespace here: {sandbox_status()[1]}")
    make_bucket("exp-bucket")
    s3_client.put_object(Bucket="exp-bucket", Key="numbers.csv", Body=b"4,5,6\n")
    out = cli(
        "experiments", "run", "singlenode", "--name", "remote-ex", "--projectId", "prj",
        "--container", "img", "--machineType", "K80",
        "--command", "cat /data/numbers/numbers.csv && echo EPOCHS=$EPOCHS",
        "--experimentEnv", '{"EPOCHS": 3}',
        "--datasetUri", "s3://exp-bucket/numbers.csv", "--datasetName", "numbers",
        "--datasetAwsAccessKeyId", s3.access_key, "--datasetAwsSecretAccessKey", s3.secret_key,
        "--datasetAwsEndpoint", s3.endpoint_url,
    )  # fmt: skip
    assert "4,5,6" in out, out
    assert "EPOCHS=3" in out, out
    assert "remote-ex" in cli("experiments", "list")
    assert "numbers" in cli("experiments", "datasets", "list")  # the team's shared copy


def test_remote_downloads_come_straight_from_s3(
    remote: RunningServer,
    s3: S3Server,
    make_bucket: MakeBucket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datakeep.client import connect

    client = connect()
    ds = _s3_dataset(client, s3, make_bucket, "direct")
    data = _data(tmp_path / "data")
    version = client.versions.create(ds.id, source_paths=[f"{data}/"])
    seen: list[str] = []
    original = client.session.transfers.stream

    def spy(method: str, url: str, **kwargs: object) -> object:
        seen.append(url)
        return original(method, url, **kwargs)

    monkeypatch.setattr(client.session.transfers, "stream", spy)
    assert client.files.get(version.ref, target_path=tmp_path / "out") == 4
    assert _tree(tmp_path / "out") == _tree(data)
    # Packed small files too come by ranged GETs of the pack on S3: the server sends no bytes.
    assert seen
    assert all(url.startswith(s3.endpoint_url) for url in seen), seen
    client.close()


def _more_commands(cli: Cli, data: Path) -> list[str]:
    """The commands the story does not use, in one scripted session."""
    outputs = []
    ds = re.search(r"ds[0-9a-z]{13}", cli("datasets", "create", "--name", "more", "--description", "d1"))
    assert ds
    d = ds.group(0)
    outputs.append(cli("datasets", "update", f"--id={d}", "--name=more2", "--description=d2"))
    v1 = re.search(
        r":([0-9a-z]{7})", cli("datasets", "versions", "create", f"--id={d}", f"--source-path={data}/")
    )
    assert v1
    made = cli("datasets", "versions", "create", f"--id={d}", "--message=draft")
    v2 = re.search(r":([0-9a-z]{7})", made)
    assert v2
    outputs.append(made)
    outputs.append(cli("datasets", "versions", "update", f"--id={d}:{v2.group(1)}", "--message=second"))
    outputs.append(
        cli(
            "datasets",
            "files",
            "put",
            f"--id={d}:{v2.group(1)}",
            f"--source-path={data}/",
            "--target-path=/x",
        )
    )
    outputs.append(cli("datasets", "files", "delete", f"--id={d}:{v2.group(1)}", "--path=/x/a.txt"))
    outputs.append(cli("datasets", "versions", "list", f"--id={d}", "--isCommitted", "false"))
    outputs.append(cli("datasets", "versions", "commit", f"--id={d}:{v2.group(1)}"))
    outputs.append(cli("datasets", "versions", "diff", f"--id={d}:{v1.group(1)}", f"--to={d}:{v2.group(1)}"))
    outputs.append(
        cli("datasets", "versions", "diff", f"--id={d}:{v1.group(1)}", f"--to={d}:latest", "--json")
    )
    outputs.append(cli("datasets", "tags", "set", f"--id={d}:{v1.group(1)}", "--name=old"))
    outputs.append(cli("datasets", "tags", "delete", f"--id={d}:old"))
    outputs.append(cli("datasets", "versions", "delete", f"--id={d}:{v1.group(1)}"))
    outputs.append(cli("datasets", "details", f"--id={d}", "--json"))
    outputs.append(cli("datasets", "delete", f"--id={d}"))
    outputs.append(cli("datasets", "list"))
    return outputs


def test_every_dataset_command_prints_the_same_in_both_modes(
    cli: Cli, tmp_path: Path, dk_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data(tmp_path / "data")
    # Times differ, and so does where each side's default provider keeps its bytes.
    blank = re.compile(r'"(created|modified|committed|path)": "[^"]*"')

    def normalized(outputs: list[str]) -> list[str]:
        return [blank.sub(r'"\1": "<t>"', IDS.sub("<id>", o)) for o in outputs]

    embedded = _more_commands(cli, data)
    monkeypatch.setenv("DATAKEEP_API_URL", dk_server.url)
    monkeypatch.setenv("DATAKEEP_API_KEY", dk_server.new_key())
    remote = _more_commands(cli, data)
    assert normalized(remote) == normalized(embedded)


def test_several_server_processes_need_a_shared_key(cli: Cli) -> None:
    assert "DATAKEEP_SERVER_KEY" in cli("server", "--workers", "2", ok=False)


def test_server_says_in_one_line_why_it_cannot_start(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        err = cli("server", "--port", port, ok=False)
    assert f"Cannot listen on 127.0.0.1:{port}" in err
    assert "another --port" in err
    assert "Pass --host" in cli("server", "--host", "no-such-host.invalid", ok=False)
    monkeypatch.setenv("DATAKEEP_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    err = cli("server", "--port", "0", ok=False)
    assert "DATAKEEP_DATABASE_URL" in err
    assert "listening" not in err  # nothing claimed before the catalog opened


def test_remote_transfers_show_progress_when_asked(
    remote: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Long uploads and downloads say how far along they are, as embedded mode does on a terminal."""
    import datakeep

    data = _data(tmp_path / "data")
    client = datakeep.connect(progress=True)
    ds = client.datasets.create(name="progress")
    capsys.readouterr()
    version = client.versions.create(ds.id, source_paths=[f"{data}/"])
    assert "Uploading files" in capsys.readouterr().err
    client.files.get(version.ref, target_path=tmp_path / "out")
    err = capsys.readouterr().err
    assert "Downloading files" in err
    assert "4/4 files" in err
    client.close()
    quiet = datakeep.connect(progress=False)
    quiet.files.get(version.ref, target_path=tmp_path / "out2")
    assert capsys.readouterr().err == ""
    quiet.close()


def test_remote_large_files_go_up_in_parts_straight_to_s3(
    remote: RunningServer,
    s3: S3Server,
    make_bucket: MakeBucket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Multipart: the server creates and completes the upload, each part is a presigned PUT to S3."""
    import os

    import datakeep
    from datakeep.remote import files as remote_files

    # Smaller parts than in use (S3's smallest is 5 MiB), so that a test file needs three.
    monkeypatch.setattr(remote_files, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    monkeypatch.setattr(remote_files, "PART_SIZE", 5 * 1024 * 1024)
    client = datakeep.connect(progress=False)
    ds = _s3_dataset(client, s3, make_bucket, "parts")
    data = tmp_path / "data"
    data.mkdir()
    big = os.urandom(11 * 1024 * 1024 + 7)
    (data / "big.bin").write_bytes(big)
    sent: list[str] = []
    client.session.transfers.event_hooks["request"].append(
        lambda request: sent.append(f"{request.method} {request.url}")
    )
    version = client.versions.create(ds.id, source_paths=[f"{data}/"])
    parts = [s for s in sent if s.startswith(f"PUT {s3.endpoint_url}/parts/") and "partNumber=" in s]
    assert len(parts) == 3, sent
    assert not any(s.startswith(f"PUT {remote.url}") for s in sent)  # no byte through the server
    client.files.get(version.ref, target_path=tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == big
    client.close()


def test_remote_version_of_many_files_names_them_in_several_requests(
    remote: RunningServer, tmp_path: Path
) -> None:
    """12,000 files that share content: one upload, and a list of files to link longer than the
    1 MiB the server accepts in one request body."""
    import datakeep

    data = tmp_path / "many"
    data.mkdir()
    for i in range(12_000):
        (data / f"sample-{i:06d}-of-a-dataset-of-many-files.txt").write_text("same\n")
    client = datakeep.connect(progress=False)
    ds = client.datasets.create(name="many")
    version = client.versions.create(ds.id, source_paths=[f"{data}/"])
    assert version.is_committed
    assert version.file_count == 12_000
    listed = client.files.list(version.ref, recursive=True)
    assert len(listed) == 12_000
    client.close()


def test_remote_transfer_to_an_unreachable_provider_says_where(
    remote: RunningServer, s3: S3Server, tmp_path: Path
) -> None:
    """Bytes go straight to the provider, so the client must say which endpoint it could not reach."""
    import socket

    import datakeep
    from datakeep.errors import StorageError

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    client = datakeep.connect(progress=False)
    sp = client.storage_providers.create(
        name="gone",
        type="s3",
        config={
            "bucket": "b",
            "accessKey": s3.access_key,
            "secretAccessKey": s3.secret_key,
            "endpoint": dead,
        },
    )
    ds = client.datasets.create(name="gone", storage_provider_id=sp.id)
    with pytest.raises(StorageError) as raised:
        client.versions.create(ds.id, source_paths=[f"{_data(tmp_path / 'data')}/"])
    assert f"cannot reach {dead}" in str(raised.value)
    assert "X-Amz-Signature" not in str(raised.value)  # the URL's signature is not shown
    client.close()


def test_remote_downloads_of_many_small_files_share_ranged_gets(
    remote: RunningServer,
    s3: S3Server,
    make_bucket: MakeBucket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Small files are packed together on the provider; fetching them one request each would cost
    a round trip per file, so neighbours in a pack come in one ranged GET straight from S3."""
    import datakeep

    client = datakeep.connect(progress=False)
    ds = _s3_dataset(client, s3, make_bucket, "small")
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for i in range(300):
        (data / ("sub" if i % 2 else "") / f"f{i:03d}.txt").write_text(f"small file {i}\n" * (i % 7 + 1))
    (data / "empty.txt").write_bytes(b"")
    version = client.versions.create(ds.id, source_paths=[f"{data}/"])
    seen: list[str] = []
    original = client.session.transfers.stream

    def spy(method: str, url: str, **kwargs: object) -> object:
        seen.append(url)
        return original(method, url, **kwargs)

    monkeypatch.setattr(client.session.transfers, "stream", spy)
    assert client.files.get(version.ref, target_path=tmp_path / "out") == 301
    assert _tree(tmp_path / "out") == _tree(data)
    assert 0 < len(seen) <= 5, len(seen)  # 301 files, a handful of GETs
    assert all(url.startswith(s3.endpoint_url) for url in seen)
    client.close()
