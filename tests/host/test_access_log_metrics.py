"""nginx's JSON access log on the shared loopback stack, fed to the stack's metric filters: real requests
(a login, a refused one, a missing page, and 503s while the database is down) become exactly the lines
the Requests, ServerErrors and Latency filters count (components/host_logs.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from components.host_logs import ACCESS_LOG_METRICS, AccessLogMetric
from naming import LATENCY_METRIC, REQUESTS_METRIC, SERVER_ERRORS_METRIC
from tests.support import log_filter_patterns
from tests.support.loopback import LoopbackStack
from userdata import monitoring

pytestmark = pytest.mark.host

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
RECOVERY_SECONDS = 60
LOG_DEADLINE_SECONDS = 10


def filter_for(name: str) -> AccessLogMetric:
    (found,) = [metric for metric in ACCESS_LOG_METRICS if metric.metric == name]
    return found


def wait_for_lines(path: Path, offset: int, count: int) -> list[str]:
    deadline = time.monotonic() + LOG_DEADLINE_SECONDS
    while True:
        lines = path.read_bytes()[offset:].decode().splitlines()
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


@pytest.fixture(scope="module")
def traffic(loopback_stack: LoopbackStack) -> tuple[list[int], list[str]]:
    """The statuses nginx answered, in order, and the access log lines written meanwhile."""
    log = loopback_stack.path(monitoring.ACCESS_LOG)
    offset = log.stat().st_size if log.exists() else 0
    base = loopback_stack.tracking_uri
    admin = (loopback_stack.admin_username, loopback_stack.admin_password)
    statuses = [
        requests.get(f"{base}{SEARCH}", auth=admin, timeout=60).status_code,
        requests.get(f"{base}{SEARCH}", auth=(loopback_stack.admin_username, "wrong-password"), timeout=60).status_code,
        requests.get(f"{base}/no-such-page", auth=admin, timeout=60).status_code,
    ]
    requests.get(f"{base}/health", timeout=60)  # Route 53's checks: not logged
    loopback_stack.stop_postgres()
    try:
        statuses += [requests.get(f"{base}{SEARCH}", auth=admin, timeout=60).status_code for _ in range(2)]
    finally:
        loopback_stack.start_postgres()
    deadline = time.monotonic() + RECOVERY_SECONDS
    while requests.get(f"{base}{SEARCH}", auth=admin, timeout=60).status_code != 200:
        assert time.monotonic() < deadline, "the stack did not serve again after the database came back"
        time.sleep(0.5)
    lines = wait_for_lines(log, offset, len(statuses))
    return statuses, lines[:len(statuses)]


def test_the_requests_meant_a_success_a_refusal_a_miss_and_server_errors(traffic: tuple[list[int], list[str]]) -> None:
    assert traffic[0] == [200, 401, 404, 503, 503]


def test_nginx_writes_one_json_object_per_request_with_the_fields_the_filters_read(
    traffic: tuple[list[int], list[str]],
) -> None:
    statuses, lines = traffic
    events = [json.loads(line) for line in lines]
    assert [event["status"] for event in events] == statuses
    expected_keys = [key for key, _, _ in monitoring.ACCESS_LOG_FIELDS]
    for event in events:
        assert list(event) == expected_keys
        assert isinstance(event["request_time"], (int, float)) and event["request_time"] >= 0
        assert event["method"] == "GET"


def test_health_checks_and_query_strings_stay_out_of_the_log(traffic: tuple[list[int], list[str]]) -> None:
    paths = [json.loads(line)["path"] for line in traffic[1]]
    assert "/health" not in paths
    assert all("?" not in path for path in paths)


def test_the_log_names_the_user_and_never_the_password(loopback_stack: LoopbackStack,
                                                       traffic: tuple[list[int], list[str]]) -> None:
    assert json.loads(traffic[1][0])["user"] == loopback_stack.admin_username
    assert all(loopback_stack.admin_password not in line and "wrong-password" not in line for line in traffic[1])


def test_the_request_filter_counts_every_logged_request(traffic: tuple[list[int], list[str]]) -> None:
    requests_filter = filter_for(REQUESTS_METRIC)
    counted = [log_filter_patterns.metric_value(requests_filter.value, line) for line in traffic[1]
               if log_filter_patterns.matches(requests_filter.pattern, line)]
    assert counted == [1.0] * len(traffic[0])


def test_the_server_error_filter_counts_exactly_the_5xx_answers(traffic: tuple[list[int], list[str]]) -> None:
    errors = filter_for(SERVER_ERRORS_METRIC)
    published = [log_filter_patterns.metric_value(errors.value, line)
                 if log_filter_patterns.matches(errors.pattern, line) else errors.default_value
                 for line in traffic[1]]
    assert published == [1.0 if status >= 500 else 0 for status in traffic[0]]
    assert sum(value or 0 for value in published) == 2


def test_the_latency_filter_publishes_each_requests_seconds(traffic: tuple[list[int], list[str]]) -> None:
    latency = filter_for(LATENCY_METRIC)
    published = [log_filter_patterns.metric_value(latency.value, line) for line in traffic[1]
                 if log_filter_patterns.matches(latency.pattern, line)]
    assert published == [json.loads(line)["request_time"] for line in traffic[1]]
