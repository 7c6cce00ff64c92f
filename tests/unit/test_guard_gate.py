"""The guard's front door (server_guard.gate) as an ASGI middleware around a stand-in app: what it lets
through, what it answers itself, and what it never reads. Through nginx and MLflow:
tests/host/test_guard_front_door.py and tests/host/test_guard_traces.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from server_guard.authority import Authority
from server_guard.gate import Answer, Gate

OPEN = "/health"
FLASK, NATIVE, TRACES = "/api/2.0/mlflow/runs/log-batch", "/api/2.0/mlflow-artifacts/artifacts/x", "/v1/traces"
LIMIT = 1000
PASSWORDS = {"alice": "alice-password", "admin": "admin-password"}
UNAUTHENTICATED = Answer(401, b"You are not authenticated.", [(b"www-authenticate", b'Basic realm="mlflow"')])


@dataclass
class Throttle:
    wait: int | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    successes: list[tuple[str, str]] = field(default_factory=list)

    def retry_after(self, address: str, username: str) -> int | None:
        return self.wait

    def failed(self, address: str, username: str) -> None:
        self.failures.append((address, username))

    def succeeded(self, address: str, username: str) -> None:
        self.successes.append((address, username))


@dataclass
class App:
    """The stand-in for MLflow: reads the whole body, then answers `status` with `body`."""

    status: int = 200
    body: bytes = b"{}"
    chunks: list[bytes] | None = None
    received: bytes | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        data, more = b"", True
        while more:
            message = await receive()
            data += message.get("body", b"")
            more = message.get("more_body", False)
        self.received = data
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(self.body)).encode())]})
        for index, chunk in enumerate(self.chunks or [self.body]):
            await send({"type": "http.response.body", "body": chunk,
                        "more_body": index < len(self.chunks or [self.body]) - 1})


def login(scope: dict[str, Any]) -> tuple[str, Any] | None:
    headers = dict(scope["headers"])
    if b"authorization" not in headers:
        return None
    username, _, password = headers[b"authorization"].decode().partition(":")
    return username, lambda: username if PASSWORDS.get(username) == password else None


def gate(app: App, throttle: Throttle | None = None, homes: dict[str, str] | None = None) -> Gate:
    rules = Authority(login=login, needs_login=lambda scope: scope["path"] != OPEN,
                      is_admin=lambda user: user == "admin",
                      may_edit_experiment=lambda user, experiment: user == "admin" or experiment == "2")

    def trace_write(headers: dict[str, str], body: bytes) -> tuple[str, set[str]]:
        document = json.loads(body)
        return headers["x-mlflow-experiment-id"], set(document["trace_ids"])

    return Gate(app, authority=rules, throttle=throttle or Throttle(), unauthenticated=UNAUTHENTICATED,  # type: ignore[arg-type]
                held_whole=lambda scope: scope["path"] == FLASK, trace_writes={TRACES: trace_write},
                trace_homes=lambda ids: {i: (homes or {})[i] for i in ids if i in (homes or {})}, body_limit=LIMIT)


@dataclass
class Exchange:
    status: int
    headers: dict[bytes, bytes]
    body: bytes
    body_reads: int


def call(middleware: Gate, path: str, *, user: str | None = None, password: str | None = None, body: bytes = b"",
         chunk: int = 100, headers: dict[str, str] | None = None) -> Exchange:
    raw = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    if user is not None:
        raw.append((b"authorization", f"{user}:{password or PASSWORDS[user]}".encode()))
    method = "OPTIONS" if "Access-Control-Request-Method" in (headers or {}) else "POST"
    scope = {"type": "http", "method": method, "path": path, "headers": raw, "client": ("127.0.0.9", 5)}
    pieces = [body[start:start + chunk] for start in range(0, len(body), chunk)] or [b""]
    sent: list[MutableMapping[str, Any]] = []
    reads = 0

    async def receive() -> MutableMapping[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": pieces[reads - 1], "more_body": reads < len(pieces)}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    start = sent[0]
    return Exchange(start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:]), reads)


def test_a_request_without_a_login_is_answered_401_and_its_body_is_never_read():
    app = App()
    answer = call(gate(app), FLASK, body=b"x" * 5000)
    assert (answer.status, answer.body, answer.body_reads) == (401, UNAUTHENTICATED.body, 0)
    assert app.received is None


def test_a_wrong_password_is_answered_401_counted_and_its_body_never_read():
    app, throttle = App(), Throttle()
    answer = call(gate(app, throttle), NATIVE, user="alice", password="guess", body=b"x" * 5000)
    assert (answer.status, answer.body_reads, throttle.failures) == (401, 0, [("127.0.0.9", "alice")])


def test_a_throttled_login_is_answered_429_and_its_password_never_checked():
    throttle = Throttle(wait=42)
    answer = call(gate(App(), throttle), FLASK, user="alice", password="maybe-right")
    assert (answer.status, answer.headers[b"retry-after"]) == (429, b"42")
    assert json.loads(answer.body)["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert throttle.failures == throttle.successes == []


def test_nginx_names_the_client_the_throttle_counts():
    throttle = Throttle()
    call(gate(App(), throttle), FLASK, user="alice", headers={"X-Real-IP": "198.51.100.8"})
    assert throttle.successes == [("198.51.100.8", "alice")]


def test_a_browsers_cors_preflight_passes_without_a_login_but_its_body_is_still_capped():
    preflight = {"Origin": "https://mlflow.corp.example", "Access-Control-Request-Method": "POST"}
    app = App()
    assert call(gate(app), FLASK, headers=preflight, body=b"{}").status == 200
    assert call(gate(App()), FLASK, headers=preflight, body=b"y" * (LIMIT + 1)).status == 413


def test_open_routes_pass_without_a_login():
    app = App()
    assert call(gate(app), OPEN, body=b"ping").status == 200
    assert app.received == b"ping"


def test_a_held_body_is_passed_whole_up_to_the_limit():
    app = App()
    assert call(gate(app), FLASK, user="alice", body=b"y" * LIMIT).status == 200
    assert app.received == b"y" * LIMIT


@pytest.mark.parametrize("declared", [True, False])
def test_a_held_body_past_the_limit_is_answered_413(declared):
    headers = {"Content-Length": str(LIMIT + 1)} if declared else {}
    answer = call(gate(App()), FLASK, user="alice", body=b"y" * (LIMIT + 1), headers=headers)
    assert answer.status == 413 and json.loads(answer.body)["error_code"] == "INVALID_PARAMETER_VALUE"
    if declared:
        assert answer.body_reads == 0


def test_a_streamed_body_is_not_limited():
    app = App()
    assert call(gate(app), NATIVE, user="alice", body=b"z" * (LIMIT * 5)).status == 200
    assert app.received == b"z" * (LIMIT * 5)


def trace_body(*trace_ids: str) -> bytes:
    return json.dumps({"trace_ids": list(trace_ids)}).encode()


def test_a_trace_write_that_would_move_a_trace_is_refused_before_mlflow_sees_it():
    app = App()
    answer = call(gate(app, homes={"tr-1": "1"}), TRACES, user="alice", body=trace_body("tr-1"),
                  headers={"x-mlflow-experiment-id": "2"})
    assert json.loads(answer.body) == {"error_code": "PERMISSION_DENIED", "message": "Permission denied"}
    assert answer.status == 403 and app.received is None


def test_a_trace_write_into_the_traces_own_experiment_reaches_mlflow_whole():
    app, body = App(), trace_body("tr-1", "tr-new")
    answer = call(gate(app, homes={"tr-1": "2"}), TRACES, user="alice", body=body,
                  headers={"x-mlflow-experiment-id": "2"})
    assert answer.status == 200 and app.received == body


def test_an_unreadable_trace_write_is_refused():
    answer = call(gate(App()), TRACES, user="alice", body=b"{", headers={"x-mlflow-experiment-id": "2"})
    assert answer.status == 400


def test_an_error_answer_with_sql_is_scrubbed_and_its_length_follows():
    leaking = json.dumps({"error_code": "RESOURCE_ALREADY_EXISTS",
                          "message": "Experiment(name=x) already exists. Error: (psycopg2.errors.UniqueViolation) "
                                     "[SQL: INSERT INTO experiments ...]"}).encode()
    answer = call(gate(App(status=400, body=leaking, chunks=[leaking[:30], leaking[30:]])), FLASK, user="alice")
    assert answer.status == 400 and b"INSERT" not in answer.body
    assert int(answer.headers[b"content-length"]) == len(answer.body)
    assert json.loads(answer.body)["message"].startswith("Experiment(name=x) already exists.")


@pytest.mark.parametrize("status", [200, 404])
def test_other_answers_pass_unchanged(status):
    body = b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such run"}'
    answer = call(gate(App(status=status, body=body)), FLASK, user="alice")
    assert (answer.status, answer.body) == (status, body)


def test_refusals_are_mlflows_error_format():
    answer = call(gate(App()), FLASK, user="alice", body=b"y" * (LIMIT + 1))
    assert set(json.loads(answer.body)) == {"error_code", "message"}
    assert answer.headers[b"content-type"] == b"application/json"
