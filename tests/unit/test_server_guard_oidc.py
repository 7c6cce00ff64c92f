"""The server guard's auth: oidc parts on their own: which CreateExperiment paths it finds in this MLflow,
and that only admins get the users list. The guard behind nginx with the plugin: tests/host/test_oidc_*."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import pytest

from server_guard import oidc


@dataclass(frozen=True)
class SignedIn:
    username: str
    is_admin: bool


def call(scope_extra: dict[str, Any], method: str, path: str) -> tuple[int, Any, bool]:
    """(status, JSON body, whether the inner app ran) for one request through the middleware."""
    reached: list[bool] = []
    sent: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": method, "path": path, "headers": [], **scope_extra}
    asyncio.run(oidc.AdminsOnlyUsersList(inner, "auth")(scope, receive, send))
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), bool(reached)


@pytest.mark.parametrize("path", ["/api/2.0/mlflow/users", "/ajax-api/2.0/mlflow/users", "/api/2.0/mlflow/users/"])
def test_a_non_admin_is_refused_the_users_list_with_json(path: str) -> None:
    status, body, reached = call({"auth": SignedIn("alice@example.com", False)}, "GET", path)
    assert (status, reached) == (403, False)
    assert body["error_code"] == "PERMISSION_DENIED"


def test_an_admin_gets_the_users_list() -> None:
    assert call({"auth": SignedIn("boss@example.com", True)}, "GET", "/api/2.0/mlflow/users") == (200, [], True)


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/2.0/mlflow/users/current"),
                                              ("POST", "/api/2.0/mlflow/users"),
                                              ("GET", "/api/2.0/mlflow/experiments/search")])
def test_other_routes_are_left_to_the_plugin(method: str, path: str) -> None:
    assert call({"auth": SignedIn("alice@example.com", False)}, method, path)[2]


def test_the_create_experiment_paths_are_the_ones_mlflow_serves() -> None:
    from mlflow.server import app as flask_app

    assert oidc.create_experiment_paths(flask_app) == {
        "/api/2.0/mlflow/experiments/create", "/ajax-api/2.0/mlflow/experiments/create"}
