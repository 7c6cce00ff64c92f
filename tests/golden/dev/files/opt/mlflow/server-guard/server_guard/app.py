from __future__ import annotations

import os
from typing import Any

from flask import Response, request

from server_guard import locations, sources, users


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
        location: str = _get_request_message(CreateExperiment()).artifact_location
        return location

    @catch_mlflow_exception
    def guard_request() -> Response | None:
        return locations.artifact_location_refusal(request, paths, artifact_location)

    flask_app.before_request(guard_request)


def create_app() -> Any:
    sources.require_source_regex(os.environ)
    from mlflow.server import app as flask_app
    from mlflow.server.auth import create_app as create_basic_auth_app

    served = create_basic_auth_app(flask_app)
    install_rules(flask_app)
    return served
