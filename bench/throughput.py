"""Throughput: log_metric and log_batch requests per second and latency, through nginx and direct.

Five ways to the same server processes and database, interleaved within each repetition, every client
thread with its own keep-alive session unless said otherwise:
  nginx         http://127.0.0.1:<nginx>, the rendered site, basic auth as the admin (what clients use)
  nginx-user    the same as a non-admin user with EDIT on the experiment (permission checks per request)
  direct        http://127.0.0.1:<mlflow port>, the same authenticated server without nginx
  direct-fresh  the same, a new connection per request (as nginx connects to MLflow: no upstream keep-alive)
  plain         the rendered ExecStart without its `--app-name` on another port (no authentication),
                a new connection per request
  unguarded     the rendered ExecStart with MLflow's own `--app-name basic-auth` instead of the server
                guard on another port, the same admin, a new connection per request
Each measurement also counts the CPU seconds the MLflow processes that served it used, per request: on a
busy machine a steadier figure of what a request costs the server than requests per second (PostgreSQL's
CPU, which a non-admin's permission queries also cost, is not in it).
nginx/direct-fresh is nginx's cost (target: >= 0.90, nginx costs at most 10%); nginx/direct compares with
a keep-alive client straight to MLflow (which uvicorn slows by ~40 ms a request when --workers > 1,
Kludex/uvicorn#3149); direct-fresh/unguarded is the server guard's cost (same run, guard on and off),
direct-fresh/plain basic-auth's and the guard's cost for the admin, nginx-user/nginx a non-admin's
permission checks, nginx/plain the whole front door. Each repetition is bounded by a request count and
a time; rps is the median (min, max) over repetitions, latencies pool them all. The client runs on the
same machine, so its CPU competes with the server's.

    .venv/bin/python -m bench.throughput [--runs 5] [--memory-mib 2048] [--variant rendered]
        [--targets nginx direct ...]
"""

from __future__ import annotations

import argparse
import math
import secrets
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds, log, print_machine, print_table, process_tree, ratio, summarize, verdict
from bench.host_install import host_venv
from bench.load import BATCH_METRICS, BODIES, Auth, LoadResult, create_editor, create_run, run_load
from bench.stack import NGINX_VARIANTS, PlainServer, bench_stack, rendered_workers

TARGET_NGINX_RATIO = 0.90
TARGET_USER_RATIO = 0.85  # a non-admin's requests/s against the admin's (issue 23)
TARGET_GUARD_COST = 0.03  # the server guard's share of an admin's request (issue 23)
THREADS = (1, 8)
TARGETS = ("nginx", "nginx-user", "direct", "direct-fresh", "unguarded", "plain")
TARGET_RATIO = ("nginx", "direct-fresh")
# (numerator, denominator, what the ratio shows); shown when both were measured.
RATIOS = [
    ("nginx", "direct-fresh", "nginx's cost"),
    ("nginx", "direct", "vs a keep-alive client on MLflow's port"),
    ("direct-fresh", "unguarded", "the server guard's cost, admin"),
    ("direct-fresh", "plain", "basic-auth's and the guard's cost, admin"),
    ("nginx-user", "nginx", "a non-admin's permission checks"),
    ("nginx", "plain", "the front door"),
]


@dataclass(frozen=True)
class Target:
    uri: str
    auth: Auth
    pids: Callable[[], list[int]]  # the MLflow processes that serve it
    fresh_connections: bool = False


@dataclass
class Measured:
    load: LoadResult
    cpu_seconds: float

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_seconds / self.load.requests * 1000 if self.load.requests else math.nan


def measured_load(target: Target, kind: str, run_id: str, **load: Any) -> Measured:
    pids = target.pids()
    before = cpu_seconds(pids)
    result = run_load(target.uri, target.auth, kind, run_id, fresh_connections=target.fresh_connections, **load)
    return Measured(result, cpu_seconds(pids) - before)


