"""The fleet on 127.0.0.1 (tests/support/fleet_loopback.py): hosts rendered from the fleet's user data
share one PostgreSQL and one moto, behind nginx standing in for the load balancer.

One module, one fleet: two hosts started at the same moment against an empty database, a login checked
across them, then one host drained, replaced by a host of a newer release and put back while a client
logs in through the stand-in. Every server is stopped by PID in the fixture's teardown.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import importlib.metadata
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import userdata
from host_programs import configure
from tests.host.conftest import require_host_binaries
from tests.support import loopback, ports
from tests.support.fleet_loopback import FleetHost, LoginLoop, StandInLoadBalancer, fleet_settings
from tests.support.loopback import LOOPBACK, LoopbackStack
from userdata import layout

pytestmark = pytest.mark.host

CONFIGURE_TIMEOUT_SECONDS = 240.0
FLEET_USER, FLEET_PASSWORD = "fleet-user", "a-fleet-password-0123"
LOGIN_LOOP_MAX_REQUESTS = 5000
LOGIN_LOOP_MAX_SECONDS = 420.0


@dataclasses.dataclass
class Fleet:
    primary: LoopbackStack
    hosts: list[LoopbackStack]
    balancer: StandInLoadBalancer
    configure_results: list[int]
    tables_before: int


def request(port: int, method: str, path: str, *, user: str, password: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Authorization": f"Basic {token}", **(headers or {})})
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read().decode(errors="replace")
    finally:
        connection.close()


def as_admin(host: LoopbackStack, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
    return request(host.nginx_port, method, path, user=host.admin_username, password=host.admin_password, **kwargs)


def create_user(host: LoopbackStack, username: str, password: str) -> None:
    status, _, body = as_admin(host, "POST", "/api/2.0/mlflow/users/create",
                               body=json.dumps({"username": username, "password": password}).encode(),
                               headers={"Content-Type": "application/json"})
    assert status == 200, body


def start_servers_together(hosts: list[LoopbackStack]) -> None:
    errors: list[BaseException] = []

    def launch(host: LoopbackStack) -> None:
        try:
            host.launch_server()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=launch, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=loopback.STARTUP_TIMEOUT_SECONDS + 30)
    if errors:
        raise errors[0]


def start_host(host: LoopbackStack) -> None:
    host.start_mlflow()
    host.start_nginx()


def newer_release() -> str:
    """A later patch release of the MLflow under test, for the replacement host's user data."""
    major, minor, patch = (int(part) for part in re.findall(r"\d+", importlib.metadata.version("mlflow"))[:3])
    return f"{major}.{minor}.{patch + 1}"


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    require_host_binaries()
    primary = LoopbackStack(fleet_settings(), start=False)
    hosts: list[LoopbackStack] = [primary]
    balancer: StandInLoadBalancer | None = None
    try:
        primary.prepare()
        primary.start_postgres()
        hosts.append(FleetHost(primary, fleet_settings()))
        with loopback.autocommit_cursor(primary.postgres_dsn) as cursor:
            cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            tables_before = cursor.fetchone()[0]
        # Both configure steps at the same moment, as a fleet's hosts boot on its first `pulumi up`.
        processes = [host.configure_in_background() for host in hosts]
        results = []
        for process in processes:
            try:
                results.append(process.wait(timeout=CONFIGURE_TIMEOUT_SECONDS))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
                results.append(-1)
        if all(code == 0 for code in results):
            start_servers_together(hosts)
            for host in hosts:
                host.start_nginx()
            balancer = StandInLoadBalancer(primary.root / "stand-in-alb", [host.nginx_port for host in hosts])
            balancer.start()
            create_user(primary, FLEET_USER, FLEET_PASSWORD)
        yield Fleet(primary, hosts, balancer, results, tables_before)  # type: ignore[arg-type]
    finally:
        if balancer is not None:
            balancer.stop()
        for host in reversed(hosts):  # the primary, which owns PostgreSQL and moto, last
            host.close()


