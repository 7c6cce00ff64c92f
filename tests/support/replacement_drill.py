"""The single host's replacement, replayed on loopback: the front (the Elastic IP, played by the fleet
loopback's never-retrying nginx stand-in) serves the old host; a new host boots beside it on the same
database; the gate opens when the new host's /health answers 200 through its own nginx (what
mlflow-health-report waits for before it reports); the front switches to the new host, and the old host
stops once its in-flight requests are done. A client (tests/support/client_loop.py) logs a metric and reads
a 10 MB artifact through the front the whole time; its failures and its longest gap are the figures.

With a release that migrates a schema, the old host runs the fence's watcher (FenceWatcher: fence.watch as
mlflow-fence runs it, its systemctl the host's own stop and start, its observation read from the stack's
PostgreSQL): the new host's configure step snapshots the database, raises the fence and ends the old
server's sessions; the old host stands aside (nginx answers 503) while the schemas migrate, and the client
counts those answers.

Used by bench/host_replacement.py (the figures).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import http.client
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from host_programs import fence
from tests.support import loopback
from tests.support.client_loop import ClientLoop, Target
from tests.support.fleet_loopback import StandInLoadBalancer
from tests.support.loopback import LoopbackStack
from userdata import layout

ARTIFACT_BYTES = 10 * 1024 * 1024
GATE_TIMEOUT_SECONDS = 600.0
CLIENT_MAX_SECONDS = 1800.0
CLIENT_MAX_ROUNDS = 100_000
FENCE_POLL_SECONDS = 2.0  # mlflow-fence's poll (userdata/handover.py)


class _Stopped(Exception):
    pass


class FenceWatcher:
    """mlflow-fence on a loopback host, in a thread: stands the host aside (its flag, its MLflow stopped)
    while another host migrates, or once the schemas are not the ones its server started with."""

    def __init__(self, host: LoopbackStack) -> None:
        self.host = host
        self.settings = fence.Settings(
            region=host.region, state_file=host.path(layout.CONFIGURE_STATE),
            host_id_file=host.path(layout.HOST_ID_FILE), flag=host.path(layout.FENCE_FLAG),
            unit=layout.UNIT_NAME, poll_seconds=FENCE_POLL_SECONDS)
        self.commands: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fence-watcher", daemon=True)

    def _observe(self) -> tuple[fence.FenceRow | None, tuple[list[str], list[str]] | None]:
        found: list[Any] = []
        for dsn, table in ((self.host.postgres_dsn, "alembic_version"),
                           (self.host.auth_postgres_dsn, "alembic_version_auth")):
            with loopback.autocommit_cursor(dsn) as cursor:
                if table == "alembic_version":
                    found.append(fence.read_row(cursor))
                cursor.execute(f"SELECT version_num FROM {table}")  # a fixed name
                found.append(sorted(row[0] for row in cursor.fetchall()))
        return found[0], (found[1], found[2])

    def _systemctl(self, command: list[str]) -> None:
        self.commands.append(command)
        if command[1] == "stop":
            self.host.stop_mlflow()
        elif command[1] == "start":
            self.host.start_mlflow()

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopped

    def _run(self) -> None:
        with contextlib.suppress(_Stopped):  # watch itself rides out the database's errors
            fence.watch(self.settings, self._observe, run=self._systemctl, sleep=self._sleep)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


@dataclasses.dataclass(frozen=True)
class DrillResult:
    sent: int
    failures: list[str]
    longest_gap: float  # seconds between two successful answers, at most
    switch_seconds: float  # the front's reload, until the old host's requests were done
    gate_seconds: float  # from the new host's start to its /health 200 through nginx


def _call(port: int, user: str, password: str, method: str, path: str, body: bytes | None = None,
          content_type: str = "application/json") -> tuple[int, bytes]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    connection = http.client.HTTPConnection(loopback.LOOPBACK, port, timeout=120)
    try:
        connection.request(method, path, body=body, headers={"Authorization": f"Basic {token}",
                                                              "Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def prepare_target(front: StandInLoadBalancer, host: LoopbackStack) -> Target:
    """A run and a 10 MB artifact of it, written to `host`'s nginx as the stack's admin (the stand-in keeps
    nginx's 1 MB default body limit; the drill only reads through it)."""
    user, password = host.admin_username, host.admin_password
    status, body = _call(host.nginx_port, user, password, "POST", "/api/2.0/mlflow/experiments/create",
                         json.dumps({"name": f"drill-{os.urandom(4).hex()}"}).encode())
    assert status == 200, body
    experiment = json.loads(body)["experiment_id"]
    status, body = _call(host.nginx_port, user, password, "POST", "/api/2.0/mlflow/runs/create",
                         json.dumps({"experiment_id": experiment}).encode())
    assert status == 200, body
    run = json.loads(body)["run"]["info"]["run_id"]
    content = os.urandom(ARTIFACT_BYTES)
    path = f"{experiment}/{run}/artifacts/drill.bin"
    status, body = _call(host.nginx_port, user, password, "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{quote(path)}",
                         content, "application/octet-stream")
    assert status == 200, body
    return Target(run, path, hashlib.sha256(content).hexdigest())


def wait_for_gate(host: LoopbackStack, deadline: float) -> None:
    """The new host's /health through its own nginx answers 200 (mlflow-health-report's condition)."""
    while True:
        try:
            connection = http.client.HTTPConnection(loopback.LOOPBACK, host.nginx_port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the new host's /health did not answer 200 through its nginx by the deadline")
        time.sleep(0.5)


def replace_host(front: StandInLoadBalancer, old: LoopbackStack, start_new: Callable[[], LoopbackStack],
                 target: Target, *, watch_fence: bool = False) -> tuple[LoopbackStack, DrillResult]:
    """The replacement under a client's load: (the new host, serving behind the front; the figures).
    `watch_fence`: the old host runs the fence's watcher meanwhile (a release that migrates)."""
    client = ClientLoop(front.url, old.admin_username, old.admin_password, target,
                        max_rounds=CLIENT_MAX_ROUNDS, max_seconds=CLIENT_MAX_SECONDS)
    watcher = FenceWatcher(old) if watch_fence else None
    if watcher is not None:
        watcher.start()
    client.start()
    try:
        client.wait_for(successes=10, timeout=120)
        started = time.monotonic()
        new = start_new()
        wait_for_gate(new, started + GATE_TIMEOUT_SECONDS)
        gate_seconds = time.monotonic() - started
        # The health report's poll (3 s at most) and the association's move are this switch.
        switch_seconds = front.set_targets([new.nginx_port])
        old.close()
        client.wait_for(successes=10, timeout=120)
    finally:
        client.stop()
        if watcher is not None:
            watcher.stop()
    return new, DrillResult(client.sent, list(client.failures), client.longest_gap, switch_seconds, gate_seconds)