def measure(venv: Path | None, *, memory_mib: int, variant: str, runs: int, max_requests: int,
            max_seconds: float, targets: list[str]) -> tuple[int, dict[tuple[str, str, int], list[Measured]]]:
    results: dict[tuple[str, str, int], list[Measured]] = {}
    with bench_stack(venv, variant=variant, instance_memory_mib=memory_mib) as stack, ExitStack() as servers:
        workers = rendered_workers(stack)
        admin: Auth = (stack.admin_username, stack.admin_password)
        run_id = create_run(stack.tracking_uri, admin, "bench-throughput")

        def plain(app_name: str | None) -> Target:
            server = servers.enter_context(PlainServer(stack, app_name))
            assert server.process is not None
            pid = server.process.pid
            return Target(server.uri, admin if app_name else None, lambda: process_tree(pid), fresh_connections=True)

        every = {
            "nginx": lambda: Target(stack.tracking_uri, admin, stack.mlflow_process_ids),
            "nginx-user": lambda: Target(stack.tracking_uri, create_editor(
                stack.tracking_uri, admin, run_id, "bench-editor", secrets.token_urlsafe(16)),
                stack.mlflow_process_ids),
            "direct": lambda: Target(stack.direct_uri, admin, stack.mlflow_process_ids),
            "direct-fresh": lambda: Target(stack.direct_uri, admin, stack.mlflow_process_ids, fresh_connections=True),
            "unguarded": lambda: plain("basic-auth"),
            "plain": lambda: plain(None),
        }
        chosen = {name: every[name]() for name in every if name in targets}
        for target in chosen.values():  # warm every worker's caches and connections
            for kind in BODIES:
                measured_load(target, kind, run_id, threads=8, max_requests=80, max_seconds=10)
        for repetition in range(runs):
            for kind in BODIES:
                for threads in THREADS:
                    for name, target in chosen.items():
                        result = measured_load(target, kind, run_id, threads=threads, max_requests=max_requests,
                                               max_seconds=max_seconds)
                        if result.load.errors:
                            log(f"{name} {kind}: {result.load.errors} errors, first: {result.load.first_error}")
                        results.setdefault((kind, name, threads), []).append(result)
                        log(f"rep {repetition + 1}/{runs} {kind} x{threads} {name}: {result.load.rps:.0f} rps, "
                            f"{result.cpu_ms_per_request:.2f} ms CPU a request")
    return workers, results


def report(results: dict[tuple[str, str, int], list[Measured]], *, memory_mib: int, workers: int,
           variant: str) -> None:
    rows: list[list[object]] = []
    for (kind, target, threads), runs in sorted(results.items()):
        merged = LoadResult(latencies=[latency for run in runs for latency in run.load.latencies])
        rows.append([kind, threads, target, summarize(r.load.rps for r in runs).show(0),
                     sum(r.load.errors for r in runs), f"{merged.latency_ms(0.50):.1f}",
                     f"{merged.latency_ms(0.95):.1f}", f"{merged.latency_ms(0.99):.1f}",
                     summarize(r.cpu_ms_per_request for r in runs).show(2)])
    print_table(f"Throughput ({memory_mib} MiB settings, {workers} worker(s), nginx variant {variant}; "
                f"log_batch = {BATCH_METRICS} metrics a request)",
                ["request", "threads", "target", "requests/s median (min, max)", "errors", "p50 ms", "p95 ms",
                 "p99 ms", "MLflow CPU ms a request"], rows)

    present = [(a, b, label) for a, b, label in RATIOS if any(key[1] == a for key in results)
               and any(key[1] == b for key in results)]
    targets = {TARGET_RATIO: TARGET_NGINX_RATIO, ("nginx-user", "nginx"): TARGET_USER_RATIO,
               ("direct-fresh", "unguarded"): 1 - TARGET_GUARD_COST}
    for figure, unit in (("rps", "requests/s"), ("cpu", "MLflow CPU a request, inverted: its cost")):
        ratio_rows: list[list[object]] = []
        for kind in BODIES:
            for threads in THREADS:
                def values(target: str, kind: str = kind, threads: int = threads, figure: str = figure) -> list[float]:
                    runs = results.get((kind, target, threads), [])
                    # As a rate, so that for both figures a ratio under 1 means the numerator costs more.
                    return [r.load.rps if figure == "rps" else 1 / r.cpu_ms_per_request for r in runs]

                row: list[object] = [kind, threads]
                for numerator, denominator, _ in present:
                    summary = summarize(ratio(a, b) for a, b in zip(values(numerator), values(denominator),
                                                                   strict=True))
                    row.append(summary.show(2))
                    if (numerator, denominator) in targets:
                        wanted = targets[(numerator, denominator)]
                        row.append(f"{verdict(summary.median >= wanted)} (>= {wanted:.2f})")
                ratio_rows.append(row)
        headers = ["request", "threads"]
        for numerator, denominator, label in present:
            headers.append(f"{numerator}/{denominator} ({label})")
            if (numerator, denominator) in targets:
                headers.append("target")
        print_table(f"Ratios of {unit} (per repetition, then median)", headers, ratio_rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory-mib", type=int, default=2048)
    parser.add_argument("--variant", choices=sorted(NGINX_VARIANTS), default="rendered")
    parser.add_argument("--max-requests", type=int, default=1000, help="per measurement, all threads together")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--no-plain", action="store_true", help="skip the server without basic-auth")
    args = parser.parse_args(argv)

    print_machine()
    targets = [t for t in args.targets if not (args.no_plain and t == "plain")]
    workers, results = measure(host_venv(), memory_mib=args.memory_mib, variant=args.variant, runs=args.runs,
                               max_requests=args.max_requests, max_seconds=args.max_seconds, targets=targets)
    report(results, memory_mib=args.memory_mib, workers=workers, variant=args.variant)


if __name__ == "__main__":
    main()
