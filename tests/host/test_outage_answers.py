"""What reaches the outside when MLflow or its database fails (issue 18, hole 5), through nginx on the
shared loopback stack: nginx answers 502/503/504 itself with a generic error in MLflow's JSON format
(MLflow's own 503 names the database's address), passes MLflow's other answers through, and names no
version of itself. Each test that stops something starts it again.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.loopback import LoopbackStack
from userdata import layout

pytestmark = pytest.mark.host

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
GENERIC = {"error_code": "TEMPORARILY_UNAVAILABLE",
           "message": "The MLflow server is temporarily unavailable. Retry later."}
RECOVERY_SECONDS = 60


def get(stack: LoopbackStack, path: str, auth: tuple[str, str] | None, *, direct: bool = False) -> requests.Response:
    base = stack.direct_uri if direct else stack.tracking_uri
    return requests.get(f"{base}{path}", auth=auth, timeout=60)


def admin(stack: LoopbackStack) -> tuple[str, str]:
    return stack.admin_username, stack.admin_password


def wait_until_served(stack: LoopbackStack) -> None:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while time.monotonic() < deadline:
        if get(stack, SEARCH, admin(stack)).status_code == 200:
            return
        time.sleep(0.5)
    raise AssertionError("the stack did not serve again after the outage")


# The stock client's search, answered 503 (nginx's "combined" format: ... "POST /path HTTP/1.1" 503 ...).
SEARCH_ANSWERED_503 = re.compile(r'"(?:GET|POST) /api/2\.0/mlflow/experiments/search[?\S]* HTTP/[\d.]+" 503 ')
RETRY_SECONDS = 30


def wait_for_answers(log: Path, offset: int, answer: re.Pattern[str], *, count: int) -> None:
    """Until nginx's access log has gained `count` lines matching `answer` since `offset`, bounded."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        with log.open("rb") as handle:
            handle.seek(offset)
            seen = len(answer.findall(handle.read().decode(errors="replace")))
        if seen >= count:
            return
        assert time.monotonic() < deadline, f"{seen} of {count} answers matching {answer.pattern} in {log}"
        time.sleep(0.1)


def assert_generic(response: requests.Response, status: int, *, database: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == GENERIC
    assert database not in response.text
    assert response.headers["Server"] == "nginx"  # server_tokens off: no version


def test_a_database_outage_answers_a_generic_503_to_logins_and_to_wrong_ones(loopback_stack):
    database = f"port {loopback_stack.postgres.port}"
    loopback_stack.stop_postgres()
    try:
        direct = get(loopback_stack, SEARCH, admin(loopback_stack), direct=True)
        # The guard's gate checks the login first and answers MLflow's outage 503 itself, before MLflow's own
        # answer (which names the database's address) could; nginx's generic answer is the second line of defence.
        assert direct.status_code == 503 and database not in direct.text
        for auth in (admin(loopback_stack), (loopback_stack.admin_username, "not-the-password")):
            assert_generic(get(loopback_stack, SEARCH, auth), 503, database=database)
    finally:
        loopback_stack.start_postgres()
    wait_until_served(loopback_stack)


def test_mlflows_client_retries_through_a_database_outage(loopback_stack, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", loopback_stack.admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", loopback_stack.admin_password)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "6")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    client = MlflowClient(loopback_stack.tracking_uri)
    outcome: dict[str, Any] = {}

    def search() -> None:
        try:
            outcome["experiments"] = client.search_experiments(max_results=1)
        except Exception as error:  # reported by the assertion below
            outcome["error"] = error

    access_log = loopback_stack.logs / "nginx-access.log"
    logged_before = access_log.stat().st_size
    loopback_stack.stop_postgres()
    try:
        caller = threading.Thread(target=search)
        caller.start()
        wait_for_answers(access_log, logged_before, SEARCH_ANSWERED_503, count=2)  # met the 503, and retried
        assert caller.is_alive(), f"the client gave up after its first retry: {outcome}"
    finally:
        loopback_stack.start_postgres()
    caller.join(timeout=120)
    assert not caller.is_alive() and "error" not in outcome, outcome
    assert outcome["experiments"]


def test_mlflow_down_is_a_generic_502(loopback_stack):
    loopback_stack.stop_mlflow()
    try:
        assert_generic(get(loopback_stack, SEARCH, admin(loopback_stack)), 502, database="postgres")
        assert_generic(get(loopback_stack, "/health", None), 502, database="postgres")
    finally:
        loopback_stack.start_mlflow()
    wait_until_served(loopback_stack)


def test_mlflows_own_answers_pass_through_unchanged(loopback_stack):
    missing = get(loopback_stack, "/api/2.0/mlflow/experiments/get?experiment_id=987654321", admin(loopback_stack))
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    invalid = requests.post(f"{loopback_stack.tracking_uri}/api/2.0/mlflow/experiments/create", json={},
                            auth=admin(loopback_stack), timeout=30)
    assert invalid.status_code == 400 and invalid.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    anonymous = get(loopback_stack, SEARCH, None)
    assert anonymous.status_code == 401 and "not authenticated" in anonymous.text
    assert anonymous.headers["Server"] == "nginx"


def test_a_fenced_host_answers_every_request_503_in_mlflows_json_while_mlflow_still_runs(loopback_stack):
    """While another host migrates the schema, this host's fence flag makes nginx answer 503 (MLflow's
    clients retry it) to every request, /health included, so a load balancer takes the host out too."""
    flag = loopback_stack.path(layout.FENCE_FLAG)
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.touch()
    try:
        for path, auth in ((SEARCH, admin(loopback_stack)), ("/health", None), (SEARCH, None)):
            fenced = get(loopback_stack, path, auth)
            assert_generic(fenced, 503, database="postgres")
            assert fenced.headers["Retry-After"] == "10"
        assert get(loopback_stack, "/health", None, direct=True).status_code == 200, "MLflow itself was not asked"
    finally:
        flag.unlink()
    assert get(loopback_stack, SEARCH, admin(loopback_stack)).status_code == 200
