"""Storage benchmark: datakeep against cp, DVC, the aws CLI, s5cmd and rclone, on the same data and the
same S3 server, printing one table and the target ratios of issue 3.

    bench/run.sh                 # full run: 20,000 small files, 8 x 128 MiB
    bench/run.sh --quick         # 2,000 small files, 2 x 32 MiB: a minute or two
    bench/run.sh --memory        # adds the peak-memory checks: 1 file of 4 GiB, 200,000 files

The S3 server is ``rclone serve s3`` (fast, local disk behind it) unless ``--server moto``; its own
ceiling (small-object requests per second, large-object MB/s, measured with boto3 threads) is
printed with the results, so a tool limited by the server shows up as such.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import workloads

ACCESS_KEY = "benchaccesskey"
SECRET_KEY = "benchsecretkey0123456789"
REGION = "us-east-1"
BUCKET = "bench"


@dataclass
class Result:
    workload: str
    operation: str
    tool: str
    target: str
    seconds: float
    files: int
    size: int
    maxrss_kib: int
    note: str = ""
    #: datakeep only: the operation's own time, without interpreter start-up, imports and catalog set-up.
    inproc: float | None = None


def _du(path: Path) -> tuple[int, int]:
    files = size = 0
    for p in path.rglob("*"):
        if p.is_file() and p.name != ".complete":
            files += 1
            size += p.stat().st_size
    return files, size


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_timed(
    cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, int, str]:
    """Wall time and peak RSS (KiB, from wait4) of one command; raises with its stderr if it fails."""
    # A child's ru_maxrss includes what it had before exec, that is, this (large) parent's pages: so
    # measure through /usr/bin/time, a small process whose own children start small.
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss,
    ):
        wrapped = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd] if shutil.which("time") else cmd
        start = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd[:4])}... failed ({proc.returncode}): {err.read().decode()[-2000:]}"
            )
        measured = rss.read().strip().splitlines()
        peak = int(measured[-1]) if measured and measured[-1].isdigit() else int(usage.ru_maxrss)
        return seconds, peak, stdout


class Server:
    """An S3 endpoint on 127.0.0.1: rclone serve s3 over a local directory, or moto."""

    def __init__(self, kind: str, peers: Path, work: Path) -> None:
        self.kind = kind
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.moto: Any = None
        if kind == "rclone":
            root = work / "s3-root"
            shutil.rmtree(root, ignore_errors=True)
            (root / BUCKET).mkdir(parents=True)
            self.proc = subprocess.Popen(
                [
                    str(peers / "bin" / "rclone"),
                    "serve",
                    "s3",
                    "--addr",
                    f"127.0.0.1:{self.port}",
                    "--auth-key",
                    f"{ACCESS_KEY},{SECRET_KEY}",
                    "--config",
                    "/dev/null",
                    str(root),
                ],
                stdout=subprocess.DEVNULL,
                stderr=open(work / "rclone-serve.log", "wb"),  # noqa: SIM115 - lives as long as the server
            )
        else:
            from moto.server import ThreadedMotoServer

            self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self.moto.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        if kind == "moto":
            self.client().create_bucket(Bucket=BUCKET)

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(max_pool_connections=64, s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.moto is not None:
            self.moto.stop()

    def ceiling(self, small: int = 2000, large_mib: int = 256) -> dict[str, float]:
        """What the server itself can do, measured with plain boto3 threads (32 at once)."""
        from boto3.s3.transfer import TransferConfig

        client = self.client()
        body = os.urandom(8192)
        keys = [f"ceiling/small/{i}" for i in range(small)]
        with ThreadPoolExecutor(32) as pool:
            start = time.perf_counter()
            list(pool.map(lambda k: client.put_object(Bucket=BUCKET, Key=k, Body=body), keys))
            put_rate = small / (time.perf_counter() - start)
            start = time.perf_counter()
            list(pool.map(lambda k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read(), keys))
            get_rate = small / (time.perf_counter() - start)
        config = TransferConfig(multipart_chunksize=16 * 2**20, max_concurrency=16)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "large"
            with open(path, "wb") as f:
                for _ in range(large_mib // 8):
                    f.write(os.urandom(8 * 2**20))
            start = time.perf_counter()
            client.upload_file(str(path), BUCKET, "ceiling/large", Config=config)
            up = large_mib / (time.perf_counter() - start)
            start = time.perf_counter()
            client.download_file(BUCKET, "ceiling/large", str(path) + ".back", Config=config)
            down = large_mib / (time.perf_counter() - start)
        return {
            "small_put_per_s": put_rate,
            "small_get_per_s": get_rate,
            "large_put_mib_s": up,
            "large_get_mib_s": down,
        }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work
        self.peers: Path = args.peers
        self.results: list[Result] = []
        self.server: Server | None = None
        self.load_start = " ".join(f"{x:.1f}" for x in os.getloadavg())

    # HELPERS

    def record(
        self,
        workload: str,
        op: str,
        tool: str,
        target: str,
        seconds: float,
        data: Path,
        rss: int,
        note: str = "",
        inproc: float | None = None,
    ) -> None:
        files, size = _du(data)
        result = Result(workload, op, tool, target, seconds, files, size, rss, note, inproc)
        self.results.append(result)
        print(
            f"  {workload:<12} {op:<12} {tool:<10} {target:<6} {seconds:8.2f} s  {size / 2**20 / max(seconds, 1e-9):8.1f} MiB/s"
            f"  {files / max(seconds, 1e-9):9.0f} files/s  {rss / 1024:7.0f} MiB",
            flush=True,
        )

    def fresh(self, name: str) -> Path:
        path = self.work / "runs" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def s3_env(self) -> dict[str, str]:
        assert self.server is not None
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE=str(self.work / "aws-config"),
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
            AWS_EC2_METADATA_DISABLED="true",
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=ACCESS_KEY,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET_KEY,
            RCLONE_CONFIG_BENCH_ENDPOINT=self.server.url,
            RCLONE_CONFIG_BENCH_REGION=REGION,
            RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
            S3_ENDPOINT_URL=self.server.url,
            PATH=f"{self.peers / 'bin'}:{os.environ.get('PATH', '')}",
        )
        (self.work / "aws-config").write_text(
            "[default]\nregion = us-east-1\ns3 =\n  max_concurrent_requests = 32\n  addressing_style = path\n"
        )
        return env

    def provider_json(self, target: str, prefix: str) -> str:
        if target == "local":
            return json.dumps({"type": "local", "path": str(self.fresh(f"store-{prefix}"))})
        assert self.server is not None
        return json.dumps(
            {
                "type": "s3",
                "bucket": BUCKET,
                "accessKey": ACCESS_KEY,
                "secretAccessKey": SECRET_KEY,
                "endpoint": self.server.url,
                "region": REGION,
                "prefix": prefix,
            }
        )

    def dk(self, op: str, home: Path, provider: str, **kw: str) -> tuple[float, int, dict[str, Any]]:
        cmd = [sys.executable, "-m", "bench.dk", op, "--home", str(home), "--provider", provider]
        for k, v in kw.items():
            cmd += [f"--{k}", v]
        seconds, rss, out = run_timed(cmd)
        return seconds, rss, json.loads(out)

    # WORKLOADS

    def datakeep(self, workload: str, src: Path, target: str, *, incremental: bool) -> None:
        home = self.fresh(f"dk-home-{workload}-{target}")
        provider = self.provider_json(target, f"dk-{workload}")
        data = src
        if incremental:
            data = self.work / "runs" / f"inc-{target}"
            shutil.rmtree(data, ignore_errors=True)
            subprocess.run(["cp", "-a", str(src), str(data)], check=True)
        seconds, rss, out = self.dk("create", home, provider, src=str(data))
        self.record(
            workload,
            "create",
            "datakeep",
            target,
            seconds,
            data,
            rss,
            f"in-process {out['op_seconds']:.2f} s",
            out["op_seconds"],
        )
        dest = self.fresh(f"dk-get-{workload}-{target}")
        seconds, rss, got = self.dk("get", home, provider, root=out["root"], dest=str(dest))
        self.record(
            workload,
            "download",
            "datakeep",
            target,
            seconds,
            dest,
            rss,
            f"in-process {got['op_seconds']:.2f} s",
            got["op_seconds"],
        )
        if incremental:
            workloads.mutate(data)
            seconds, rss, inc = self.dk("create", home, provider, src=str(data), hint=out["root"])
            note = f"1% modified + 1% added; in-process {inc['op_seconds']:.2f} s"
            self.record(
                workload, "incremental", "datakeep", target, seconds, data, rss, note, inc["op_seconds"]
            )
        shutil.rmtree(dest, ignore_errors=True)

    def cp(self, workload: str, src: Path) -> None:
        dest = self.work / "runs" / f"cp-{workload}"
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        seconds, rss, _ = run_timed(["cp", "-r", str(src), str(dest)])
        self.record(workload, "create", "cp -r", "local", seconds, dest, rss, "baseline")
        shutil.rmtree(dest, ignore_errors=True)

    def peers_s3(self, workload: str, src: Path, only: list[str] | None = None) -> None:
        env = self.s3_env()
        url = self.server.url if self.server else ""
        bin_ = self.peers / "bin"
        tools: dict[str, tuple[list[str], list[str]]] = {
            "aws": (
                [
                    str(bin_ / "aws"),
                    "--endpoint-url",
                    url,
                    "s3",
                    "cp",
                    "--recursive",
                    "--quiet",
                    str(src),
                    f"s3://{BUCKET}/aws-{workload}/",
                ],
                [
                    str(bin_ / "aws"),
                    "--endpoint-url",
                    url,
                    "s3",
                    "cp",
                    "--recursive",
                    "--quiet",
                    f"s3://{BUCKET}/aws-{workload}/",
                    "{dest}",
                ],
            ),
            "s5cmd": (
                [
                    str(bin_ / "s5cmd"),
                    "--endpoint-url",
                    url,
                    "cp",
                    f"{src}/*",
                    f"s3://{BUCKET}/s5-{workload}/",
                ],
                [
                    str(bin_ / "s5cmd"),
                    "--endpoint-url",
                    url,
                    "cp",
                    f"s3://{BUCKET}/s5-{workload}/*",
                    "{dest}/",
                ],
            ),
            "rclone": (
                [
                    str(bin_ / "rclone"),
                    "copy",
                    "--config",
                    "/dev/null",
                    "--transfers",
                    "32",
                    "--checkers",
                    "32",
                    str(src),
                    f"bench:{BUCKET}/rc-{workload}",
                ],
                [
                    str(bin_ / "rclone"),
                    "copy",
                    "--config",
                    "/dev/null",
                    "--transfers",
                    "32",
                    "--checkers",
                    "32",
                    f"bench:{BUCKET}/rc-{workload}",
                    "{dest}",
                ],
            ),
        }
        for tool, (up, down) in tools.items():
            if (self.args.tools and tool not in self.args.tools) or (only is not None and tool not in only):
                continue
            try:
                seconds, rss, _ = run_timed(up, env=env)
                self.record(workload, "create", tool, "s3", seconds, src, rss, "upload")
                dest = self.fresh(f"{tool}-get-{workload}")
                seconds, rss, _ = run_timed([a.replace("{dest}", str(dest)) for a in down], env=env)
                self.record(workload, "download", tool, "s3", seconds, dest, rss)
                shutil.rmtree(dest, ignore_errors=True)
            except (RuntimeError, FileNotFoundError) as exc:
                print(f"  {tool}: failed: {exc}", flush=True)

    def dvc(self, workload: str, src: Path, target: str) -> None:
        if self.args.tools and "dvc" not in self.args.tools:
            return
        env = self.s3_env()
        dvc = str(self.peers / "bin" / "dvc")
        ws = self.fresh(f"dvc-ws-{workload}-{target}")
        remote = (
            f"s3://{BUCKET}/dvc-{workload}" if target == "s3" else str(self.fresh(f"dvc-remote-{workload}"))
        )
        try:
            run_timed([dvc, "init", "--no-scm", "-q"], env=env, cwd=ws)
            run_timed([dvc, "remote", "add", "-d", "store", remote], env=env, cwd=ws)
            if target == "s3":
                run_timed(
                    [dvc, "remote", "modify", "store", "endpointurl", env["S3_ENDPOINT_URL"]], env=env, cwd=ws
                )
            subprocess.run(["cp", "-a", str(src), str(ws / "data")], check=True)
            add_s, add_rss, _ = run_timed([dvc, "add", "-q", "data"], env=env, cwd=ws)
            push_s, push_rss, _ = run_timed([dvc, "push", "-q"], env=env, cwd=ws)
            self.record(
                workload,
                "create",
                "dvc",
                target,
                add_s + push_s,
                ws / "data",
                max(add_rss, push_rss),
                f"add {add_s:.1f} s + push {push_s:.1f} s",
            )
            fresh = self.fresh(f"dvc-pull-{workload}-{target}")
            shutil.copytree(ws / ".dvc", fresh / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
            shutil.copy(ws / "data.dvc", fresh / "data.dvc")
            seconds, rss, _ = run_timed([dvc, "pull", "-q"], env=env, cwd=fresh)
            self.record(workload, "download", "dvc", target, seconds, fresh / "data", rss, "pull")
        except (RuntimeError, FileNotFoundError) as exc:
            print(f"  dvc: failed: {exc}", flush=True)

    # THE RUN

    def run(self) -> None:
        a = self.args
        self.work.mkdir(parents=True, exist_ok=True)
        print(f"Generating workloads in {self.work} ...", flush=True)
        small = workloads.many_small(self.work / f"many-small-{a.small_files}", a.small_files)
        large = workloads.few_large(
            self.work / f"few-large-{a.large_files}x{a.large_mib}", a.large_files, a.large_mib * 2**20
        )
        targets = [t for t in ("local", "s3") if t in a.targets]
        ceiling: dict[str, float] = {}
        if "s3" in targets:
            self.server = Server(a.server, self.peers, self.work)
            print(f"Measuring the S3 server's own ceiling ({a.server} at {self.server.url}) ...", flush=True)
            ceiling = self.server.ceiling(
                small=min(2000, a.small_files), large_mib=min(256, a.large_files * a.large_mib)
            )
            print("  " + ", ".join(f"{k} {v:.0f}" for k, v in ceiling.items()), flush=True)
        try:
            print("Results (wall time of each whole command, peak RSS of its process):", flush=True)
            if a.memory_only:
                self.memory_checks(targets)
                targets = []
            if "local" in targets:
                self.cp("many-small", small)
                self.datakeep("many-small", small, "local", incremental=True)
                self.cp("few-large", large)
                self.datakeep("few-large", large, "local", incremental=False)
            if "s3" in targets:
                self.datakeep("many-small", small, "s3", incremental=True)
                self.peers_s3("many-small", small, a.small_tools)
                if "dvc" in a.small_tools:
                    self.dvc("many-small", small, "s3")
                self.datakeep("few-large", large, "s3", incremental=False)
                self.peers_s3("few-large", large)
            if a.memory:
                self.memory_checks(targets)
        finally:
            if self.server is not None:
                self.server.stop()
        self.report(ceiling)

    def memory_checks(self, targets: list[str]) -> None:
        """Peak memory must not grow with file size or file count: compare with the runs above."""
        one = workloads.few_large(self.work / "one-4GiB", 1, 4 * 2**30, seed=11)
        for target in targets:
            self.datakeep("1x4GiB", one, target, incremental=False)
        many = workloads.many_small(self.work / "many-small-200000", 200_000, seed=13)
        self.datakeep("200k-small", many, "local", incremental=False)

    def _best(self, workload: str, op: str, tools: tuple[str, ...], target: str = "s3") -> Result | None:
        found = [
            r
            for r in self.results
            if r.workload == workload and r.operation == op and r.tool in tools and r.target == target
        ]
        return min(found, key=lambda r: r.seconds) if found else None

    def report(self, ceiling: dict[str, float]) -> None:
        lines = [
            "",
            f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"date {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; load average at start {self.load_start}, "
            f"at end {' '.join(f'{x:.1f}' for x in os.getloadavg())} (other work on the machine shares its cores)",
            f"workloads: many-small {self.args.small_files} files of 1-16 KiB; few-large {self.args.large_files} x {self.args.large_mib} MiB",
        ]
        if ceiling:
            lines.append(
                f"S3 server ({self.args.server}) ceiling with boto3, 32 threads: {ceiling['small_put_per_s']:.0f} small PUT/s, "
                f"{ceiling['small_get_per_s']:.0f} small GET/s, {ceiling['large_put_mib_s']:.0f} MiB/s up, {ceiling['large_get_mib_s']:.0f} MiB/s down"
            )
        lines += [
            "",
            "| workload | operation | tool | target | seconds | MiB/s | files/s | peak RSS MiB | note |",
            "|---|---|---|---|---:|---:|---:|---:|---|",
        ]
        for r in self.results:
            lines.append(
                f"| {r.workload} | {r.operation} | {r.tool} | {r.target} | {r.seconds:.2f} | {r.size / 2**20 / max(r.seconds, 1e-9):.1f} | "
                f"{r.files / max(r.seconds, 1e-9):.0f} | {r.maxrss_kib / 1024:.0f} | {r.note} |"
            )
        lines += ["", "| target | measured | met |", "|---|---|---|"]

        def ratio(name: str, num: Result | None, den: Result | None, want: str, ok: float | None) -> None:
            if num is None or den is None or ok is None:
                lines.append(f"| {name} | not measured | - |")
                return
            value = num.seconds / den.seconds
            met = value <= ok if want == "<=" else value >= ok
            lines.append(
                f"| {name} | {value:.2f} ({num.tool} {num.seconds:.2f} s / {den.tool} {den.seconds:.2f} s) | {'yes' if met else 'NO'} |"
            )

        dk = ("datakeep",)
        peers = ("aws", "s5cmd", "rclone")
        ratio(
            "local create many-small / cp -r <= 2",
            self._best("many-small", "create", dk, "local"),
            self._best("many-small", "create", ("cp -r",), "local"),
            "<=",
            2,
        )
        ratio(
            "DVC add+push / datakeep create (many-small, S3) >= 5",
            self._best("many-small", "create", ("dvc",)),
            self._best("many-small", "create", dk),
            ">=",
            5,
        )
        ratio(
            "DVC pull / datakeep download (many-small, S3) >= 5",
            self._best("many-small", "download", ("dvc",)),
            self._best("many-small", "download", dk),
            ">=",
            5,
        )
        ratio(
            "datakeep / fastest peer, few-large upload <= 1",
            self._best("few-large", "create", dk),
            self._best("few-large", "create", peers),
            "<=",
            1,
        )
        ratio(
            "datakeep / fastest peer, few-large download <= 1",
            self._best("few-large", "download", dk),
            self._best("few-large", "download", peers),
            "<=",
            1,
        )
        ratio(
            "fastest peer / datakeep, many-small upload >= 10",
            self._best("many-small", "create", peers),
            self._best("many-small", "create", dk),
            ">=",
            10,
        )
        ratio(
            "fastest peer / datakeep, many-small download >= 10",
            self._best("many-small", "download", peers),
            self._best("many-small", "download", dk),
            ">=",
            10,
        )
        for target in ("local", "s3"):
            ratio(
                f"incremental / full create ({target}) <= 0.10",
                self._best("many-small", "incremental", dk, target),
                self._best("many-small", "create", dk, target),
                "<=",
                0.10,
            )
        for target in ("local", "s3"):
            inc, full = (
                self._best("many-small", "incremental", dk, target),
                self._best("many-small", "create", dk, target),
            )
            if inc and full and inc.inproc and full.inproc:
                value = inc.inproc / full.inproc
                lines.append(
                    f"| incremental / full create ({target}), operation time only <= 0.10 | {value:.2f} "
                    f"({inc.inproc:.2f} s / {full.inproc:.2f} s) | {'yes' if value <= 0.10 else 'NO'} |"
                )
        rss = [
            (r.workload, r.operation, r.target, r.maxrss_kib) for r in self.results if r.tool == "datakeep"
        ]
        if rss:
            peak = max(rss, key=lambda x: x[3])
            lines.append(
                f"| datakeep peak RSS over every run | {peak[3] / 1024:.0f} MiB ({peak[0]} {peak[1]} {peak[2]}) | see table |"
            )
        text = "\n".join(lines)
        print(text)
        if self.args.output:
            Path(self.args.output).write_text(text + "\n")


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2,000 small files and 2 x 32 MiB")
    parser.add_argument("--small-files", type=int, default=20_000)
    parser.add_argument("--large-files", type=int, default=8)
    parser.add_argument("--large-mib", type=int, default=128)
    parser.add_argument("--targets", default="local,s3", help="local, s3 or both (default)")
    parser.add_argument("--server", choices=["rclone", "moto"], default="rclone")
    parser.add_argument("--tools", default="", help="only these peers (aws,s5cmd,rclone,dvc); default all")
    parser.add_argument(
        "--small-tools",
        default="aws,s5cmd,rclone,dvc",
        help="peers run on many-small (the aws CLI takes about 10 minutes for 20,000 files here)",
    )
    parser.add_argument("--memory", action="store_true", help="also 1 file of 4 GiB and 200,000 files (slow)")
    parser.add_argument("--memory-only", action="store_true", help="only the peak-memory checks")
    parser.add_argument("--peers", type=Path, default=here / ".venv", help="venv holding the peer tools")
    parser.add_argument("--work", type=Path, default=here / ".work")
    parser.add_argument("--output", help="also write the report (markdown) to this file")
    args = parser.parse_args()
    if args.quick:
        args.small_files, args.large_files, args.large_mib = 2000, 2, 32
    args.targets = args.targets.split(",")
    args.tools = [t for t in args.tools.split(",") if t]
    args.small_tools = [t for t in args.small_tools.split(",") if t]
    Bench(args).run()


if __name__ == "__main__":
    main()
