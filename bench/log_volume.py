"""Log volume: the bytes each request adds to what the CloudWatch agent ships, for README's cost line.

A loopback stack rendered with monitoring on serves a team's usual client calls through nginx, made by
MLflow's own client (its user agent, its request shapes): an experiment and a run, then metrics logged
one by one and in batches, params, tags, a run read back and a search. Measured: the bytes of nginx's
JSON access log (the `access` log group) and of MLflow's own output (uvicorn's line per request: the
`mlflow` log group, through the journal) per request, and what a month of `--requests-per-day` costs to
ingest at CloudWatch Logs' rate, with its 26 bytes of overhead per event.

    .venv/bin/python -m bench.log_volume [--requests 400] [--requests-per-day 20000]
"""

from __future__ import annotations

import argparse
import os
import time

from bench.common import log, print_machine, print_table
from tests.support.loopback import LoopbackStack
from userdata import monitoring

EVENT_OVERHEAD_BYTES = 26  # CloudWatch Logs bills each event's size plus 26 bytes
INGESTION_USD_PER_GB = 0.50  # us-east-1, Standard log class
DAYS_PER_MONTH = 30


def client_calls(stack: LoopbackStack, requests: int) -> int:
    """MLflow's client through nginx; returns how many HTTP requests it made (each one log line)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"] = stack.admin_username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = stack.admin_password
    client = MlflowClient(tracking_uri=stack.tracking_uri)
    experiment = client.create_experiment(f"log-volume-{time.time_ns()}")
    run = client.create_run(experiment).info.run_id
    made = 2
    step = 0
    while made < requests:
        client.log_metric(run, "loss", 1.0 / (step + 1), step=step)
        client.log_param(run, f"p{step}", step)
        client.set_tag(run, "phase", "train")
        client.log_batch(run, metrics=[Metric("acc", 0.5, int(time.time() * 1000), step)])
        client.get_run(run)
        client.search_runs([experiment], max_results=10)
        made += 6
        step += 1
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--requests-per-day", type=int, default=20000)
    arguments = parser.parse_args()
    print_machine()
    with LoopbackStack(monitoring=True) as stack:
        access = stack.path(monitoring.ACCESS_LOG)
        access_before = access.stat().st_size if access.exists() else 0
        server_before = stack.mlflow_log.stat().st_size
        log(f"{arguments.requests} requests of MLflow's client through nginx")
        made = client_calls(stack, arguments.requests)
        time.sleep(1)  # nginx writes a line after its answer
        access_bytes = (access.stat().st_size - access_before) / made
        server_bytes = (stack.mlflow_log.stat().st_size - server_before) / made
    per_request = access_bytes + server_bytes + 2 * EVENT_OVERHEAD_BYTES
    monthly_gb = per_request * arguments.requests_per_day * DAYS_PER_MONTH / 1e9
    print_table("Log bytes per request", ["figure", "value"], [
        ("requests", made),
        ("access log line (JSON), bytes", f"{access_bytes:.0f}"),
        ("MLflow's own line (journal), bytes", f"{server_bytes:.0f}"),
        ("billed per request, with CloudWatch's per-event overhead, bytes", f"{per_request:.0f}"),
        (f"a month of {arguments.requests_per_day} requests a day, GB", f"{monthly_gb:.2f}"),
        ("its ingestion, USD", f"{monthly_gb * INGESTION_USD_PER_GB:.2f}"),
    ])


if __name__ == "__main__":
    main()
