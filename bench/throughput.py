"""Throughput: log_metric and log_batch requests per second and latency, through nginx and direct.

Three ways to the same server processes and database, interleaved within each repetition:
  nginx   http://127.0.0.1:<nginx>, the rendered site, basic auth (what clients use)
  direct  http://127.0.0.1:<mlflow port>, the same authenticated server without nginx
  plain   the rendered ExecStart without `--app-name basic-auth` on another port (no authentication)
nginx/direct isolates nginx's cost (target: >= 0.90, nginx costs at most 10%); direct/plain isolates
basic-auth's; nginx/plain is the whole cost of the front door. Each repetition is bounded by a
request count and a time; rps is the median (min, max) over repetitions, latencies pool them all.
The client runs on the same machine, so its CPU competes with the server's.

    .venv/bin/python -m bench.throughput [--runs 5] [--memory-mib 2048] [--variant rendered]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import log, print_machine, print_table, ratio, summarize, verdict
from bench.host_install import host_venv
from bench.load import BATCH_METRICS, BODIES, Auth, LoadResult, create_run, run_load
from bench.stack import NGINX_VARIANTS, PlainServer, bench_stack, rendered_workers

TARGET_NGINX_RATIO = 0.90
THREADS = (1, 8)


def measure(venv: Path | None, *, memory_mib: int, variant: str, runs: int, max_requests: int,
            max_seconds: float, with_plain: bool) -> tuple[int, dict[tuple[str, str, int], list[LoadResult]]]:
    results: dict[tuple[str, str, int], list[LoadResult]] = {}
    with bench_stack(venv, variant=variant, instance_memory_mib=memory_mib) as stack:
        workers = rendered_workers(stack)
        auth: Auth = (stack.admin_username, stack.admin_password)
        run_id = create_run(stack.tracking_uri, auth, "bench-throughput")
        plain = PlainServer(stack) if with_plain else None
        if plain is not None:
            plain.__enter__()
        try:
            targets: dict[str, tuple[str, Auth]] = {"nginx": (stack.tracking_uri, auth),
                                                    "direct": (stack.direct_uri, auth)}
            if plain is not None:
                targets["plain"] = (plain.uri, None)
            for uri, target_auth in targets.values():  # warm every worker's caches and connections
                for kind in BODIES:
                    run_load(uri, target_auth, kind, run_id, threads=8, max_requests=80, max_seconds=10)
            for repetition in range(runs):
                for kind in BODIES:
                    for threads in THREADS:
                        for target, (uri, target_auth) in targets.items():
                            result = run_load(uri, target_auth, kind, run_id, threads=threads,
                                              max_requests=max_requests, max_seconds=max_seconds)
                            if result.errors:
                                log(f"{target} {kind}: {result.errors} errors, first: {result.first_error}")
                            results.setdefault((kind, target, threads), []).append(result)
                            log(f"rep {repetition + 1}/{runs} {kind} x{threads} {target}: {result.rps:.0f} rps")
        finally:
            if plain is not None:
                plain.__exit__()
    return workers, results


def report(results: dict[tuple[str, str, int], list[LoadResult]], *, memory_mib: int, workers: int,
           variant: str) -> None:
    rows: list[list[object]] = []
    for (kind, target, threads), runs in sorted(results.items()):
        pooled = [latency for run in runs for latency in run.latencies]
        merged = LoadResult(latencies=pooled)
        rows.append([kind, threads, target, summarize(r.rps for r in runs).show(0), sum(r.errors for r in runs),
                     f"{merged.latency_ms(0.50):.1f}", f"{merged.latency_ms(0.95):.1f}",
                     f"{merged.latency_ms(0.99):.1f}"])
    print_table(f"Throughput ({memory_mib} MiB settings, {workers} worker(s), nginx variant {variant}; "
                f"log_batch = {BATCH_METRICS} metrics a request)",
                ["request", "threads", "target", "requests/s median (min, max)", "errors", "p50 ms", "p95 ms",
                 "p99 ms"], rows)

    ratio_rows: list[list[object]] = []
    for kind in BODIES:
        for threads in THREADS:
            def rps(target: str, kind: str = kind, threads: int = threads) -> list[float]:
                return [r.rps for r in results.get((kind, target, threads), [])]

            nginx_direct = summarize(ratio(a, b) for a, b in zip(rps("nginx"), rps("direct"), strict=True))
            row: list[object] = [kind, threads, nginx_direct.show(2), f">= {TARGET_NGINX_RATIO:.2f}",
                                 verdict(nginx_direct.median >= TARGET_NGINX_RATIO)]
            if rps("plain"):
                row += [summarize(ratio(a, b) for a, b in zip(rps("direct"), rps("plain"), strict=True)).show(2),
                        summarize(ratio(a, b) for a, b in zip(rps("nginx"), rps("plain"), strict=True)).show(2)]
            else:
                row += ["", ""]
            ratio_rows.append(row)
    print_table("Throughput ratios (per repetition, then median)",
                ["request", "threads", "nginx/direct (nginx's cost)", "target", "result",
                 "direct/plain (basic-auth's cost)", "nginx/plain (both)"], ratio_rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory-mib", type=int, default=2048)
    parser.add_argument("--variant", choices=sorted(NGINX_VARIANTS), default="rendered")
    parser.add_argument("--max-requests", type=int, default=1000, help="per measurement, all threads together")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--no-plain", action="store_true", help="skip the server without basic-auth")
    args = parser.parse_args(argv)

    print_machine()
    workers, results = measure(host_venv(), memory_mib=args.memory_mib, variant=args.variant, runs=args.runs,
                      max_requests=args.max_requests, max_seconds=args.max_seconds, with_plain=not args.no_plain)
    report(results, memory_mib=args.memory_mib, workers=workers, variant=args.variant)


if __name__ == "__main__":
    main()
