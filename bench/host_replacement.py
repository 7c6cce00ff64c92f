"""A single host's replacement under a client's load, on loopback (tests/support/replacement_drill.py): the
failed requests and the longest gap a client sees while a new host boots beside the old one, passes the
gate (/health 200 through its nginx) and takes the address (the fleet loopback's never-retrying nginx
stand-in plays the Elastic IP). The client logs a metric and reads a 10 MB artifact per round, raw HTTP,
no retry. Target: 0 failed requests. With --migrate, the old host runs MLflow UPGRADE_FROM (3.16.1, a
venv of its own) and the new host the tested release, which migrates both schemas: the new host snapshots
the database (moto), fences the old host off (503 while the schemas migrate) and migrates; target: the
longest gap within the migration's own time plus 5 s.

    .venv/bin/python -m bench.host_replacement [--runs 3] [--migrate]
"""

from __future__ import annotations

import argparse
import statistics

from tests.support import replacement_drill
from tests.support.fleet_loopback import FleetHost, StandInLoadBalancer, fleet_settings
from tests.support.loopback import LoopbackStack
from tests.support.mlflow_venv import mlflow_venv
from userdata import layout

UPGRADE_FROM = "3.16.1"  # as tests/host/test_mlflow_upgrade.py


def one_run(migrate: bool) -> replacement_drill.DrillResult:
    # The primary holds PostgreSQL, moto and the parameters; it serves nothing itself.
    primary = LoopbackStack(fleet_settings(), start=False)
    hosts: list[LoopbackStack] = [primary]
    front: StandInLoadBalancer | None = None
    try:
        primary.prepare()
        primary.start_postgres()
        old = FleetHost(primary, fleet_settings(mlflow_version=UPGRADE_FROM) if migrate else fleet_settings())
        if migrate:
            old.replacements[layout.VENV_DIR] = str(mlflow_venv(UPGRADE_FROM))
            old.write_host_files()
        hosts.append(old)
        old.start_mlflow()
        old.start_nginx()
        front = StandInLoadBalancer(primary.root / "front", [old.nginx_port])
        front.start()
        target = replacement_drill.prepare_target(front, old)

        def start_new() -> LoopbackStack:
            new = FleetHost(primary, fleet_settings())
            hosts.append(new)
            new.start_mlflow()
            new.start_nginx()
            return new

        _, result = replacement_drill.replace_host(front, old, start_new, target, watch_fence=migrate)
        return result
    finally:
        if front is not None:
            front.stop()
        for host in reversed(hosts):  # the primary, which owns PostgreSQL and moto, last
            host.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--migrate", action="store_true", help=f"the old host runs {UPGRADE_FROM}: a migration")
    arguments = parser.parse_args()
    results = []
    for run in range(1, arguments.runs + 1):
        result = one_run(arguments.migrate)
        results.append(result)
        print(f"run {run}: {result.sent} requests, {len(result.failures)} failed, longest gap "
              f"{result.longest_gap:.2f} s, gate after {result.gate_seconds:.1f} s, front switched in "
              f"{result.switch_seconds:.2f} s", flush=True)
        for failure in result.failures[:5]:
            print(f"  {failure}")
    kind = f"with a migration from {UPGRADE_FROM}" if arguments.migrate else "without a migration"
    print(f"replacement {kind}, {len(results)} runs: failed requests "
          f"{sum(len(result.failures) for result in results)} of {sum(result.sent for result in results)}; "
          f"longest gap median {statistics.median(result.longest_gap for result in results):.2f} s, "
          f"max {max(result.longest_gap for result in results):.2f} s")


if __name__ == "__main__":
    main()
