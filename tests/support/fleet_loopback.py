"""A fleet on 127.0.0.1: hosts rendered from the fleet's user data, one PostgreSQL, one moto, and nginx
standing in for the Application Load Balancer.

    primary = LoopbackStack(fleet_settings(), start=False)   # owns PostgreSQL, moto and the parameters
    primary.prepare(); primary.start_postgres()
    second = FleetHost(primary, fleet_settings())             # its own tree, ports, MLflow and nginx
    balancer = StandInLoadBalancer(root, [primary.nginx_port, second.nginx_port])

Each host is a LoopbackStack (tests/support/loopback.py): the rendered configure step and mlflow.service
command, and the rendered nginx site "behind a load balancer". The stand-in does what the ALB does for
these tests: it forwards to the hosts' nginx on their HTTP ports with X-Forwarded-For/-Proto, never
retries a failed request on another host (so every failure reaches the client), and `set_targets`
deregisters or registers a host by rewriting its upstream and reloading gracefully: the old workers
finish their in-flight requests before they exit, which is what the deregistration delay gives.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import loopback
from tests.support.loopback import LOOPBACK, LoopbackError, LoopbackStack
from tests.support.ports import free_port
from userdata.settings import HostSettings

RELOAD_TIMEOUT_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 15.0
# The loopback's "VPC": the stand-in reaches the hosts' nginx from 127.0.0.1.
LOOPBACK_VPC = "127.0.0.0/8"


def fleet_settings(**overrides: Any) -> HostSettings:
    """loopback_settings as host_settings.behind_load_balancer shapes them: no public IP, behind a
    load balancer whose addresses are in LOOPBACK_VPC."""
    return loopback.loopback_settings(public_ip="", load_balancer_cidr=LOOPBACK_VPC, **overrides)


class FleetHost(LoopbackStack):
    """Another host of the fleet: its own tree, ports, MLflow and nginx, the primary's PostgreSQL,
    moto, SSM parameters and instance role (as every host of a stack reads the same ones)."""

    def __init__(self, primary: LoopbackStack, settings: HostSettings, **stack_options: Any) -> None:
        super().__init__(settings, start=False, **stack_options)
        self.postgres = primary.postgres
        self.moto = primary.moto
        self.imds = primary.imds
        self.parameters = primary.parameters
        self.admin_username, self.admin_password = primary.admin_username, primary.admin_password
        self._prepared = True
        self.write_host_files()

    def close_steps(self) -> tuple[Callable[[], None], ...]:
        """This host's own servers only; the shared ones belong to the primary."""
        return (self.stop_nginx, self.stop_mlflow)


def _children(parent: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] != "Z":
                found.add(int(entry.name))
    return found


