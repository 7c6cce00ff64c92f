"""The configure step (mlflow.service's ExecStartPre) when the stack is not ready: each test runs its
own short-lived loopback stack."""

from __future__ import annotations

import socket
import time

import pytest
import requests

import naming
from tests.host.conftest import require_host_binaries
from tests.support.loopback import LOOPBACK, ConfigureFailed, LoopbackStack
from userdata import layout

pytestmark = pytest.mark.host

POSTGRES_DELAY_SECONDS = 20
CONFIGURE_TIMEOUT_SECONDS = 120
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


@pytest.fixture
def stack():
    require_host_binaries()
    with LoopbackStack(start=False) as unstarted:
        unstarted.prepare()
        yield unstarted


def wait_for_log(stack: LoopbackStack, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.configure_log.exists() and text in stack.configure_log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in the configure log:\n{stack.configure_log.read_text()}")


def test_postgres_starting_20_s_after_the_configure_step_still_ends_healthy(stack):
    started = time.monotonic()
    configure = stack.configure_in_background()
    try:
        wait_for_log(stack, "PostgreSQL at", timeout=POSTGRES_DELAY_SECONDS)
        assert configure.poll() is None, "the configure step must wait for PostgreSQL, not give up"
        # The delay itself is the scenario under test (RDS coming up after the host).
        time.sleep(max(0.0, started + POSTGRES_DELAY_SECONDS - time.monotonic()))
        stack.start_postgres()
        assert configure.wait(timeout=CONFIGURE_TIMEOUT_SECONDS) == 0, stack.configure_log.read_text()
    finally:
        if configure.poll() is None:
            configure.kill()
            configure.wait(timeout=30)
    log = stack.configure_log.read_text()
    assert "not ready" in log
    assert "answers" in log

    stack.launch_server()
    assert requests.get(f"{stack.direct_uri}/health", timeout=10).text == "OK"
    login = requests.get(f"{stack.direct_uri}{SEARCH}", auth=(stack.admin_username, stack.admin_password),
                         timeout=10)
    assert login.status_code == 200


def test_a_missing_ssm_parameter_is_named_and_nothing_is_configured_or_started(stack):
    stack.start_postgres()
    missing = naming.parameter_name(stack.settings.ssm_prefix, naming.DB_PASSWORD)
    stack.ssm_client().delete_parameter(Name=missing)
    short_wait = {"MLFLOW_CONFIGURE_WAIT_SECONDS": "3"}

    result = stack.configure(env=short_wait)
    assert result.returncode != 0
    failure_lines = [line for line in result.stderr.splitlines() if "FAILED" in line]
    assert failure_lines and missing in failure_lines[-1], result.stderr
    assert not stack.path(layout.ENV_FILE).exists()
    assert not stack.path(layout.AUTH_CONFIG).exists()

    with pytest.raises(ConfigureFailed):
        stack.start_mlflow(env=short_wait)
    assert stack.mlflow_pid is None
    with pytest.raises(OSError), socket.create_connection((LOOPBACK, stack.mlflow_port), timeout=1):
        pass


def refusal_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "REFUSED" in line or "FAILED" in line]


def test_a_bad_ssm_value_is_named_in_one_line_and_only_the_last_good_configuration_ever_serves(stack):
    # A first start with a bad value: refused, nothing written, nothing to start with.
    port = naming.parameter_name(stack.settings.ssm_prefix, naming.DB_PORT)
    stack.ssm_client().put_parameter(Name=port, Value="54 32", Type="String", Overwrite=True)
    first = stack.configure()
    assert first.returncode != 0
    (line,) = refusal_lines(first.stderr)
    assert port in line and "TCP port" in line
    assert not stack.path(layout.ENV_FILE).exists()
    assert not stack.path(layout.AUTH_CONFIG).exists()

    # Fixed, a good start; then the admin password is rotated to one MLflow refuses (under 12 characters).
    stack.ssm_client().put_parameter(Name=port, Value=str(stack.postgres.port), Type="String", Overwrite=True)
    stack.start_postgres()
    assert stack.configure().returncode == 0
    good_password = stack.admin_password
    written = {path: stack.path(path).read_bytes() for path in (layout.ENV_FILE, layout.AUTH_CONFIG)}
    stack.set_admin_password("too-short")

    result = stack.configure()

    assert result.returncode == 0, result.stderr
    password = naming.parameter_name(stack.settings.ssm_prefix, naming.ADMIN_PASSWORD)
    (line,) = refusal_lines(result.stderr)
    assert password in line and "12 characters" in line and "last good configuration" in line
    assert "too-short" not in result.stderr
    assert {path: stack.path(path).read_bytes() for path in written} == written
    stack.launch_server()
    login = requests.get(f"{stack.direct_uri}{SEARCH}", auth=(stack.admin_username, good_password), timeout=10)
    assert login.status_code == 200
