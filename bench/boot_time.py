"""Boot to healthy: from the start of the configure step to `/health` 200 through nginx.

SSM (moto) and PostgreSQL are up before the clock starts, and nginx already runs (on the host it is
started by cloud-init, independently of MLflow). Each run times, in order:
  first boot  an empty tracking database and no auth database (the configure step creates the auth
              database, the schemas and the admin), then the rendered ExecStart
  restart     MLflow stopped, then the same configure step + ExecStart against the existing schemas
Split into the configure step (ExecStartPre) and the server's start (ExecStart to 200 through nginx).
CPU seconds are printed too: on a busy 2-CPU machine the wall time is mostly waiting for a CPU.
Target: restart under 15 s.

    .venv/bin/python -m bench.boot_time [--runs 5] [--memory-mib 1024] [--bytecode compiled-at-install]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from dataclasses import dataclass

from bench.common import cpu_seconds, log, print_machine, print_table, summarize, verdict
from bench.host_install import host_venv
from bench.install_time import bytecode_files
from bench.stack import (
    HOST_ENVIRONMENT,
    HealthWatcher,
    bench_stack,
    fresh_databases,
    rendered_pycache_prefix,
    rendered_workers,
    start_nginx_unwaited,
)
from tests.support.loopback import STARTUP_TIMEOUT_SECONDS, ConfigureFailed, LoopbackStack

TARGET_RESTART_SECONDS = 15.0


@dataclass(frozen=True)
class BootTiming:
    configure: float
    server: float
    configure_cpu: float  # CPU seconds: what the wall time would be alone on an idle core
    server_cpu: float

    @property
    def total(self) -> float:
        return self.configure + self.server


def timed_start(stack: LoopbackStack, env: dict[str, str]) -> BootTiming:
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    result = stack.configure(env)
    configured = time.monotonic()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise ConfigureFailed(result)
    watcher = HealthWatcher(f"{stack.tracking_uri}/health", STARTUP_TIMEOUT_SECONDS).start()
    stack.launch_server(env)
    healthy = watcher.wait()
    if healthy is None:
        raise RuntimeError("/health through nginx never answered 200")
    configure_cpu = (children_after.ru_utime + children_after.ru_stime
                     - children_before.ru_utime - children_before.ru_stime)
    return BootTiming(configure=configured - start, server=healthy - configured, configure_cpu=configure_cpu,
                      server_cpu=cpu_seconds(stack.mlflow_process_ids()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memory-mib", type=int, default=1024, help="instance memory the settings are rendered for")
    parser.add_argument("--bytecode", choices=["rendered", "compiled-at-install", "pycache-prefix"],
                        default="rendered",
                        help="rendered: as the user data does it; the others are experiments: the venv "
                             "compiled at install (uv --compile-bytecode, no PYTHONPYCACHEPREFIX), or installed "
                             "without compiling and PYTHONPYCACHEPREFIX in a writable directory, emptied before "
                             "each first boot")
    args = parser.parse_args(argv)

    print_machine()
    compile_bytecode = {"rendered": None, "compiled-at-install": True, "pycache-prefix": False}[args.bytecode]
    venv = host_venv(compile_bytecode=compile_bytecode)
    timings: dict[str, list[BootTiming]] = {"first boot": [], "restart": []}
    with bench_stack(venv, start=False, instance_memory_mib=args.memory_mib) as stack:
        workers = rendered_workers(stack)
        print(f"instance memory {args.memory_mib} MiB -> {workers} uvicorn worker(s); MLflow from {venv}")
        stack.prepare()
        stack.start_postgres()
        start_nginx_unwaited(stack)
        env = dict(HOST_ENVIRONMENT)
        pycache = rendered_pycache_prefix(stack)
        if args.bytecode == "compiled-at-install":
            env["PYTHONPYCACHEPREFIX"], pycache = "", None
        elif args.bytecode == "pycache-prefix" and pycache is None:
            pycache = stack.root / "pycache"
            env["PYTHONPYCACHEPREFIX"] = str(pycache)
        print(f"bytecode: {args.bytecode}; venv .pyc files: {bytecode_files(venv)}; pycache prefix: {pycache}")
        for run in range(args.runs):
            fresh_databases(stack)
            if pycache is not None:  # a new instance's cache directory is empty
                shutil.rmtree(pycache, ignore_errors=True)
            for kind in ("first boot", "restart"):
                timing = timed_start(stack, env)
                timings[kind].append(timing)
                log(f"run {run + 1}/{args.runs} {kind}: configure {timing.configure:.2f} s "
                    f"({timing.configure_cpu:.2f} CPU s) + server {timing.server:.2f} s "
                    f"({timing.server_cpu:.2f} CPU s) = {timing.total:.2f} s")
                stack.stop_mlflow()

    rows: list[list[object]] = []
    for kind, values in timings.items():
        total = summarize(t.total for t in values)
        target = f"< {TARGET_RESTART_SECONDS:.0f}" if kind == "restart" else ""
        result = verdict(total.median < TARGET_RESTART_SECONDS) if kind == "restart" else ""
        rows.append([kind, summarize(t.configure for t in values).show(), summarize(t.server for t in values).show(),
                     total.show(), summarize(t.configure_cpu + t.server_cpu for t in values).show(), target, result])
    print_table(f"Boot to healthy through nginx (s), {args.memory_mib} MiB settings, {workers} worker(s), "
                f"bytecode: {args.bytecode}",
                ["start", "configure step", "ExecStart to 200", "total", "CPU s used (both steps)", "target",
                 "result"], rows)


if __name__ == "__main__":
    main()
