"""Traces on a shared server (issue 23, holes 1 and 2), through nginx on the team's loopback stack (new work
private by default): a hostile teammate, "mallory", knows the id of another user's trace and writes to it
from her own experiment, through StartTraceV3 (`POST /api/3.0/mlflow/traces` and its `/ajax-api/` twin)
and through OTLP (`POST /v1/traces` with her experiment in `x-mlflow-experiment-id`). Both are refused
and the trace stays its owner's, untouched; the owner's and the admin's own tracing, MLflow's client
retrying an upload included, keeps working.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.support.loopback import LoopbackStack

pytestmark = pytest.mark.host

OTLP_TRACES = "/v1/traces"
START_TRACE_PATHS = ("/api/3.0/mlflow/traces", "/ajax-api/3.0/mlflow/traces")


@dataclass
class Member:
    base: str
    username: str
    password: str

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        with requests.Session() as session:
            session.trust_env = False
            return session.request(method, self.base + path, auth=(self.username, self.password), timeout=30,
                                   **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(method, path, **kwargs)
        assert response.status_code == 200, f"{self.username} {method} {path}: {response.status_code} {response.text}"
        body: dict[str, Any] = response.json() if response.content.strip() else {}
        return body

    def experiment(self) -> str:
        name = f"{self.username}-traces-{secrets.token_hex(3)}"
        experiment_id: str = self.ok("POST", "/api/2.0/mlflow/experiments/create", json={"name": name})[
            "experiment_id"]
        return experiment_id


@dataclass
class Team:
    admin: Member
    owner: Member
    mallory: Member
    owner_experiment: str
    mallory_experiment: str
    owner_trace: dict[str, Any]  # the owner's trace info as the server stored it, spans logged by MLflow's client


def member(admin: Member, prefix: str) -> Member:
    person = Member(admin.base, f"{prefix}-{secrets.token_hex(3)}", secrets.token_urlsafe(18))
    admin.ok("POST", "/api/2.0/mlflow/users/create", json={"username": person.username, "password": person.password})
    return person


@pytest.fixture
def as_member(monkeypatch: pytest.MonkeyPatch, team_stack: LoopbackStack):
    """MLflow's own client, logged in as `person` (through nginx)."""
    import mlflow

    def log_in(person: Member) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", person.username)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", person.password)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        mlflow.set_tracking_uri(team_stack.tracking_uri)

    yield log_in
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def trace_with_client(experiment_id: str, name: str) -> str:
    """A trace of two spans, logged by MLflow's client as its tracing does (OTLP spans, then StartTraceV3)."""
    import mlflow

    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_span(name=name) as root:
        root.set_inputs({"question": "what is in the private experiment?"})
        with mlflow.start_span(name=f"{name}-child") as child:
            child.set_outputs({"answer": "the owner's data"})
        trace_id: str = root.trace_id
    mlflow.flush_trace_async_logging()
    return trace_id


def trace_info(member_: Member, trace_id: str) -> dict[str, Any]:
    info: dict[str, Any] = member_.ok("GET", f"/api/3.0/mlflow/traces/{trace_id}")["trace"]["trace_info"]
    return info


SUMMARY_FIELDS = ("trace_location", "request_time", "execution_duration", "state", "request_preview",
                  "response_preview")


def summary(info: dict[str, Any]) -> dict[str, Any]:
    """What a write to the trace would change: where it lives and what its list row shows."""
    return {key: info.get(key) for key in SUMMARY_FIELDS}


def spans_of(member_: Member, trace_id: str) -> list[str]:
    traces = member_.ok("GET", "/api/3.0/mlflow/traces/batchGet", params={"trace_ids": trace_id})["traces"]
    return sorted(span["name"] for trace in traces for span in trace.get("spans", []))


@pytest.fixture(scope="module")
def team(team_stack: LoopbackStack) -> Iterator[Team]:
    admin = Member(team_stack.tracking_uri, team_stack.admin_username, team_stack.admin_password)
    owner, mallory = member(admin, "owner"), member(admin, "mallory")
    owner_experiment, mallory_experiment = owner.experiment(), mallory.experiment()
    with pytest.MonkeyPatch.context() as patch:
        import mlflow

        patch.setenv("MLFLOW_TRACKING_USERNAME", owner.username)
        patch.setenv("MLFLOW_TRACKING_PASSWORD", owner.password)
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        mlflow.set_tracking_uri(team_stack.tracking_uri)
        try:
            trace_id = trace_with_client(owner_experiment, "owner-agent")
        finally:
            mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    yield Team(admin, owner, mallory, owner_experiment, mallory_experiment, trace_info(owner, trace_id))


def start_trace_body(trace_id: str, experiment_id: str, request_time_ms: int | None = None) -> dict[str, Any]:
    """A StartTraceV3 body as MLflow's client sends it (TraceInfo.to_proto, as JSON)."""
    from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
    from mlflow.entities import TraceInfo, TraceLocation, TraceState

    info = TraceInfo(trace_id=trace_id, trace_location=TraceLocation.from_experiment_id(experiment_id),
                     request_time=request_time_ms if request_time_ms is not None else int(time.time() * 1000),
                     state=TraceState.OK, execution_duration=7, request_preview="mallory's request",
                     response_preview="mallory's response")
    return {"trace": {"trace_info": MessageToDict(info.to_proto(), preserving_proto_field_name=True)}}


