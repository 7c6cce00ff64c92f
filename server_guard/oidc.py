"""With auth oidc: mlflow-oidc-auth's app (its `oidc-auth` entry point) under the same rules as basic-auth's.

The plugin authenticates in FastAPI middleware (a session cookie, an access token as the basic-auth
password, or an identity provider's bearer token) and authorizes MLflow's Flask routes in Flask hooks.
The guard's rules keep their meaning: experiments get the server's own artifact location (a Flask hook,
after the plugin's, on the paths MLflow serves CreateExperiment on), and only admins list the users (the
plugin lets any signed-in user list every username). MLflow's own FastAPI security (Host header, CORS,
security headers), which MLflow adds around basic-auth's app and the plugin's app lacks, wraps it too.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from server_guard import locations

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

USERS_LIST_PATHS = frozenset({"/api/2.0/mlflow/users", "/ajax-api/2.0/mlflow/users"})
USERS_LIST_REFUSAL = {"error_code": "PERMISSION_DENIED", "message": "Only administrators may list the users."}


def create_experiment_paths(flask_app: Any) -> frozenset[str]:
    """The paths MLflow serves CreateExperiment on (its Flask rules name the handler)."""
    return frozenset(rule.rule for rule in flask_app.url_map.iter_rules()
                     if rule.endpoint == "_create_experiment" and "POST" in (rule.methods or ()))


class AdminsOnlyUsersList:
    """Answers 403 to a non-admin's GET of the users list. Runs inside the plugin's authentication, which
    leaves who is asking in the ASGI scope (`auth_context_key`)."""

    def __init__(self, app: ASGIApp, auth_context_key: str) -> None:
        self.app = app
        self.auth_context_key = auth_context_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].rstrip("/") in USERS_LIST_PATHS:
            context = scope.get(self.auth_context_key)
            if not getattr(context, "is_admin", False):
                body = json.dumps(USERS_LIST_REFUSAL).encode()
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def install_rules(flask_app: Any, oidc_app: Any) -> None:
    from flask import Response, request
    from mlflow.protos.service_pb2 import CreateExperiment
    from mlflow.server.handlers import _get_request_message, catch_mlflow_exception
    from mlflow_oidc_auth.entities.auth_context import AUTH_CONTEXT_KEY
    from starlette.middleware import Middleware

    paths = create_experiment_paths(flask_app)
    if not paths:
        raise RuntimeError("server_guard: this MLflow serves no experiments/create route")

    def artifact_location() -> str:
        location: str = _get_request_message(CreateExperiment()).artifact_location  # type: ignore[no-untyped-call]
        return location

    @catch_mlflow_exception  # type: ignore[untyped-decorator]
    def guard_request() -> Response | None:
        return locations.artifact_location_refusal(request, paths, artifact_location)

    flask_app.before_request(guard_request)
    # The end of the list is the innermost middleware: after the plugin's authentication, before its routes.
    oidc_app.user_middleware.append(Middleware(AdminsOnlyUsersList, auth_context_key=AUTH_CONTEXT_KEY))


def create_app() -> Any:
    from mlflow.server import app as flask_app
    from mlflow.server.fastapi_security import init_fastapi_security
    from mlflow_oidc_auth.app import app as oidc_app  # importing it builds the plugin's app around flask_app

    install_rules(flask_app, oidc_app)
    init_fastapi_security(oidc_app)
    return oidc_app
