"""The open internet at the front door (issue 23, holes 3 to 5), through nginx on the shared loopback stack:
anonymous bodies MLflow would hold whole, slow clients, and password guessing. Every client here comes
from its own loopback address (127.x.y.z), as nginx sees it, so the per-address limits of one test never
reach another's.
"""

from __future__ import annotations

import itertools
import secrets
import socket
import time
from collections.abc import Iterator

import pytest

import server_guard
from server_guard import ledger, throttle
from tests.support import raw_http
from tests.support.loopback import LoopbackStack, autocommit_cursor
from userdata import nginx

pytestmark = pytest.mark.host

MIB = 1024 * 1024
# Under nginx's limit, so MLflow is the one to refuse it (a larger declared body nginx refuses itself, 413).
ANONYMOUS_BODY = server_guard.BODY_LIMIT_BYTES - MIB
# What MLflow may hold of a refused body: the first chunks nginx and uvicorn have in flight.
HELD_AT_MOST_KIB = 32 * 1024
_addresses = itertools.count(10)


def fresh_address() -> str:
    """A loopback address no other test of this module uses."""
    number = next(_addresses)
    return f"127.0.{number // 250 + 23}.{number % 250 + 2}"


def create_user(stack: LoopbackStack) -> tuple[str, str]:
    username, password = f"member-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    answer = raw_http.request(stack.nginx_port, "127.0.0.1", "POST", "/api/2.0/mlflow/users/create",
                              {"Authorization": raw_http.basic(stack.admin_username, stack.admin_password),
                               "Content-Type": "application/json"},
                              f'{{"username": "{username}", "password": "{password}"}}'.encode())
    assert answer.status == 200, answer.body
    return username, password


def whoami(stack: LoopbackStack, source: str, username: str, password: str) -> raw_http.Answer:
    return raw_http.request(stack.nginx_port, source, "GET", "/api/2.0/mlflow/users/current",
                            {"Authorization": raw_http.basic(username, password)})


def growth_kib(stack: LoopbackStack, before: dict[int, tuple[int, int]]) -> int:
    after = raw_http.peak_memory_kib(before)
    return max(after[pid][0] - rss for pid, (_, rss) in before.items())


@pytest.fixture
def quiet_peaks(loopback_stack: LoopbackStack) -> Iterator[dict[int, tuple[int, int]]]:
    pids = loopback_stack.mlflow_process_ids()
    raw_http.reset_peak_memory(pids)
    yield raw_http.peak_memory_kib(pids)


# --- 3. bodies MLflow would read whole before the login ------------------------------------------


@pytest.mark.parametrize("path", [
    "/api/2.0/mlflow/experiments/create",
    "/ajax-api/2.0/mlflow/runs/log-batch",
    "/graphql",
    "/api/2.0/mlflow-artifacts/mpu/create/1/run/artifacts/model.bin",
])
def test_an_anonymous_body_is_refused_before_mlflow_holds_it(loopback_stack, quiet_peaks, path):
    answer = raw_http.stream_until_answered(loopback_stack.nginx_port, fresh_address(), path, ANONYMOUS_BODY)

    assert answer.status == 401
    assert growth_kib(loopback_stack, quiet_peaks) < HELD_AT_MOST_KIB


def test_a_body_with_a_wrong_password_is_refused_before_mlflow_holds_it(loopback_stack, quiet_peaks):
    wrong = {"Authorization": raw_http.basic(loopback_stack.admin_username, "not-the-password")}
    answer = raw_http.stream_until_answered(loopback_stack.nginx_port, fresh_address(),
                                            "/api/2.0/mlflow/experiments/create", ANONYMOUS_BODY, wrong)

    assert answer.status == 401
    assert growth_kib(loopback_stack, quiet_peaks) < HELD_AT_MOST_KIB


def test_an_anonymous_body_larger_than_any_request_is_refused_by_nginx(loopback_stack, quiet_peaks):
    answer = raw_http.stream_until_answered(loopback_stack.nginx_port, fresh_address(),
                                            "/api/2.0/mlflow/experiments/create", 300 * MIB)
    assert answer.status == 413
    assert growth_kib(loopback_stack, quiet_peaks) < HELD_AT_MOST_KIB


def test_an_anonymous_body_of_unknown_size_is_refused_before_mlflow_holds_it(loopback_stack, quiet_peaks):
    answer = raw_http.stream_until_answered(loopback_stack.nginx_port, fresh_address(),
                                            "/api/2.0/mlflow/experiments/create", 300 * MIB, chunked=True)
    assert answer.status == 401
    assert growth_kib(loopback_stack, quiet_peaks) < HELD_AT_MOST_KIB


def test_a_logged_in_body_past_mlflows_largest_request_is_refused(loopback_stack):
    admin = {"Authorization": raw_http.basic(loopback_stack.admin_username, loopback_stack.admin_password)}
    answer = raw_http.stream_until_answered(loopback_stack.nginx_port, fresh_address(),
                                            "/api/2.0/mlflow/runs/log-batch", server_guard.BODY_LIMIT_BYTES + 1, admin)
    assert answer.status == 413


def test_an_artifact_larger_than_any_json_request_still_uploads(loopback_stack):
    admin = {"Authorization": raw_http.basic(loopback_stack.admin_username, loopback_stack.admin_password)}
    size = server_guard.BODY_LIMIT_BYTES + MIB
    with raw_http.connect(loopback_stack.nginx_port, fresh_address(), timeout=120) as sock:
        sock.sendall(raw_http.head("PUT", "/api/2.0/mlflow-artifacts/artifacts/0/front-door/large.bin",
                                   {**admin, "Content-Length": str(size), "Connection": "close"}))
        for offset in range(0, size, MIB):
            sock.sendall(b"\0" * min(MIB, size - offset))
        answer = raw_http.read_answer(sock, size, time.monotonic() + 120)
    assert answer.status == 200, answer.body


