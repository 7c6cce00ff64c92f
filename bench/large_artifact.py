"""Large artifacts: a 1 GiB file up and down through nginx, sha256 checked, with MB/s and the MLflow
server's memory during each transfer.

The file is generated in chunks (never whole in memory) into a temporary directory. Each run logs it
with `MlflowClient.log_artifact` through nginx (basic auth) and downloads it with
`mlflow.artifacts.download_artifacts`, once per mode:
  default    a stock client, nothing set: the server advertises presigned transfers (server-info), so
             the download and (from 500 MiB) the upload go straight between the client and S3 (moto
             here) with URLs the server signs, past nginx and MLflow
  proxy      the variables of `mlflow-aws env --proxy-artifacts`: one streamed PUT up, one GET down,
             through nginx and MLflow, which spools each file in its temporary directory on the way
--split-download adds a raw GET of the proxy-mode artifact: the time to its first byte (MLflow
fetching from S3) apart from the streaming MB/s (MLflow -> nginx -> client); --via direct skips nginx.
The summed PSS and RSS of MLflow's processes (not moto's, which holds the object) are sampled every
100 ms; growth = peak during the transfer - median of the second before it. MLflow's TMPDIR is a
directory of its own here, whose size is sampled too: the host disk a transfer spools. Target: both
succeed and grow by less than 100 MB (streaming, not buffering). MB = 10^6 bytes.

    .venv/bin/python -m bench.large_artifact [--runs 5] [--size-mib 1024] [--modes default proxy]
        [--variant buffered] [--via direct] [--split-download]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.common import MIB, MemorySampler, log, print_machine, print_table, summarize, verdict
from bench.host_install import host_venv
from bench.stack import HOST_ENVIRONMENT, NGINX_VARIANTS, bench_stack
from client import envfile
from tests.support.loopback import LoopbackStack

T = TypeVar("T")
TARGET_GROWTH_MB = 100.0
CLIENT_TIMEOUT_SECONDS = 3600  # as nginx's proxy_read_timeout
CHUNK = 8 * MIB
MODES: dict[str, dict[str, str | None]] = {
    "default": {name: None for name, _ in envfile.PROXY_ARTIFACTS},
    "proxy": dict(envfile.PROXY_ARTIFACTS),
}


@dataclass(frozen=True)
class Transfer:
    seconds: float
    pss_growth_mb: float
    rss_growth_mb: float
    peak_pss_mb: float
    spooled_mb: float = 0.0  # the most MLflow's temporary directory held during the transfer


def write_random_file(path: Path, size: int, seed: int = 0) -> str:
    """`size` pseudo-random bytes written in chunks; returns their sha256."""
    generator = random.Random(seed)
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        left = size
        while left > 0:
            chunk = generator.randbytes(min(CHUNK, left))
            digest.update(chunk)
            handle.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def megabytes_per_second(size: int, seconds: float) -> float:
    return size / 1e6 / seconds if seconds > 0 else float("inf")


@contextmanager
def environment(values: Mapping[str, str | None]) -> Iterator[None]:
    """`values` set (None: unset) for the block."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def directory_bytes(path: Path) -> int:
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):  # removed while walking
                total += os.stat(os.path.join(root, name)).st_size
    return total


