"""Memory: steady-state PSS of the MLflow service and nginx under load, per instance size.

For each instance memory the settings are rendered for (the sizing module picks the uvicorn workers
from it), a fresh loopback stack serves a bench load through nginx (8 threads, log_metric and
log_batch alternating) while the PSS of MLflow's process tree (the `mlflow server` parent, uvicorn,
its workers) and of nginx's processes is sampled. Steady state: the median of the samples in the
second half of the load; peak: their maximum. Target: MLflow + nginx at most 60% of the instance's
memory. nginx here runs the loopback harness's one worker (Debian's default is one per CPU, about
1-2 MiB PSS each).

    .venv/bin/python -m bench.memory [--sizes 1024 2048 4096] [--seconds 30] [--job-runner]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import MemorySampler, log, memory_kib, print_machine, print_table, verdict
from bench.host_install import host_venv
from bench.load import BODIES, create_run, run_load
from bench.stack import bench_stack, nginx_process_ids, process_role, rendered_workers

TARGET_FRACTION = 0.60
THREADS = 8


@dataclass(frozen=True)
class MemoryFigures:
    memory_mib: int
    workers: int
    idle_mlflow: float
    steady_mlflow: float
    peak_mlflow: float
    steady_nginx: float
    requests: int
    roles: dict[str, tuple[int, float]]  # role -> (processes, PSS MiB) at the end of the load

    @property
    def steady_total(self) -> float:
        return self.steady_mlflow + self.steady_nginx

    @property
    def budget(self) -> float:
        return self.memory_mib * TARGET_FRACTION


def measure_size(venv: Path | None, memory_mib: int, *, seconds: float, job_runner: bool) -> MemoryFigures:
    with bench_stack(venv, instance_memory_mib=memory_mib, job_runner=job_runner) as stack:
        auth = (stack.admin_username, stack.admin_password)
        run_id = create_run(stack.tracking_uri, auth, f"bench-memory-{memory_mib}")
        with MemorySampler(stack.mlflow_process_ids, interval=0.5, limit=60) as idle:
            time.sleep(3)
        with MemorySampler(stack.mlflow_process_ids, interval=0.5, limit=seconds + 120) as mlflow_samples, \
                MemorySampler(lambda: nginx_process_ids(stack), interval=0.5, limit=seconds + 120) as nginx_samples:
            started = time.monotonic()
            deadline = started + seconds
            requests = 0
            kinds = list(BODIES)
            index = 0
            while time.monotonic() < deadline:
                result = run_load(stack.tracking_uri, auth, kinds[index % len(kinds)], run_id, threads=THREADS,
                                  max_requests=400, max_seconds=max(1.0, deadline - time.monotonic()))
                requests += result.requests
                index += 1
            roles: dict[str, tuple[int, float]] = {}
            for pid in stack.mlflow_process_ids():
                count, pss = roles.get(process_role(pid), (0, 0.0))
                roles[process_role(pid)] = (count + 1, pss + memory_kib(pid).get("Pss", 0) / 1024)
        steady_since = started + seconds / 2
        return MemoryFigures(
            memory_mib=memory_mib,
            workers=rendered_workers(stack),
            idle_mlflow=statistics.median(idle.pss()),
            steady_mlflow=statistics.median(mlflow_samples.pss(steady_since)),
            peak_mlflow=max(mlflow_samples.pss()),
            steady_nginx=statistics.median(nginx_samples.pss(steady_since)),
            requests=requests,
            roles=roles,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096], help="instance memory, MiB")
    parser.add_argument("--seconds", type=float, default=30.0, help="load per size")
    parser.add_argument("--job-runner", action="store_true", help="render with MLflow's job runner on")
    args = parser.parse_args(argv)

    print_machine()
    venv = host_venv()
    figures: list[MemoryFigures] = []
    for memory_mib in args.sizes:
        log(f"{memory_mib} MiB settings")
        figures.append(measure_size(venv, memory_mib, seconds=args.seconds, job_runner=args.job_runner))

    print_table(f"Memory, PSS in MiB (job runner {'on' if args.job_runner else 'off'})",
                ["instance MiB", "workers", "MLflow idle", "MLflow steady", "MLflow peak", "nginx steady",
                 "MLflow + nginx", "% of instance", "target (60%)", "result", "requests"],
                [[f.memory_mib, f.workers, f"{f.idle_mlflow:.0f}", f"{f.steady_mlflow:.0f}", f"{f.peak_mlflow:.0f}",
                  f"{f.steady_nginx:.1f}", f"{f.steady_total:.0f}", f"{100 * f.steady_total / f.memory_mib:.0f}%",
                  f"<= {f.budget:.0f}", verdict(f.steady_total <= f.budget), f.requests] for f in figures])
    print_table("MLflow's processes at the end of the load (PSS MiB)",
                ["instance MiB", "process", "count", "PSS total", "PSS each"],
                [[f.memory_mib, role, count, f"{pss:.0f}", f"{pss / count:.0f}"]
                 for f in figures for role, (count, pss) in sorted(f.roles.items())])


if __name__ == "__main__":
    main()
