"""The server guard's own cost per request, in microseconds of CPU: its before-request hook as MLflow's
Flask app runs it, for the request every client sends most (log-metric: the hook only compares the
path) and for an experiment create (the hook also parses the body, as MLflow's handler then does again).
A complement to bench.throughput's guard on/off figures, which this machine's load makes noisy.

    .venv/bin/python -m bench.guard_overhead [--calls 20000]
"""

from __future__ import annotations

import argparse
import time

from bench.common import print_machine, print_table


def per_call_microseconds(path: str, body: dict[str, object], calls: int) -> float:
    from mlflow.protos.service_pb2 import CreateExperiment
    from mlflow.server import app, auth
    from mlflow.server.handlers import _get_request_message

    from server_guard import locations

    paths = locations.create_experiment_paths(auth.BEFORE_REQUEST_VALIDATORS.items(),
                                              auth.validate_can_create_experiment)
    with app.test_request_context(path, method="POST", json=body):
        from flask import request

        def artifact_location() -> str:
            location: str = _get_request_message(CreateExperiment()).artifact_location  # type: ignore[no-untyped-call]
            return location

        started = time.process_time()
        for _ in range(calls):
            locations.artifact_location_refusal(request, paths, artifact_location)
        return (time.process_time() - started) / calls * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args(argv)
    print_machine()
    rows: list[list[object]] = []
    requests: list[tuple[str, str, dict[str, object]]] = [
        ("log-metric", "/api/2.0/mlflow/runs/log-metric", {"run_id": "0" * 32, "key": "loss", "value": 0.5}),
        ("experiments/create", "/api/2.0/mlflow/experiments/create", {"name": "bench"}),
    ]
    for label, path, body in requests:
        rows.append([label, args.calls, f"{per_call_microseconds(path, body, args.calls):.2f}"])
    print_table("The server guard's before-request hook, CPU per request", ["request", "calls", "µs per call"], rows)


if __name__ == "__main__":
    main()