def otlp_body(trace_id: str, span_name: str, *, start_ns: int = 0) -> dict[str, Any]:
    """An OTLP/JSON export of one root span in the MLflow trace `trace_id` ("tr-" + the OTel trace id)."""
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [{
        "traceId": trace_id.removeprefix("tr-"), "spanId": secrets.token_hex(8), "name": span_name,
        "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + 1000),
        "status": {"code": 1}}]}]}]}


def otlp_export(person: Member, experiment_id: str, body: dict[str, Any]) -> requests.Response:
    return person.request("POST", OTLP_TRACES, json=body, headers={"x-mlflow-experiment-id": experiment_id})


def refused(response: requests.Response, status: int, error_code: str) -> bool:
    return response.status_code == status and response.json().get("error_code") == error_code


# --- 1. another user's trace moved into one's own experiment ------------------------------------


@pytest.mark.parametrize("path", START_TRACE_PATHS)
def test_a_trace_id_of_another_users_trace_cannot_be_started_in_ones_own_experiment(team, path):
    trace_id = team.owner_trace["trace_id"]
    hijack = team.mallory.request("POST", path, json=start_trace_body(trace_id, team.mallory_experiment))

    assert refused(hijack, 403, "PERMISSION_DENIED"), f"{hijack.status_code} {hijack.text}"
    assert summary(trace_info(team.owner, trace_id)) == summary(team.owner_trace)
    assert team.mallory.request("GET", f"/api/3.0/mlflow/traces/{trace_id}").status_code == 403


def test_the_refusal_does_not_tell_mallory_where_the_trace_lives(team):
    hijack = team.mallory.request("POST", START_TRACE_PATHS[0],
                                  json=start_trace_body(team.owner_trace["trace_id"], team.mallory_experiment))
    assert team.owner_experiment not in hijack.text


def test_even_the_admin_cannot_move_a_trace_to_another_experiment(team):
    trace_id = team.owner_trace["trace_id"]
    moved = team.admin.request("POST", START_TRACE_PATHS[0], json=start_trace_body(trace_id, team.mallory_experiment))
    assert refused(moved, 400, "INVALID_PARAMETER_VALUE"), f"{moved.status_code} {moved.text}"
    assert summary(trace_info(team.owner, trace_id)) == summary(team.owner_trace)


# --- 2. spans injected into another user's trace --------------------------------------------------


def test_spans_cannot_be_appended_to_another_users_trace_through_otlp(team):
    trace_id = team.owner_trace["trace_id"]
    injected = otlp_export(team.mallory, team.mallory_experiment, otlp_body(trace_id, "mallory-span"))

    assert refused(injected, 403, "PERMISSION_DENIED"), f"{injected.status_code} {injected.text}"
    assert spans_of(team.owner, trace_id) == ["owner-agent", "owner-agent-child"]
    assert summary(trace_info(team.owner, trace_id)) == summary(team.owner_trace)


def test_an_otlp_batch_touching_another_users_trace_is_refused_whole(team):
    own_trace = "tr-" + secrets.token_hex(16)
    body = otlp_body(own_trace, "mallory-own-span")
    body["resourceSpans"] += otlp_body(team.owner_trace["trace_id"], "mallory-span")["resourceSpans"]

    injected = otlp_export(team.mallory, team.mallory_experiment, body)

    assert refused(injected, 403, "PERMISSION_DENIED"), f"{injected.status_code} {injected.text}"
    assert team.admin.request("GET", f"/api/3.0/mlflow/traces/{own_trace}").status_code == 404


# --- what tracing does every day ------------------------------------------------------------------


def test_the_owner_retrying_the_start_of_his_own_trace_succeeds(team):
    trace_id = team.owner_trace["trace_id"]
    for path in START_TRACE_PATHS:
        retried = team.owner.ok("POST", path, json={"trace": {"trace_info": team.owner_trace}})
        assert retried["trace"]["trace_info"]["trace_id"] == trace_id
    assert trace_info(team.owner, trace_id)["trace_location"] == team.owner_trace["trace_location"]


def test_a_members_client_traces_into_her_own_experiment_and_reads_it_back(team, as_member):
    as_member(team.mallory)
    trace_id = trace_with_client(team.mallory_experiment, "mallory-agent")
    assert spans_of(team.mallory, trace_id) == ["mallory-agent", "mallory-agent-child"]
    assert trace_info(team.mallory, trace_id)["trace_location"]["mlflow_experiment"]["experiment_id"] == \
        team.mallory_experiment


def test_more_spans_for_ones_own_trace_are_accepted(team):
    trace_id = "tr-" + secrets.token_hex(16)
    for name in ("first-export", "second-export"):
        exported = otlp_export(team.mallory, team.mallory_experiment, otlp_body(trace_id, name, start_ns=10**18))
        assert exported.status_code == 200, exported.text
    assert spans_of(team.mallory, trace_id) == ["first-export", "second-export"]


def test_the_admin_traces_into_a_members_experiment(team, as_member):
    as_member(team.admin)
    trace_id = trace_with_client(team.owner_experiment, "admin-agent")
    assert spans_of(team.owner, trace_id) == ["admin-agent", "admin-agent-child"]