class StandInLoadBalancer:
    """nginx on a free loopback port, forwarding to the hosts' nginx like the ALB's target group. With `tls`
    (certificate, key, and the CA bundle that trusts them) it serves HTTPS, as the ALB does."""

    def __init__(self, root: Path, target_ports: list[int], *, port: int | None = None,
                 tls: tuple[Path, Path, Path] | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.tls = tls
        self.log = root / "error.log"
        self.access_log = root / "access.log"
        self.targets = root / "targets.conf"
        self.process: subprocess.Popen[bytes] | None = None
        for directory in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        self._write_targets(target_ports)
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        listen = f"        listen {LOOPBACK}:{self.port};\n"
        if tls:
            listen = (f"        listen {LOOPBACK}:{self.port} ssl;\n"
                      f"        ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};\n")
        self.conf = root / "nginx.conf"
        self.conf.write_text(
            f"{user}worker_processes 1;\npid {root}/nginx.pid;\nerror_log {self.log} info;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {self.access_log};\n"
            f"    client_body_temp_path {root}/client_body;\n    proxy_temp_path {root}/proxy;\n"
            f"    fastcgi_temp_path {root}/fastcgi;\n    uwsgi_temp_path {root}/uwsgi;\n"
            f"    scgi_temp_path {root}/scgi;\n"
            "    upstream fleet {\n"
            f"        include {self.targets};\n"
            "    }\n"
            "    server {\n"
            f"{listen}"
            "        location / {\n"
            "            proxy_pass http://fleet;\n"
            # The ALB sends one request to one target: a failure is the client's, not retried elsewhere.
            "            proxy_next_upstream off;\n"
            "            proxy_http_version 1.1;\n"
            '            proxy_set_header Connection "";\n'
            "            proxy_set_header Host $host;\n"
            "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
            "            proxy_set_header X-Forwarded-Proto https;\n"
            "            proxy_read_timeout 60s;\n"
            "        }\n"
            "    }\n"
            "}\n"
        )

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    def _write_targets(self, ports: list[int]) -> None:
        if not ports:
            raise LoopbackError("a target group with no targets would fail every request")
        self.targets.write_text("".join(f"server {LOOPBACK}:{port};\n" for port in ports))

    def start(self) -> None:
        process = self.start_without_health_check()
        loopback._wait_http(f"{self.url}/health", time.monotonic() + RELOAD_TIMEOUT_SECONDS,
                            alive=lambda: process.poll() is None, what="stand-in load balancer",
                            ca_bundle=self.tls[2] if self.tls else None)

    def start_without_health_check(self) -> subprocess.Popen[bytes]:
        nginx = shutil.which("nginx") or "nginx"
        with (self.root / "stdout.log").open("ab") as log:
            self.process = subprocess.Popen(
                [nginx, "-p", str(self.root), "-c", str(self.conf), "-e", str(self.log), "-g", "daemon off;"],
                stdout=log, stderr=log,
            )
        deadline = time.monotonic() + RELOAD_TIMEOUT_SECONDS
        while not _children(self.process.pid) and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LoopbackError(f"nginx exited: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        return self.process

    def set_targets(self, ports: list[int]) -> float:
        """Register exactly `ports`; returns once the workers that served the old set have finished their
        in-flight requests and exited (seconds it took)."""
        assert self.process is not None and self.process.poll() is None
        started = time.monotonic()
        old_workers = _children(self.process.pid)
        self._write_targets(ports)
        os.kill(self.process.pid, signal.SIGHUP)
        deadline = started + RELOAD_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            workers = _children(self.process.pid)
            if workers and not workers & old_workers:
                return time.monotonic() - started
            time.sleep(0.05)
        raise LoopbackError(f"nginx did not finish reloading in {RELOAD_TIMEOUT_SECONDS:.0f} s: "
                            f"{self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        loopback._stop_process(self.process, group=False)
        self.process = None


@dataclasses.dataclass
class LoginLoop:
    """A client that authenticates (HTTP basic, as MLflow's clients do) through the stand-in in a loop,
    one new connection per request, and counts every request that does not come back 200 with the
    user it asked for. Bounded by `max_requests` and `max_seconds`, and by `stop()`."""

    port: int
    username: str
    password: str
    max_requests: int
    max_seconds: float
    pause_seconds: float = 0.02
    sent: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    duration: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="login-loop", daemon=True)
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Host": f"{LOOPBACK}:{self.port}"}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self) -> None:
        """Wait for the loop to end by its own bounds (or a stop)."""
        self._thread.join(timeout=self.max_seconds + REQUEST_TIMEOUT_SECONDS)

    def wait_for(self, successes: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        target = self.sent - len(self.failures) + successes
        while self.sent - len(self.failures) < target:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise LoopbackError(f"the login loop made {self.sent} requests, {len(self.failures)} failed")
            time.sleep(0.05)

    def _run(self) -> None:
        started = time.monotonic()
        try:
            while (not self._stop.is_set() and self.sent < self.max_requests
                   and time.monotonic() - started < self.max_seconds):
                self.sent += 1
                failure = self._one_login()
                if failure:
                    self.failures.append(f"request {self.sent}: {failure}")
                time.sleep(self.pause_seconds)
        finally:
            self.duration = time.monotonic() - started

    def _one_login(self) -> str:
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=REQUEST_TIMEOUT_SECONDS)
        try:
            connection.request("GET", f"/api/2.0/mlflow/users/get?username={self.username}", headers=self._headers)
            response = connection.getresponse()
            body = response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as error:
            return f"{type(error).__name__}: {error}"
        finally:
            connection.close()
        if response.status != 200 or f'"username": "{self.username}"' not in body.replace('":"', '": "'):
            return f"HTTP {response.status}: {body[:200]}"
        return ""
