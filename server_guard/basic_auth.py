"""MLflow's basic-auth app (mlflow.server.auth) under the guard: the Authority the guard's rules ask, in
basic-auth's own terms, and the guard's changes to basic-auth's table of validators.

Every answer comes from basic-auth's own functions, so the guard decides as basic-auth would, earlier:
who needs a login (its Flask hook asks every request but /health, static files and the public routes;
its FastAPI middleware asks the native routes it holds a validator for), whose credentials are good
(`_authenticate_cached`, the credential cache that basic_auth.ini's auth_cache_ttl_seconds turns on; the
gateway's own header and internal token through `_authenticate_fastapi_request`), who is an admin and
who may edit an experiment (its permission resolution).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from server_guard.authority import Authority, Login, Scope

FLASK_SERVED = "mlflow_aws.flask_served"
# Runs whose experiment is remembered (a run never changes experiment: MLflow has no API that moves one).
RUN_CACHE_SIZE = 65536


class BasicAuthMismatch(RuntimeError):
    """This MLflow's basic-auth is not the one the guard was written against."""


def flask_served(fastapi_app: Any) -> Callable[[Scope], bool]:
    """Is a request routed to MLflow's Flask app (the catch-all mount), as Starlette routes it? The answer
    is kept in the request's scope, which the guard asks twice."""
    from starlette.routing import Match, Mount

    native = [route for route in fastapi_app.routes if not isinstance(route, Mount)]

    def served(scope: Scope) -> bool:
        if FLASK_SERVED not in scope:
            scope[FLASK_SERVED] = not any(route.matches(scope)[0] == Match.FULL for route in native)
        return bool(scope[FLASK_SERVED])

    return served


def authority(auth: Any, served_by_flask: Callable[[Scope], bool]) -> Authority:
    from starlette.requests import Request
    from werkzeug.datastructures import Authorization

    if auth.auth_config.authorization_function != auth.DEFAULT_AUTHORIZATION_FUNCTION:
        raise BasicAuthMismatch("server_guard: basic_auth.ini names another authorization_function")

    def native_validator(scope: Scope) -> Any:
        return auth._find_fastapi_validator(scope["path"], scope["method"])

    def needs_login(scope: Scope) -> bool:
        if auth.is_unprotected_route(scope["path"]):
            return False
        return native_validator(scope) is not None or served_by_flask(scope)

    def login(scope: Scope) -> Login | None:
        headers = {name.lower(): value.decode("latin-1") for name, value in scope["headers"]}
        gateway = scope["path"].startswith("/gateway/") and headers.get(b"x-mlflow-authorization")
        credentials = Authorization.from_header(gateway or headers.get(b"authorization"))
        if credentials is None or credentials.type != "basic" or credentials.username is None:
            return None
        username, password = credentials.username, credentials.password or ""
        if native_validator(scope) is not None:  # basic-auth's FastAPI middleware: its own parsing and rules
            def check() -> str | None:
                user = auth._authenticate_fastapi_request(Request(scope))
                return None if user is None else str(user.username)
        else:  # its Flask hook: werkzeug's parsing, the credential cache
            def check() -> str | None:
                user = auth._authenticate_cached(username, password)
                return None if user is None else str(user.username)
        return username, check

    def is_admin(username: str) -> bool:
        return bool(auth.store.get_user(username).is_admin)

    def may_edit_experiment(username: str, experiment_id: str) -> bool:
        return is_admin(username) or bool(auth._get_experiment_permission(experiment_id, username).can_update)

    return Authority(login=login, needs_login=needs_login, is_admin=is_admin,
                     may_edit_experiment=may_edit_experiment)


def paths_checked_by(auth: Any, validator: Callable[[], bool]) -> list[tuple[str, str]]:
    return [key for key, check in auth.BEFORE_REQUEST_VALIDATORS.items() if check is validator]


def harden_validators(auth: Any) -> None:
    """users/list for admins only; demo/generate under demo/delete's rule; a scorer read also needs READ
    on its experiment (basic-auth checks only the scorer's own grant, which defaults to READ)."""
    validators = auth.BEFORE_REQUEST_VALIDATORS
    read_scorer, read_experiment = auth.validate_can_read_scorer, auth.validate_can_read_experiment
    replaced: dict[Callable[[], bool], Callable[[], bool]] = {
        auth.validate_can_list_users: lambda: False,  # basic-auth lets admins past every validator
        read_scorer: lambda: bool(read_experiment() and read_scorer()),
    }
    for validator, stricter in replaced.items():
        keys = paths_checked_by(auth, validator)
        if not keys:
            raise BasicAuthMismatch(f"server_guard: basic-auth no longer uses {validator.__name__}")
        validators.update(dict.fromkeys(keys, stricter))
    demo = {str(path).rsplit("/", 1)[-1]: (path, method) for path, method in validators
            if str(path).endswith(("/mlflow/demo/generate", "/mlflow/demo/delete"))}
    if set(demo) != {"generate", "delete"}:
        raise BasicAuthMismatch("server_guard: basic-auth no longer guards demo/generate and demo/delete")
    validators[demo["generate"]] = validators[demo["delete"]]


def remember_users_per_request(auth: Any) -> None:
    """basic-auth looks the caller up again for each question within one request (is she an admin, what
    may her id do); within a request the answer cannot change, so it is looked up once."""
    from flask import g, has_request_context

    fetch = auth.store.get_user

    def get_user(username: str) -> Any:
        if not has_request_context():
            return fetch(username)
        users = g.setdefault("mlflow_aws_users", {})
        if username not in users:
            users[username] = fetch(username)
        return users[username]

    auth.store.get_user = get_user


def cache_run_experiments(auth: Any) -> None:
    """basic-auth fetches the whole run (tags, params, latest metrics) on every run-scoped request only to
    learn its experiment; the guard remembers that experiment, never the permission decided from it.
    An MLflow without that helper (before 3.17: a stack pinned to an older release, or the old host of an
    upgrade) keeps asking basic-auth on every request, as it did before: the cache is only a saving."""
    original = getattr(auth, "_run_requirement", None)
    if original is None:
        return

    @functools.lru_cache(maxsize=RUN_CACHE_SIZE)
    def remembered(run_id: str, action: str) -> tuple[Any, tuple[Any, ...]]:
        resolved = original(run_id, action)
        if resolved is None:
            raise LookupError(run_id)  # a run that does not exist is not remembered
        anchor, requirements = resolved
        return anchor, tuple(requirements)

    def run_requirement(run_id: str, action: str) -> tuple[Any, list[Any]] | None:
        try:
            anchor, requirements = remembered(run_id, action)
        except LookupError:
            return None
        return anchor, list(requirements)  # callers append to the list

    auth._run_requirement = run_requirement