class SpoolSampler:
    """The largest size of `path` (MLflow's TMPDIR) seen every 100 ms while open."""

    def __init__(self, path: Path, limit: float = 3600.0) -> None:
        self.path, self.limit, self.peak = path, limit, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.peak = max(self.peak, directory_bytes(self.path))
            self._stop.wait(0.1)

    def __enter__(self) -> SpoolSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def timed_transfer(stack: LoopbackStack, action: Callable[[], T], spool: Path | None = None) -> tuple[Transfer, T]:
    """Runs `action` while sampling MLflow's memory (and its spool directory); returns the figures and
    what `action` returned."""
    with MemorySampler(stack.mlflow_process_ids, interval=0.1, limit=3600) as sampler, \
            SpoolSampler(spool or Path("/nonexistent")) as spooled:
        time.sleep(1.0)
        started = time.monotonic()
        returned = action()
        seconds = time.monotonic() - started
        time.sleep(0.3)
    before_pss = statistics.median(pss for at, pss, _ in sampler.samples if at < started)
    before_rss = statistics.median(rss for at, _, rss in sampler.samples if at < started)
    peak_pss = max(sampler.pss(started))
    peak_rss = max(sampler.rss(started))
    to_mb = MIB / 1e6
    return Transfer(seconds, (peak_pss - before_pss) * to_mb, (peak_rss - before_rss) * to_mb,
                    peak_pss * to_mb, spooled.peak / 1e6), returned


def raw_get(url: str, auth: tuple[str, str]) -> tuple[float, float, str]:
    """GET `url` streamed, nothing written: (seconds to the first byte, seconds of streaming, sha256)."""
    import requests

    digest = hashlib.sha256()
    with requests.Session() as http:
        http.trust_env = False
        started = time.monotonic()
        with http.get(url, auth=auth, stream=True, timeout=3600) as response:
            response.raise_for_status()
            chunks = response.iter_content(MIB)
            first = next(chunks, b"")
            first_byte = time.monotonic()
            digest.update(first)
            for chunk in chunks:
                digest.update(chunk)
        return first_byte - started, time.monotonic() - first_byte, digest.hexdigest()