# --- 4. slow clients ------------------------------------------------------------------------------


def test_one_address_has_a_bounded_number_of_requests_in_flight_and_monitors_are_never_refused(loopback_stack):
    attacker, admin = fresh_address(), raw_http.basic(loopback_stack.admin_username, loopback_stack.admin_password)
    slow = {"Authorization": admin, "Content-Type": "application/json", "Content-Length": "1000"}
    held: list[socket.socket] = []
    try:
        for _ in range(nginx.REQUESTS_PER_ADDRESS):
            sock = raw_http.half_sent(loopback_stack.nginx_port, attacker, "POST", "/api/2.0/mlflow/runs/log-batch",
                                      slow, finish_headers=True)
            sock.sendall(b'{"run_id": ')
            held.append(sock)
        deadline = time.monotonic() + 30
        extra = raw_http.request(loopback_stack.nginx_port, attacker, "GET", "/api/2.0/mlflow/users/current",
                                 {"Authorization": admin})
        while extra.status != 429 and time.monotonic() < deadline:  # until nginx has counted every held one
            time.sleep(0.2)
            extra = raw_http.request(loopback_stack.nginx_port, attacker, "GET", "/api/2.0/mlflow/users/current",
                                     {"Authorization": admin})
        health = raw_http.request(loopback_stack.nginx_port, attacker, "GET", "/health")
        neighbour = raw_http.request(loopback_stack.nginx_port, fresh_address(), "GET",
                                     "/api/2.0/mlflow/users/current", {"Authorization": admin})
    finally:
        for sock in held:
            sock.close()

    assert extra.status == 429
    assert health.status == 200
    assert neighbour.status == 200


def test_a_request_whose_headers_never_end_is_dropped(loopback_stack):
    sock = raw_http.half_sent(loopback_stack.nginx_port, fresh_address(), "GET", "/health", {}, finish_headers=False)
    deadline = time.monotonic() + 30
    closed = False
    with sock:
        while not closed and time.monotonic() < deadline:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                closed = sock.recv(65536) == b""
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
    assert closed


# --- 5. password guessing -------------------------------------------------------------------------


def test_every_mlflow_worker_hears_of_failed_logins_as_they_happen(loopback_stack):
    (exec_start,) = loopback_stack.unit["ExecStart"]
    words = exec_start.split()
    workers = int(words[words.index("--workers") + 1])
    deadline, listeners = time.monotonic() + 30, 0
    while listeners < workers and time.monotonic() < deadline:
        with autocommit_cursor(loopback_stack.auth_postgres_dsn) as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (ledger.LISTENER,))
            (listeners,) = cursor.fetchone()
        time.sleep(0.2)
    assert listeners >= workers


def test_wrong_passwords_from_one_address_are_throttled_before_any_password_is_checked(loopback_stack):
    guesser = fresh_address()
    username, password = create_user(loopback_stack)
    for attempt in range(throttle.LIMIT):
        assert whoami(loopback_stack, guesser, f"sprayed-{attempt}", "Winter2026!").status == 401

    guess = whoami(loopback_stack, guesser, "sprayed-next", "Winter2026!")
    right_but_throttled = whoami(loopback_stack, guesser, username, password)

    assert guess.status == 429
    assert 0 < int(guess.headers["retry-after"]) <= throttle.WINDOW_SECONDS
    assert guess.headers["content-type"] == "application/json"
    assert right_but_throttled.status == 429


def test_a_teammate_behind_the_guessers_address_still_logs_in(loopback_stack):
    office = fresh_address()
    username, password = create_user(loopback_stack)
    assert whoami(loopback_stack, office, username, password).status == 200
    for attempt in range(throttle.LIMIT):
        whoami(loopback_stack, office, f"office-guess-{attempt}", "Summer2026!")
    assert whoami(loopback_stack, office, "office-guess-next", "Summer2026!").status == 429

    assert whoami(loopback_stack, office, username, password).status == 200


def test_a_guessed_user_name_is_throttled_while_its_owner_still_logs_in(loopback_stack):
    victim, password = create_user(loopback_stack)
    botnet = [fresh_address() for _ in range(throttle.LIMIT)]
    home = fresh_address()
    assert whoami(loopback_stack, home, victim, password).status == 200
    for address in botnet:
        assert whoami(loopback_stack, address, victim, "Autumn2026!").status == 401

    again = whoami(loopback_stack, botnet[0], victim, "Autumn2026!")

    assert again.status == 429
    assert whoami(loopback_stack, home, victim, password).status == 200
    assert whoami(loopback_stack, fresh_address(), victim, password).status == 200


def test_a_botnets_fresh_addresses_share_a_bounded_number_of_guesses(loopback_stack):
    victim, password = create_user(loopback_stack)
    home = fresh_address()
    assert whoami(loopback_stack, home, victim, password).status == 200
    answers = [whoami(loopback_stack, fresh_address(), victim, f"Winter{n}!").status
               for n in range(2 * throttle.LIMIT + 1)]

    assert answers == [401] * (2 * throttle.LIMIT) + [429]
    assert whoami(loopback_stack, home, victim, password).status == 200


def test_a_correct_login_is_never_counted_as_a_failure(loopback_stack):
    member = fresh_address()
    username, password = create_user(loopback_stack)
    answers = [whoami(loopback_stack, member, username, password).status for _ in range(throttle.LIMIT * 2)]
    assert answers == [200] * (throttle.LIMIT * 2)