def test_nginx_accepts_the_load_balancer_site() -> None:
    require_host_binaries()
    stack = LoopbackStack(fleet_settings(), start=False)
    try:
        stack.write_host_files()
        conf = stack.nginx_config([layout.NGINX_HTTP_SITE])
        result = subprocess.run(stack.nginx_command(conf, "-t"), capture_output=True, text=True, timeout=60,
                                check=False)
    finally:
        stack.close()
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr


def configure_logs(fleet: Fleet) -> str:
    return "\n".join(host.configure_log.read_text(errors="replace") for host in fleet.hosts)


def test_two_hosts_started_together_on_an_empty_database_are_healthy_with_one_schema(fleet: Fleet) -> None:
    assert fleet.tables_before == 0
    assert fleet.configure_results == [0, 0], configure_logs(fleet)
    for host in fleet.hosts:
        status, _, _ = request(host.nginx_port, "GET", "/health", user="", password="")
        assert status == 200
        assert "holding the schema lock" in host.configure_log.read_text()
    with loopback.autocommit_cursor(fleet.primary.postgres_dsn) as cursor:
        cursor.execute("SELECT version_num FROM alembic_version")
        tracking = cursor.fetchall()
    with loopback.autocommit_cursor(fleet.primary.auth_postgres_dsn) as cursor:
        cursor.execute("SELECT version_num FROM alembic_version_auth")
        auth = cursor.fetchall()
        cursor.execute("SELECT count(*) FROM users WHERE username = %s", (fleet.primary.admin_username,))
        admins = cursor.fetchone()[0]
    assert len(tracking) == 1 and len(auth) == 1 and admins == 1


def test_the_stand_in_reaches_both_hosts_through_their_load_balancer_site(fleet: Fleet) -> None:
    for _ in range(4):  # round robin: two rounds over two hosts
        status, _, body = request(fleet.balancer.port, "GET", f"/api/2.0/mlflow/users/get?username={FLEET_USER}",
                                  user=FLEET_USER, password=FLEET_PASSWORD)
        assert status == 200, body
    for host in fleet.hosts:
        served = (host.logs / "nginx-access.log").read_text()
        assert "/api/2.0/mlflow/users/get" in served


