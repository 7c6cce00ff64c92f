"""A bounded HTTP load on MLflow's REST API: N threads, each with its own keep-alive session."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.common import percentile

LOG_METRIC = "/api/2.0/mlflow/runs/log-metric"
LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"
BATCH_METRICS = 10
Auth = tuple[str, str] | None


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    first_error: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def latency_ms(self, fraction: float) -> float:
        return percentile(self.latencies, fraction) * 1000 if self.latencies else float("nan")


def log_metric_body(run_id: str, thread: int, index: int) -> dict[str, Any]:
    return {"run_id": run_id, "key": f"bench_t{thread}", "value": float(index), "timestamp": int(time.time() * 1000),
            "step": index}


def log_batch_body(run_id: str, thread: int, index: int) -> dict[str, Any]:
    now = int(time.time() * 1000)
    metrics = [{"key": f"bench_t{thread}_m{m}", "value": float(index), "timestamp": now, "step": index}
               for m in range(BATCH_METRICS)]
    return {"run_id": run_id, "metrics": metrics, "params": [], "tags": []}


BODIES: dict[str, tuple[str, Callable[[str, int, int], dict[str, Any]]]] = {
    "log_metric": (LOG_METRIC, log_metric_body),
    "log_batch": (LOG_BATCH, log_batch_body),
}


def session(auth: Auth, *, fresh_connections: bool = False) -> requests.Session:
    """fresh_connections: `Connection: close` on every request, a new TCP connection each time."""
    http = requests.Session()
    http.trust_env = False  # no proxy, no netrc: straight to 127.0.0.1
    http.auth = auth
    if fresh_connections:
        http.headers["Connection"] = "close"
    return http


def create_run(base_uri: str, auth: Auth, experiment: str) -> str:
    with session(auth) as http:
        response = http.post(f"{base_uri}/api/2.0/mlflow/experiments/create", json={"name": experiment}, timeout=30)
        response.raise_for_status()
        experiment_id = response.json()["experiment_id"]
        response = http.post(f"{base_uri}/api/2.0/mlflow/runs/create",
                             json={"experiment_id": experiment_id, "start_time": int(time.time() * 1000)}, timeout=30)
        response.raise_for_status()
        run_id: str = response.json()["run"]["info"]["run_id"]
        return run_id


def create_editor(base_uri: str, admin: Auth, run_id: str, username: str, password: str) -> Auth:
    """A non-admin user of MLflow's basic-auth app with EDIT on the run's experiment."""
    with session(admin) as http:
        run = http.get(f"{base_uri}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=30)
        run.raise_for_status()
        experiment_id = run.json()["run"]["info"]["experiment_id"]
        http.post(f"{base_uri}/api/2.0/mlflow/users/create", json={"username": username, "password": password},
                  timeout=30).raise_for_status()
        http.post(f"{base_uri}/api/3.0/mlflow/users/permissions/grant",
                  json={"username": username, "resource_type": "experiment", "resource_id": experiment_id,
                        "permission": "EDIT"}, timeout=30).raise_for_status()
    return (username, password)


def run_load(base_uri: str, auth: Auth, kind: str, run_id: str, *, threads: int, max_requests: int,
             max_seconds: float, fresh_connections: bool = False) -> LoadResult:
    """`threads` clients post `kind` bodies until `max_requests` in all or `max_seconds`, whichever first."""
    path, body = BODIES[kind]
    url = base_uri + path
    result = LoadResult()
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)
    per_thread = max(1, max_requests // threads)
    deadline_box: list[float] = []

    def client(thread: int) -> None:
        latencies: list[float] = []
        errors = 0
        first_error = ""
        with session(auth, fresh_connections=fresh_connections) as http:
            barrier.wait(timeout=60)
            deadline = deadline_box[0]
            for index in range(per_thread):
                if time.monotonic() >= deadline:
                    break
                started = time.perf_counter()
                try:
                    response = http.post(url, json=body(run_id, thread, index), timeout=30)
                    ok = response.status_code == 200
                    reason = f"HTTP {response.status_code}: {response.text[:200]}"
                except requests.RequestException as error:
                    ok, reason = False, str(error)
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                    first_error = first_error or reason
        with lock:
            result.latencies.extend(latencies)
            result.requests += len(latencies)
            result.errors += errors
            result.first_error = result.first_error or first_error

    workers = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(threads)]
    for worker in workers:
        worker.start()
    started = time.monotonic()
    deadline_box.append(started + max_seconds)
    barrier.wait(timeout=60)
    for worker in workers:
        worker.join(timeout=max_seconds + 60)
    result.elapsed = time.monotonic() - started
    return result
