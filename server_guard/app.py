"""The entry point: basic-auth's app, the guard's rules in its validators and Flask hooks, and the gate
(server_guard.gate) around the whole ASGI app, outside basic-auth's own middleware; or, when mlflow.service
says auth oidc, mlflow-oidc-auth's app under the guard's rules for it (server_guard/oidc.py)."""

from __future__ import annotations

import os
from typing import Any

from flask import Response, request

from server_guard import AUTH_VARIABLE, BODY_LIMIT_BYTES, basic_auth, locations, sources, traces
from server_guard.gate import Answer, Gate
from server_guard.ledger import PostgresLedger
from server_guard.throttle import LoginThrottle


def install_rules(flask_app: Any) -> None:
    from mlflow.protos.service_pb2 import CreateExperiment
    from mlflow.server import auth
    from mlflow.server.handlers import _get_request_message, catch_mlflow_exception

    basic_auth.harden_validators(auth)
    basic_auth.cache_run_experiments(auth)
    basic_auth.remember_users_per_request(auth)
    paths = locations.create_experiment_paths(auth.BEFORE_REQUEST_VALIDATORS.items(),
                                              auth.validate_can_create_experiment)
    if not paths:
        raise basic_auth.BasicAuthMismatch("server_guard: this MLflow's basic-auth has no experiments/create validator")

    def artifact_location() -> str:
        location: str = _get_request_message(CreateExperiment()).artifact_location  # type: ignore[no-untyped-call]
        return location

    @catch_mlflow_exception  # type: ignore[untyped-decorator]
    def guard_request() -> Response | None:
        return locations.artifact_location_refusal(request, paths, artifact_location)

    flask_app.before_request(guard_request)


def unauthenticated_answer(flask_app: Any, auth: Any) -> Answer:
    """basic-auth's own 401, as its Flask hook sends it."""
    with flask_app.app_context():
        response = auth.make_basic_auth_response()
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items()
               if name.lower() != "content-length"]
    return Answer(response.status_code, response.get_data(), headers)


def install_gate(served: Any, flask_app: Any) -> None:
    from mlflow.server import auth
    from mlflow.server.handlers import _get_tracking_store
    from mlflow.tracing.utils.otlp import OTLP_TRACES_PATH

    if not hasattr(served, "add_middleware"):
        raise basic_auth.BasicAuthMismatch("server_guard: MLflow must serve its ASGI app (uvicorn)")

    def trace_homes(trace_ids: list[str]) -> dict[str, str]:
        found = _get_tracking_store().batch_get_trace_infos(trace_ids)
        return {str(info.trace_id): str(info.experiment_id) for info in found}

    served_by_flask = basic_auth.flask_served(served)
    ledger = PostgresLedger(auth.store.engine)
    throttle = LoginThrottle(ledger)
    ledger.watch(throttle.changed)
    served.add_middleware(
        Gate,
        authority=basic_auth.authority(auth, served_by_flask),
        throttle=throttle,
        unauthenticated=unauthenticated_answer(flask_app, auth),
        held_whole=served_by_flask,
        trace_writes={OTLP_TRACES_PATH: traces.otlp_write,
                      **dict.fromkeys(traces.start_trace_paths(), traces.start_trace_write)},
        trace_homes=trace_homes,
        body_limit=BODY_LIMIT_BYTES,
    )


def create_app() -> Any:
    sources.require_source_regex(os.environ)
    auth = os.environ.get(AUTH_VARIABLE, "basic")
    if auth == "oidc":
        from server_guard import oidc

        return oidc.create_app()
    if auth != "basic":
        raise RuntimeError(f"server_guard: {AUTH_VARIABLE} is {auth!r}; expected basic or oidc "
                           "(mlflow.service sets it)")
    from mlflow.server import app as flask_app
    from mlflow.server.auth import create_app as create_basic_auth_app

    served = create_basic_auth_app(flask_app)
    install_rules(flask_app)
    install_gate(served, flask_app)
    return served
