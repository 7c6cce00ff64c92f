"""The entry point: basic-auth's app, then the guard's rules on its Flask app (its hook runs after
basic-auth's, so a request without a valid login is answered 401 first); or, when mlflow.service says
auth oidc, mlflow-oidc-auth's app under the same rules (server_guard/oidc.py)."""

from __future__ import annotations

import os
from typing import Any

from flask import Response, request

from server_guard import AUTH_VARIABLE, locations, sources, users


def install_rules(flask_app: Any) -> None:
    from mlflow.protos.service_pb2 import CreateExperiment
    from mlflow.server import auth
    from mlflow.server.handlers import _get_request_message, catch_mlflow_exception

    if not users.restrict_to_admins(auth.BEFORE_REQUEST_VALIDATORS, auth.validate_can_list_users):
        raise RuntimeError("server_guard: this MLflow's basic-auth has no users/list validator")
    paths = locations.create_experiment_paths(auth.BEFORE_REQUEST_VALIDATORS.items(),
                                              auth.validate_can_create_experiment)
    if not paths:
        raise RuntimeError("server_guard: this MLflow's basic-auth has no experiments/create validator")

    def artifact_location() -> str:
        location: str = _get_request_message(CreateExperiment()).artifact_location  # type: ignore[no-untyped-call]
        return location

    @catch_mlflow_exception  # type: ignore[untyped-decorator]
    def guard_request() -> Response | None:
        return locations.artifact_location_refusal(request, paths, artifact_location)

    flask_app.before_request(guard_request)


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
    return served
