"""The two measurements behind the engine's choices, kept so they can be re-run:

    python -m bench.choices digest                  # BLAKE3 vs SHA-256 (and others) on this CPU
    bench/.venv/bin/python -m bench.choices s3 URL  # boto3 vs obstore against an S3 endpoint

(obstore lives only in bench/.venv, which bench/run.sh installs.)
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ACCESS_KEY = "benchaccesskey"
SECRET_KEY = "benchsecretkey0123456789"


def _rate(fn: Callable[[], object], size: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return size / best / 2**20


def digest() -> None:
    import blake3

    big = os.urandom(256 * 2**20)
    small = [os.urandom(8192) for _ in range(20_000)]
    print("digest          256 MiB buffer     20,000 x 8 KiB")
    candidates: dict[str, tuple[Callable[[bytes], object], Callable[[bytes], object]]] = {
        "blake3 (1 thread)": (lambda b: blake3.blake3(b).hexdigest(), lambda b: blake3.blake3(b).hexdigest()),
        "blake3 (all cores)": (
            lambda b: blake3.blake3(b, max_threads=blake3.blake3.AUTO).hexdigest(),
            lambda b: blake3.blake3(b).hexdigest(),
        ),
        "sha256": (lambda b: hashlib.sha256(b).hexdigest(), lambda b: hashlib.sha256(b).hexdigest()),
        "sha1": (lambda b: hashlib.sha1(b).hexdigest(), lambda b: hashlib.sha1(b).hexdigest()),
        "md5": (lambda b: hashlib.md5(b).hexdigest(), lambda b: hashlib.md5(b).hexdigest()),
    }
    for name, (one, each) in candidates.items():
        large = _rate(lambda one=one: one(big), len(big))
        many = _rate(lambda each=each: [each(b) for b in small], 8192 * len(small))
        print(f"{name:<20} {large:8.0f} MiB/s   {many:8.0f} MiB/s")


def s3(url: str) -> None:
    import boto3
    import obstore
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    from obstore.store import S3Store

    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(
            max_pool_connections=64,
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    store = S3Store(
        "bench",
        endpoint=url,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    body = os.urandom(8192)
    n = 2000
    with ThreadPoolExecutor(32) as pool:
        start = time.perf_counter()
        list(pool.map(lambda i: client.put_object(Bucket="bench", Key=f"choice/b/{i}", Body=body), range(n)))
        boto_put = n / (time.perf_counter() - start)
        start = time.perf_counter()
        list(pool.map(lambda i: obstore.put(store, f"choice/o/{i}", body), range(n)))
        obs_put = n / (time.perf_counter() - start)
        start = time.perf_counter()
        list(
            pool.map(
                lambda i: client.get_object(Bucket="bench", Key=f"choice/b/{i}")["Body"].read(), range(n)
            )
        )
        boto_get = n / (time.perf_counter() - start)
        start = time.perf_counter()
        list(pool.map(lambda i: bytes(obstore.get(store, f"choice/o/{i}").bytes()), range(n)))
        obs_get = n / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "large"
        with open(path, "wb") as f:
            for _ in range(32):
                f.write(os.urandom(8 * 2**20))
        size = path.stat().st_size
        config = TransferConfig(multipart_chunksize=16 * 2**20, max_concurrency=8)
        start = time.perf_counter()
        client.upload_file(str(path), "bench", "choice/large-b", Config=config)
        boto_up = size / (time.perf_counter() - start) / 2**20
        start = time.perf_counter()
        client.download_file("bench", "choice/large-b", str(path) + ".b", Config=config)
        boto_down = size / (time.perf_counter() - start) / 2**20
        start = time.perf_counter()
        with open(path, "rb") as f:
            obstore.put(store, "choice/large-o", f, chunk_size=16 * 2**20, max_concurrency=8)
        obs_up = size / (time.perf_counter() - start) / 2**20
        start = time.perf_counter()
        with open(str(path) + ".o", "wb") as f:
            for chunk in obstore.get(store, "choice/large-o").stream(min_chunk_size=8 * 2**20):
                f.write(chunk)
        obs_down = size / (time.perf_counter() - start) / 2**20
    print("client    small PUT/s  small GET/s  256 MiB up MiB/s  256 MiB down MiB/s  (32 threads)")
    print(f"boto3     {boto_put:11.0f}  {boto_get:11.0f}  {boto_up:16.0f}  {boto_down:18.0f}")
    print(f"obstore   {obs_put:11.0f}  {obs_get:11.0f}  {obs_up:16.0f}  {obs_down:18.0f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["digest"]:
        digest()
    elif sys.argv[1:2] == ["s3"]:
        s3(sys.argv[2])
    else:
        print(__doc__)