def measure(venv: Path | None, *, runs: int, size: int, modes: list[str], memory_mib: int, variant: str,
            via: str, split_download: bool) -> dict[tuple[str, str], list[Transfer]]:
    import mlflow
    from mlflow.tracking import MlflowClient

    results: dict[tuple[str, str], list[Transfer]] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-artifact-"))
    try:
        source = work / "blob.bin"
        log(f"writing {size / MIB:.0f} MiB to {source}")
        expected = write_random_file(source, size)
        spool = work / "mlflow-tmp"
        spool.mkdir()
        with bench_stack(venv, variant=variant, start=False, instance_memory_mib=memory_mib) as stack, environment({
            "MLFLOW_TRACKING_URI": base_uri(stack, via),
            "MLFLOW_TRACKING_USERNAME": stack.admin_username,
            "MLFLOW_TRACKING_PASSWORD": stack.admin_password,
            "NO_PROXY": "127.0.0.1,localhost",
            # A download's first byte waits for MLflow to fetch the whole object from moto, slower than S3
            # (minutes per GiB on a busy machine); the client's default 120 s would give up and retry.
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(CLIENT_TIMEOUT_SECONDS),
        }):
            stack.prepare()
            stack.start_postgres()
            stack.start_mlflow({**HOST_ENVIRONMENT, "TMPDIR": str(spool)})
            stack.start_nginx()
            mlflow.set_tracking_uri(base_uri(stack, via))
            client = MlflowClient(base_uri(stack, via))
            experiment_id = client.create_experiment("bench-large-artifact")
            run = client.create_run(experiment_id)
            run_id = run.info.run_id
            artifact_root = run.info.artifact_uri.removeprefix("mlflow-artifacts:/").strip("/")
            s3 = stack.s3_client()
            target = work / "download"
            for repetition in range(runs):
                for mode in modes:
                    artifact_dir = f"r{repetition}-{mode}"
                    upload = functools.partial(client.log_artifact, run_id, str(source), artifact_dir)
                    download = functools.partial(mlflow.artifacts.download_artifacts, run_id=run_id,
                                                 artifact_path=f"{artifact_dir}/{source.name}", dst_path=str(target))
                    with environment(MODES[mode]):
                        up, _ = timed_transfer(stack, upload, spool)
                        down, downloaded = timed_transfer(stack, download, spool)
                    if sha256_of(Path(str(downloaded))) != expected:
                        raise RuntimeError(f"{mode}: the downloaded artifact's sha256 differs")
                    if split_download and mode == "proxy":
                        url = (f"{base_uri(stack, via)}/api/2.0/mlflow-artifacts/artifacts/{artifact_root}/"
                               f"{artifact_dir}/{source.name}")
                        auth = (stack.admin_username, stack.admin_password)
                        split, (first_byte, streaming, digest) = timed_transfer(
                            stack, functools.partial(raw_get, url, auth))
                        if digest != expected:
                            raise RuntimeError("raw GET: the artifact's sha256 differs")
                        results.setdefault(("raw GET", "to first byte"), []).append(
                            Transfer(first_byte, split.pss_growth_mb, split.rss_growth_mb, split.peak_pss_mb))
                        results.setdefault(("raw GET", "streaming"), []).append(
                            Transfer(streaming, split.pss_growth_mb, split.rss_growth_mb, split.peak_pss_mb))
                        log(f"raw GET: first byte after {first_byte:.1f} s (the server fetching from S3), then "
                            f"{megabytes_per_second(size, streaming):.0f} MB/s streaming")
                    shutil.rmtree(target)
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket):
                        for item in page.get("Contents", []):
                            s3.delete_object(Bucket=stack.bucket, Key=item["Key"])
                    results.setdefault((mode, "upload"), []).append(up)
                    results.setdefault((mode, "download"), []).append(down)
                    log(f"run {repetition + 1}/{runs} {mode}: up {megabytes_per_second(size, up.seconds):.0f} MB/s "
                        f"(+{up.pss_growth_mb:.0f} MB PSS), down {megabytes_per_second(size, down.seconds):.0f} MB/s "
                        f"(+{down.pss_growth_mb:.0f} MB PSS); spooled {up.spooled_mb:.0f} / {down.spooled_mb:.0f} MB; "
                        "sha256 ok")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def base_uri(stack: LoopbackStack, via: str) -> str:
    return stack.tracking_uri if via == "nginx" else stack.direct_uri


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=sorted(MODES, reverse=True))
    parser.add_argument("--memory-mib", type=int, default=1024, help="instance memory the settings are rendered for")
    parser.add_argument("--variant", choices=sorted(NGINX_VARIANTS), default="rendered")
    parser.add_argument("--via", choices=["nginx", "direct"], default="nginx", help="direct: MLflow's own port")
    parser.add_argument("--split-download", action="store_true",
                        help="also GET the artifact raw (proxy mode): time to first byte, then streaming MB/s")
    args = parser.parse_args(argv)

    print_machine()
    size = args.size_mib * MIB
    results = measure(host_venv(), runs=args.runs, size=size, modes=args.modes, memory_mib=args.memory_mib,
                      variant=args.variant, via=args.via, split_download=args.split_download)
    rows: list[list[object]] = []
    for (mode, direction), transfers in sorted(results.items()):
        growth = max(t.pss_growth_mb for t in transfers)
        rate = "" if direction == "to first byte" else summarize(
            megabytes_per_second(size, t.seconds) for t in transfers).show(0)
        rows.append([mode, direction, summarize(t.seconds for t in transfers).show(1), rate,
                     summarize(t.pss_growth_mb for t in transfers).show(0), f"{growth:.0f}",
                     summarize(t.rss_growth_mb for t in transfers).show(0),
                     f"{max(t.peak_pss_mb for t in transfers):.0f}", f"{max(t.spooled_mb for t in transfers):.0f}",
                     f"< {TARGET_GROWTH_MB:.0f}",
                     verdict(growth < TARGET_GROWTH_MB)])
    print_table(f"{args.size_mib} MiB artifact via {args.via} ({args.memory_mib} MiB settings, nginx variant "
                f"{args.variant}; sha256 checked every run)",
                ["mode", "direction", "seconds", "MB/s", "MLflow PSS growth MB", "worst growth", "RSS growth MB",
                 "peak PSS MB", "host disk spooled MB", "target", "result"], rows)


if __name__ == "__main__":
    main()
