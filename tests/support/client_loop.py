"""A team's client during a host replacement: it logs a metric and reads a 10 MB artifact, over and over,
through the stack's front door, and counts what failed.

Raw HTTP with MLflow's REST API and basic auth, one new connection per request and no retry, so every
failure the server gives reaches the count (MLflow's own client retries 5xx for minutes and would hide
them). Bounded by `max_rounds` and `max_seconds`, and by `stop()`. Measured:
  sent, failures             every request and the ones that did not come back 200 with the right body
  longest_gap                the longest time between two consecutive successful answers: the client's
                             unavailability (with no failure it is the slowest round trip, ~a download)
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.client
import json
import threading
import time
from urllib.parse import quote, urlsplit

REQUEST_TIMEOUT_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class Target:
    """What the loop reads and writes: a run to log to and one of its artifacts, with the artifact's digest."""

    run_id: str
    artifact_path: str  # below the artifacts root: "<experiment id>/<run id>/artifacts/<file>"
    artifact_sha256: str


@dataclasses.dataclass
class ClientLoop:
    url: str  # the front door: scheme://host:port
    username: str
    password: str
    target: Target
    max_rounds: int
    max_seconds: float
    pause_seconds: float = 0.05
    sent: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    longest_gap: float = 0.0
    duration: float = 0.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Host": parts.netloc}
        self._stop = threading.Event()
        self._last_success = 0.0
        self._thread = threading.Thread(target=self._run, name="client-loop", daemon=True)

    @property
    def succeeded(self) -> int:
        return self.sent - len(self.failures)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.max_seconds + 2 * REQUEST_TIMEOUT_SECONDS)

    def wait_for(self, successes: int, timeout: float) -> None:
        """Until `successes` more requests have succeeded (bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        target = self.succeeded + successes
        while self.succeeded < target:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise TimeoutError(f"the client made {self.sent} requests, {len(self.failures)} failed: "
                                   f"{self.failures[-3:]}")
            time.sleep(0.05)

    def _run(self) -> None:
        started = self._last_success = time.monotonic()
        rounds = 0

        def going_on() -> bool:
            in_time = time.monotonic() - started < self.max_seconds
            return not self._stop.is_set() and rounds < self.max_rounds and in_time

        try:
            while going_on():
                rounds += 1
                for request in (self._log_metric, self._read_artifact):
                    self.sent += 1
                    failure = request(rounds)
                    if failure:
                        self.failures.append(f"request {self.sent} at {time.monotonic() - started:.1f} s: {failure}")
                    else:
                        now = time.monotonic()
                        self.longest_gap = max(self.longest_gap, now - self._last_success)
                        self._last_success = now
                time.sleep(self.pause_seconds)
        finally:
            self.duration = time.monotonic() - started

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes] | str:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=REQUEST_TIMEOUT_SECONDS)
        headers = {**self._headers, **({"Content-Type": "application/json"} if body is not None else {})}
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            return f"{type(error).__name__}: {error}"
        finally:
            connection.close()

    def _log_metric(self, step: int) -> str:
        body = json.dumps({"run_id": self.target.run_id, "key": "drill", "value": float(step),
                           "timestamp": int(time.time() * 1000), "step": step}).encode()
        answer = self._request("POST", "/api/2.0/mlflow/runs/log-metric", body)
        if isinstance(answer, str):
            return answer
        status, content = answer
        return "" if status == 200 else f"log-metric HTTP {status}: {content[:200]!r}"

    def _read_artifact(self, _step: int) -> str:
        answer = self._request("GET", f"/api/2.0/mlflow-artifacts/artifacts/{quote(self.target.artifact_path)}")
        if isinstance(answer, str):
            return answer
        status, content = answer
        if status != 200:
            return f"artifact HTTP {status}: {content[:200]!r}"
        if hashlib.sha256(content).hexdigest() != self.target.artifact_sha256:
            return f"artifact of {len(content)} bytes, not the {self.target.artifact_path} logged"
        return ""
