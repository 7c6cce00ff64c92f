from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from server_guard.authority import Authority, Login, Scope

FLASK_SERVED = "mlflow_aws.flask_served"
RUN_CACHE_SIZE = 65536


class BasicAuthMismatch(RuntimeError):
    """This MLflow's basic-auth is not the one the guard was written against."""


def flask_served(fastapi_app: Any) -> Callable[[Scope], bool]:
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
        if native_validator(scope) is not None:
            def check() -> str | None:
                user = auth._authenticate_fastapi_request(Request(scope))
                return None if user is None else str(user.username)
        else:
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
    validators = auth.BEFORE_REQUEST_VALIDATORS
    read_scorer, read_experiment = auth.validate_can_read_scorer, auth.validate_can_read_experiment
    replaced: dict[Callable[[], bool], Callable[[], bool]] = {
        auth.validate_can_list_users: lambda: False,
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
    original = getattr(auth, "_run_requirement", None)
    if original is None:
        return

    @functools.lru_cache(maxsize=RUN_CACHE_SIZE)
    def remembered(run_id: str, action: str) -> tuple[Any, tuple[Any, ...]]:
        resolved = original(run_id, action)
        if resolved is None:
            raise LookupError(run_id)
        anchor, requirements = resolved
        return anchor, tuple(requirements)

    def run_requirement(run_id: str, action: str) -> tuple[Any, list[Any]] | None:
        try:
            anchor, requirements = remembered(run_id, action)
        except LookupError:
            return None
        return anchor, list(requirements)

    auth._run_requirement = run_requirement
