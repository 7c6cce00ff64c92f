"""MLflow's memory under anonymous request bodies (issue 23, hole 3): `--clients` clients, each from its own
loopback address, POST `--size-mib` MiB without a login at the same time, through nginx to the rendered
stack, to a JSON route, GraphQL and a multipart-upload route in turn; each body either declared in
Content-Length (nginx refuses it unread, past its limit) or sent chunked (its size unknown, so nginx
streams it on and the server guard refuses it before reading it). For comparison, one chunked body straight
to MLflow's own basic-auth app without the guard (`--app-name basic-auth`, how the server ran before),
which reads the whole body before its 401.

Figures: the growth of the MLflow processes' summed resident memory (RSS, sampled every 100 ms) over
their idle level just before, at its peak; the body bytes the server took before answering; the answers.

    .venv/bin/python -m bench.anonymous_bodies [--runs 3] [--clients 10] [--size-mib 300] [--memory-mib 2048]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import time
from collections.abc import Callable, Iterable

from bench.common import MemorySampler, log, print_machine, print_table, process_tree, summarize, verdict
from bench.host_install import host_venv
from bench.stack import PlainServer, bench_stack
from tests.support import raw_http

MIB = 1024 * 1024
TARGET_GROWTH_MB = 10.0
ROUTES = ("/api/2.0/mlflow/experiments/create", "/graphql", "/api/2.0/mlflow-artifacts/mpu/create/1/r/artifacts/m")
SETTLE_SECONDS = 1.0


def attack(port: int, route: str, clients: int, size: int, chunked: bool) -> list[raw_http.Answer]:
    def one(client: int) -> raw_http.Answer:
        return raw_http.stream_until_answered(port, f"127.0.66.{client + 2}", route, size, timeout=600,
                                              chunked=chunked)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(clients)))


def growth_mb(pids: Callable[[], Iterable[int]],
              send: Callable[[], list[raw_http.Answer]]) -> tuple[float, list[raw_http.Answer]]:
    """The peak of the summed RSS while `send` runs, over its level just before, in MB."""
    with MemorySampler(pids, interval=0.1) as sampler:
        time.sleep(SETTLE_SECONDS)
        started = time.monotonic()
        answers = send()
        time.sleep(SETTLE_SECONDS)
    idle = max(rss for at, _, rss in sampler.samples if at < started)
    return (max(sampler.rss(started)) - idle) * MIB / 1e6, answers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--size-mib", type=int, default=300)
    parser.add_argument("--memory-mib", type=int, default=2048)
    args = parser.parse_args(argv)
    print_machine()
    size = args.size_mib * MIB
    rows: list[list[object]] = []
    with bench_stack(host_venv(), instance_memory_mib=args.memory_mib) as stack:
        def mlflow() -> list[int]:
            return stack.mlflow_process_ids()

        for route in ROUTES:
            for chunked in (False, True):
                growths: list[float] = []
                taken: list[float] = []
                statuses: set[int] = set()

                def send(route: str = route, chunked: bool = chunked) -> list[raw_http.Answer]:
                    return attack(stack.nginx_port, route, args.clients, size, chunked)

                for run in range(args.runs):
                    growth, answers = growth_mb(mlflow, send)
                    growths.append(growth)
                    taken += [answer.sent / MIB for answer in answers]
                    statuses |= {answer.status for answer in answers}
                    log(f"{route} chunked={chunked} run {run + 1}: +{growth:.1f} MB, answers {sorted(statuses)}")
                summary = summarize(growths)
                rows.append(["guarded, through nginx", route, "chunked" if chunked else "Content-Length",
                             f"{args.clients} x {args.size_mib} MiB", summary.show(1), f"{max(taken):.1f}",
                             " ".join(map(str, sorted(statuses))),
                             f"{verdict(summary.maximum < TARGET_GROWTH_MB)} (< {TARGET_GROWTH_MB:.0f})"])
        with PlainServer(stack, "basic-auth") as unguarded:
            def unguarded_pids() -> list[int]:
                return process_tree(unguarded.process.pid) if unguarded.process else []

            growth, answers = growth_mb(unguarded_pids, lambda: [raw_http.stream_until_answered(
                unguarded.port, "127.0.67.2", ROUTES[0], size, timeout=600, chunked=True)])
            rows.append(["MLflow's basic-auth alone, direct", ROUTES[0], "chunked", f"1 x {args.size_mib} MiB",
                         f"{growth:.1f}", f"{answers[0].sent / MIB:.1f}", str(answers[0].status), "(before issue 23)"])
    print_table("MLflow's memory under anonymous bodies", [
        "server", "route", "framing", "bodies at once", "RSS growth MB: median (min, max)",
        "MiB sent before the answer, worst", "answers", "target"], rows)


if __name__ == "__main__":
    main()
