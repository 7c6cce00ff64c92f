"""GenAI jobs (`jobRunner`): the UI's "run judge on traces" and "run evaluation" endpoints queue real
jobs on the loopback stack, and MLflow's job runner runs them.

The scorer is MLflow's deterministic ResponseLength (no LLM is reachable here, and none is needed for
the endpoints, the queue and the runner to be proven). With the job runner off (the default), the same
request is MLflow's HTTP 500 "job execution feature is not enabled".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests.host.conftest import require_host_binaries
from tests.support import loopback

pytestmark = pytest.mark.host

SCORER_INVOKE = "/ajax-api/3.0/mlflow/scorer/invoke"
EVALUATE_INVOKE = "/ajax-api/3.0/mlflow/genai/evaluate/invoke"
JOB = "/ajax-api/3.0/mlflow/jobs/{job_id}"
JOB_STATUSES = {"PENDING", "RUNNING", "SUCCEEDED", "FAILED", "TIMEOUT", "CANCELED", "NEEDS_RECOVERY"}
JOB_WAIT_SECONDS = 240.0


@pytest.fixture(scope="module")
def jobs_stack() -> Iterator[loopback.LoopbackStack]:
    """The stack with `jobRunner: true` (the rendered unit's MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true)."""
    require_host_binaries()
    with loopback.LoopbackStack(job_runner=True) as stack:
        yield stack


def admin(stack: loopback.LoopbackStack) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.auth = (stack.admin_username, stack.admin_password)
    return session


def serialized_response_length() -> str:
    from mlflow.genai.scorers.builtin_scorers import ResponseLength

    return json.dumps(ResponseLength(max_length=1000).model_dump())


def experiment_with_a_trace(stack: loopback.LoopbackStack, name: str) -> tuple[str, str]:
    """An experiment holding one trace (logged through nginx by MLflow's tracing client)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(stack.tracking_uri)
    experiment_id = client.create_experiment(name)
    trace = client.start_trace("answer", inputs={"question": "what is 2 + 2?"}, experiment_id=experiment_id)
    client.end_trace(trace.trace_id, outputs={"answer": "4"})
    mlflow.flush_trace_async_logging()
    deadline = time.monotonic() + 60
    while client.search_traces(locations=[experiment_id]) == []:
        assert time.monotonic() < deadline, "the trace never reached the server"
        time.sleep(0.5)
    return experiment_id, trace.trace_id


@pytest.fixture
def as_admin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[loopback.LoopbackStack], None]]:
    """Points MLflow's client (tracking URI, credentials) at a stack, as its admin, for this test."""
    import mlflow

    def use(stack: loopback.LoopbackStack) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", stack.tracking_uri)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack.admin_username)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.admin_password)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        mlflow.set_tracking_uri(stack.tracking_uri)  # the tracing exporter reads the global URI

    previous = mlflow.get_tracking_uri()
    yield use
    mlflow.set_tracking_uri(previous)


def job_after_running(session: requests.Session, stack: loopback.LoopbackStack, job_id: str) -> dict[str, Any]:
    """The job's record once it stopped running (or at the deadline), read through the API."""
    deadline = time.monotonic() + JOB_WAIT_SECONDS
    while True:
        response = session.get(stack.tracking_uri + JOB.format(job_id=job_id), timeout=30)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        assert job["status"] in JOB_STATUSES, job
        if job["status"] not in ("PENDING", "RUNNING") or time.monotonic() > deadline:
            return job
        time.sleep(1.0)


def test_judging_traces_from_the_ui_queues_a_job_that_the_runner_runs(jobs_stack, as_admin):
    as_admin(jobs_stack)
    experiment_id, trace_id = experiment_with_a_trace(jobs_stack, "genai-jobs-scorer")
    with admin(jobs_stack) as session:
        response = session.post(jobs_stack.tracking_uri + SCORER_INVOKE, timeout=60, json={
            "experiment_id": experiment_id, "serialized_scorer": serialized_response_length(),
            "trace_ids": [trace_id], "log_assessments": True})
        assert response.status_code == 200, response.text
        (job,) = response.json()["jobs"]
        assert job["trace_ids"] == [trace_id]
        finished = job_after_running(session, jobs_stack, job["job_id"])
    assert finished["status"] == "SUCCEEDED", finished


def test_an_evaluation_from_the_ui_queues_a_job_and_creates_its_run(jobs_stack, as_admin):
    """The job is queued and run; on MLflow 3.17.2 with basic-auth it then fails (README, "GenAI jobs"):
    it calls the tracking API with the server's internal token, which basic-auth trusts only on
    /gateway/ routes. A release that fixes this fails here, and the README's caveat goes."""
    from mlflow.tracking import MlflowClient

    as_admin(jobs_stack)
    experiment_id, trace_id = experiment_with_a_trace(jobs_stack, "genai-jobs-evaluate")
    with admin(jobs_stack) as session:
        response = session.post(jobs_stack.tracking_uri + EVALUATE_INVOKE, timeout=60, json={
            "experiment_id": experiment_id, "trace_ids": [trace_id],
            "serialized_scorers": [serialized_response_length()]})
        assert response.status_code == 200, response.text
        body = response.json()
        finished = job_after_running(session, jobs_stack, body["job_id"])
    assert finished["status"] == "FAILED", finished
    assert "401" in finished["error_message"], finished
    run = MlflowClient(jobs_stack.tracking_uri).get_run(body["run_id"])
    assert run.info.experiment_id == experiment_id


def test_without_the_job_runner_the_ui_endpoints_say_it_is_off(loopback_stack, as_admin):
    as_admin(loopback_stack)
    experiment_id, trace_id = experiment_with_a_trace(loopback_stack, "genai-jobs-off")
    with admin(loopback_stack) as session:
        response = session.post(loopback_stack.tracking_uri + SCORER_INVOKE, timeout=60, json={
            "experiment_id": experiment_id, "serialized_scorer": serialized_response_length(),
            "trace_ids": [trace_id]})
    assert response.status_code == 500
    assert "job execution feature is not enabled" in response.text
