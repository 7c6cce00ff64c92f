"""Boot to healthy: from the start of the configure step to `/health` 200 through nginx.

SSM (moto) and PostgreSQL are up before the clock starts, and nginx already runs (on the host it is
started by cloud-init, independently of MLflow). Each run times, in order:
  first boot  an empty tracking database and no auth database (the configure step creates the auth
              database, the schemas and the admin), then the rendered ExecStart
  restart     MLflow stopped, then the same configure step + ExecStart against the existing schemas
Split into the configure step (ExecStartPre) and the server's start (ExecStart to 200 through nginx).
CPU seconds are printed too: on a busy 2-CPU machine the wall time is mostly waiting for a CPU.
Target: restart under 15 s.

With --container, the real boot instead (tests/support/boot_stack.py): the default config's `tls: off`
user data, byte for byte as EC2 receives it, booted by systemd-nspawn in a Debian 13 container (systemd
as PID 1, cloud-init from the NoCloud seed), timed from the container's start to `/health` 200 through
its nginx: the first boot (packages, uv and MLflow's install, schemas and admin) of a fresh root file
system and database, then a reboot of the same root (power off, boot again). `--caches warm` shares
this machine's download caches (PyPI and Debian's mirror, as the boot tests do); `cold` gives each run
empty ones, as a new instance has. Needs root and the boot tests' packages (mmdebstrap,
systemd-container). Aim: first boot under 60 s, reboot under 15 s.

    .venv/bin/python -m bench.boot_time [--runs 5] [--memory-mib 1024] [--bytecode compiled-at-install]
    .venv/bin/python -m bench.boot_time --container [--runs 3] [--caches warm|cold|both]
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
TARGET_CONTAINER_FIRST_BOOT_SECONDS = 60.0
CONTAINER_FIRST_BOOT_TIMEOUT_SECONDS = 1200.0
CONTAINER_REBOOT_TIMEOUT_SECONDS = 300.0


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


def container_boots(caches: str) -> tuple[float, float]:
    """One fresh container: seconds from its start to /health 200 on the first boot, then on a reboot."""
    from tests.support import boot
    from tests.support.boot_stack import BootedHost, boot_settings

    with boot.boot_workdir("mlflow-aws-bench-boot-") as workdir:
        cache = boot.CACHE_ROOT / "downloads" if caches == "warm" else workdir / "empty-caches"
        with BootedHost(boot_settings(tls="off"), workdir, download_caches=cache) as host:
            first = host.running().wait_for_health(timeout=CONTAINER_FIRST_BOOT_TIMEOUT_SECONDS)
            host.running().wait_for_cloud_init()
            reboot = host.reboot().wait_for_health(timeout=CONTAINER_REBOOT_TIMEOUT_SECONDS)
    return first, reboot


def container_main(runs: int, caches: list[str]) -> None:
    from tests.support import boot

    missing = boot.boot_requirements_missing() + [f"port {p} free" for p in boot.ports_in_use()]
    if missing:
        raise SystemExit(f"the container boot needs {', '.join(missing)}")
    print_machine()
    boot.rootfs_tarball(log=log)  # built once, outside the clock
    rows: list[list[object]] = []
    for kind in caches:
        firsts, reboots = [], []
        for run in range(runs):
            first, reboot = container_boots(kind)
            firsts.append(first)
            reboots.append(reboot)
            log(f"{kind} caches, run {run + 1}/{runs}: first boot {first:.1f} s, reboot {reboot:.1f} s")
        first_summary, reboot_summary = summarize(firsts), summarize(reboots)
        rows.append([f"first boot, {kind} download caches", first_summary.show(1),
                     f"< {TARGET_CONTAINER_FIRST_BOOT_SECONDS:.0f}",
                     verdict(first_summary.median < TARGET_CONTAINER_FIRST_BOOT_SECONDS)])
        rows.append([f"reboot (after a {kind}-cache first boot)", reboot_summary.show(1),
                     f"< {TARGET_RESTART_SECONDS:.0f}", verdict(reboot_summary.median < TARGET_RESTART_SECONDS)])
    print_table("Container start to /health 200 through nginx (s): the default tls: off user data under "
                "cloud-init and systemd (Debian 13, systemd-nspawn)", ["boot", "seconds", "target", "result"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=None, help="default 5, or 3 with --container")
    parser.add_argument("--container", action="store_true",
                        help="boot the user data in a container (the real first boot and reboot)")
    parser.add_argument("--caches", choices=["warm", "cold", "both"], default="both",
                        help="with --container: this machine's download caches, empty ones, or both")
    parser.add_argument("--memory-mib", type=int, default=1024, help="instance memory the settings are rendered for")
    parser.add_argument("--bytecode", choices=["rendered", "compiled-at-install", "pycache-prefix"],
                        default="rendered",
                        help="rendered: as the user data does it; the others are experiments: the venv "
                             "compiled at install (uv --compile-bytecode, no PYTHONPYCACHEPREFIX), or installed "
                             "without compiling and PYTHONPYCACHEPREFIX in a writable directory, emptied before "
                             "each first boot")
    args = parser.parse_args(argv)
    if args.container:
        container_main(args.runs or 3, ["warm", "cold"] if args.caches == "both" else [args.caches])
        return
    args.runs = args.runs or 5

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