def test_a_login_made_on_one_host_works_on_the_other(fleet: Fleet) -> None:
    first, second = fleet.hosts
    # A user created through one host authenticates on the other: one user store.
    status, _, body = request(second.nginx_port, "GET", f"/api/2.0/mlflow/users/get?username={FLEET_USER}",
                              user=FLEET_USER, password=FLEET_PASSWORD)
    assert status == 200 and FLEET_USER in body
    # A browser session (its cookie and CSRF token) made on one host is honored by the other: one secret key.
    status, headers, page = as_admin(first, "GET", "/signup")
    assert status == 200, page
    assert "set-cookie" in headers, headers
    cookie = headers["set-cookie"].split(";", 1)[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    form = urllib.parse.urlencode({"csrf_token": token.group(1), "username": "session-user",
                                   "password": "a-session-password-0123"}).encode()
    status, _, body = as_admin(second, "POST", "/api/2.0/mlflow/users/create-ui", body=form,
                               headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, body
    status, _, body = request(first.nginx_port, "GET", "/api/2.0/mlflow/users/get?username=session-user",
                              user="session-user", password="a-session-password-0123")
    assert status == 200, body
    # ...and a CSRF token the other host did not sign is refused, so the check above is a real one.
    forged = form.replace(b"csrf_token=", b"csrf_token=x")
    status, _, _ = as_admin(second, "POST", "/api/2.0/mlflow/users/create-ui", body=forged,
                            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400


def test_a_configure_step_waits_while_another_host_holds_the_schema_lock(fleet: Fleet) -> None:
    host = fleet.hosts[0]
    log_start = host.configure_log.stat().st_size
    with loopback.autocommit_cursor(host.postgres_dsn) as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", (configure.SCHEMA_LOCK_KEY,))
        process = host.configure_in_background()
        try:
            deadline = time.monotonic() + 60
            while "another host is creating or upgrading" not in _log_since(host, log_start):
                assert process.poll() is None and time.monotonic() < deadline, _log_since(host, log_start)
                time.sleep(0.2)
            assert process.poll() is None  # still waiting: nothing upgraded, nothing written
            assert "wrote " not in _log_since(host, log_start)
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (configure.SCHEMA_LOCK_KEY,))
        assert process.wait(timeout=CONFIGURE_TIMEOUT_SECONDS) == 0, _log_since(host, log_start)
    assert "holding the schema lock" in _log_since(host, log_start)


def _log_since(host: LoopbackStack, offset: int) -> str:
    with host.configure_log.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def test_a_host_drained_replaced_by_a_newer_release_and_put_back_fails_no_request(fleet: Fleet) -> None:
    survivor, leaving = fleet.hosts
    client = LoginLoop(fleet.balancer.port, FLEET_USER, FLEET_PASSWORD,
                       max_requests=LOGIN_LOOP_MAX_REQUESTS, max_seconds=LOGIN_LOOP_MAX_SECONDS)
    client.start()
    try:
        client.wait_for(successes=20, timeout=60)
        # Drain: out of the target group, in-flight requests finished; then the host stops.
        fleet.balancer.set_targets([survivor.nginx_port])
        leaving.close()
        fleet.hosts.remove(leaving)
        client.wait_for(successes=10, timeout=60)
        # The replacement: user data of a newer release, the same database, the schema lock.
        replacement = FleetHost(fleet.primary, fleet_settings(mlflow_version=newer_release()))
        fleet.hosts.append(replacement)
        assert newer_release() in replacement.files["/usr/local/sbin/mlflow-install"]
        start_host(replacement)
        fleet.balancer.set_targets([survivor.nginx_port, replacement.nginx_port])
        deadline = time.monotonic() + 60
        while "/api/2.0/mlflow/users/get" not in _access_log(replacement) and time.monotonic() < deadline:
            time.sleep(0.2)
        client.wait_for(successes=20, timeout=60)
    finally:
        client.stop()
    print(f"\nfleet rolling replacement through the stand-in: {client.sent} logins sent, "
          f"{len(client.failures)} failed, in {client.duration:.1f} s")
    assert client.failures == [], client.failures[:5]
    assert "/api/2.0/mlflow/users/get" in _access_log(replacement), "the replacement never served a login"
    assert "holding the schema lock" in replacement.configure_log.read_text()



def _access_log(host: LoopbackStack) -> str:
    path = host.logs / "nginx-access.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_the_login_loop_counts_a_request_the_stand_in_cannot_serve(tmp_path: Path) -> None:
    """The zero above is a count that can be non-zero: a target with nothing listening fails requests."""
    require_host_binaries()
    balancer = StandInLoadBalancer(tmp_path, [ports.free_port()])
    try:
        # /health of the stand-in itself fails too with no live target: start without waiting for it.
        balancer.start_without_health_check()
        client = LoginLoop(balancer.port, FLEET_USER, FLEET_PASSWORD, max_requests=5, max_seconds=30)
        client.start()
        client.join()
    finally:
        balancer.stop()
    assert client.sent == 5 and len(client.failures) == 5
    assert all("HTTP 502" in failure for failure in client.failures)


def test_cloud_init_accepts_the_fleets_document(tmp_path: Path) -> None:
    if shutil.which("cloud-init") is None:
        pytest.skip("cloud-init is not installed (Debian package cloud-init)")
    path = tmp_path / "user-data"
    path.write_text(userdata.render(fleet_settings()))
    result = subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0 and "Valid cloud-config" in result.stdout, result.stdout + result.stderr
