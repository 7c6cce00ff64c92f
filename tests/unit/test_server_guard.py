"""The server guard on its own (server_guard/): its decisions, and that it finds in this MLflow's
basic-auth exactly the routes it acts on. The guard behind nginx: tests/host/test_server_guard.py."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomllib
from flask import Flask

import server_guard
from server_guard import basic_auth, locations, sources

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("source", [
    "runs:/0123456789abcdef/model",
    "models:/team-model/3",
    "models:/m-0123456789abcdef",
    "mlflow-artifacts:/1/0123456789abcdef/artifacts/model",
    "dummy-source",
    "prompt-template",
])
def test_sources_the_server_hands_out_are_allowed(source):
    assert sources.source_allowed(source)


@pytest.mark.parametrize("source", [
    "s3://bucket/1/0123456789abcdef/artifacts",
    "file:///etc",
    "/var/lib/mlflow",
    "https://example.com/model.tar.gz",
    "gs://bucket/model",
    "dummy-source/../../etc",
    "xruns:/0123/model",
    "",
])
def test_any_other_source_is_refused(source):
    assert not sources.source_allowed(source)


def test_the_pattern_is_a_systemd_environment_value_as_it_stands():
    assert not re.search(r"[\s\\%\"']", sources.MODEL_VERSION_SOURCE_REGEX)


def test_the_guard_needs_mlflows_source_setting():
    with pytest.raises(sources.GuardSettingMissing, match=sources.SOURCE_REGEX_VARIABLE):
        sources.require_source_regex({})
    with pytest.raises(sources.GuardSettingMissing):
        sources.require_source_regex({sources.SOURCE_REGEX_VARIABLE: ".*"})
    sources.require_source_regex({sources.SOURCE_REGEX_VARIABLE: sources.MODEL_VERSION_SOURCE_REGEX})


def refusal(path: str, body: dict[str, str], method: str = "POST") -> int | None:
    app = Flask(__name__)
    paths = frozenset({"/api/2.0/mlflow/experiments/create"})
    with app.test_request_context(path, method=method, json=body):
        from flask import request

        response = locations.artifact_location_refusal(request, paths, lambda: body.get("artifact_location", ""))
        return None if response is None else response.status_code


def test_a_create_experiment_with_a_location_is_refused_in_mlflows_error_format():
    app = Flask(__name__)
    with app.test_request_context("/api/2.0/mlflow/experiments/create", method="POST"):
        from flask import request

        response = locations.artifact_location_refusal(
            request, frozenset({"/api/2.0/mlflow/experiments/create"}), lambda: "file:///etc")
    assert response is not None and response.status_code == 400
    assert response.get_json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": locations.REFUSAL}


def test_a_create_experiment_without_a_location_and_other_routes_pass():
    assert refusal("/api/2.0/mlflow/experiments/create", {"name": "x"}) is None
    assert refusal("/api/2.0/mlflow/experiments/update", {"artifact_location": "file:///etc"}) is None
    assert refusal("/api/2.0/mlflow/experiments/create", {"artifact_location": "x"}, method="GET") is None


def test_the_body_is_parsed_only_on_the_guarded_route():
    app = Flask(__name__)
    with app.test_request_context("/api/2.0/mlflow/runs/create", method="POST"):
        from flask import request

        def unexpected() -> str:
            raise AssertionError("parsed a body the guard does not judge")

        assert locations.artifact_location_refusal(request, frozenset({"/x"}), unexpected) is None


def fake_basic_auth(*, experiment_readable: bool) -> SimpleNamespace:
    def list_users() -> bool:
        return True

    def read_scorer() -> bool:
        return True

    def read_experiment() -> bool:
        return experiment_readable

    def admins() -> bool:
        return False

    def anyone() -> bool:
        return True

    validators = {
        ("/api/2.0/mlflow/users/list", "GET"): list_users,
        ("/ajax-api/2.0/mlflow/users/list", "GET"): list_users,
        ("/api/3.0/mlflow/scorers/get", "GET"): read_scorer,
        ("/ajax-api/3.0/mlflow/demo/generate", "POST"): anyone,
        ("/ajax-api/3.0/mlflow/demo/delete", "POST"): admins,
        ("/api/2.0/mlflow/runs/create", "POST"): anyone,
    }
    return SimpleNamespace(BEFORE_REQUEST_VALIDATORS=validators, validate_can_list_users=list_users,
                           validate_can_read_scorer=read_scorer, validate_can_read_experiment=read_experiment)


def test_users_are_listed_to_admins_only_on_every_path():
    auth = fake_basic_auth(experiment_readable=True)
    basic_auth.harden_validators(auth)
    assert auth.BEFORE_REQUEST_VALIDATORS[("/api/2.0/mlflow/users/list", "GET")]() is False
    assert auth.BEFORE_REQUEST_VALIDATORS[("/ajax-api/2.0/mlflow/users/list", "GET")]() is False


@pytest.mark.parametrize("readable", [True, False])
def test_a_scorer_is_read_only_with_its_experiment(readable):
    auth = fake_basic_auth(experiment_readable=readable)
    basic_auth.harden_validators(auth)
    assert auth.BEFORE_REQUEST_VALIDATORS[("/api/3.0/mlflow/scorers/get", "GET")]() is readable


def test_demo_data_is_generated_under_the_rule_that_deletes_it_and_nothing_else_changes():
    auth = fake_basic_auth(experiment_readable=True)
    untouched = auth.BEFORE_REQUEST_VALIDATORS[("/api/2.0/mlflow/runs/create", "POST")]
    basic_auth.harden_validators(auth)
    validators = auth.BEFORE_REQUEST_VALIDATORS
    generate, delete = ("/ajax-api/3.0/mlflow/demo/generate", "POST"), ("/ajax-api/3.0/mlflow/demo/delete", "POST")
    assert validators[generate] is validators[delete]
    assert validators[("/api/2.0/mlflow/runs/create", "POST")] is untouched


def test_a_basic_auth_without_a_validator_the_guard_changes_stops_the_server():
    auth = fake_basic_auth(experiment_readable=True)
    del auth.BEFORE_REQUEST_VALIDATORS[("/api/3.0/mlflow/scorers/get", "GET")]
    with pytest.raises(basic_auth.BasicAuthMismatch, match="read_scorer"):
        basic_auth.harden_validators(auth)


class RunRequirements:
    """basic-auth's _run_requirement: run id -> its experiment, counting the store lookups."""

    def __init__(self) -> None:
        self.experiments = {"run-a": "1"}
        self.lookups = 0

    def __call__(self, run_id: str, action: str):
        self.lookups += 1
        experiment = self.experiments.get(run_id)
        if experiment is None:
            return None
        return ("experiment", experiment), [("experiment", experiment, "read"), ("run", "*", action)]


def remembering() -> tuple[SimpleNamespace, RunRequirements]:
    lookups = RunRequirements()
    auth = SimpleNamespace(_run_requirement=lookups)
    basic_auth.cache_run_experiments(auth)
    return auth, lookups


def test_a_runs_experiment_is_looked_up_once():
    auth, lookups = remembering()
    first, second = auth._run_requirement("run-a", "update"), auth._run_requirement("run-a", "update")
    assert first == second == (("experiment", "1"), [("experiment", "1", "read"), ("run", "*", "update")])
    assert lookups.lookups == 1


def test_the_requirements_handed_out_are_a_fresh_list_each_time():
    auth, _ = remembering()
    auth._run_requirement("run-a", "update")[1].append("a logged model's requirement")
    assert auth._run_requirement("run-a", "update")[1] == [("experiment", "1", "read"), ("run", "*", "update")]


def test_a_missing_run_is_looked_up_again_and_each_action_has_its_own_requirements():
    auth, lookups = remembering()
    assert auth._run_requirement("run-b", "read") is None
    lookups.experiments["run-b"] = "2"
    assert auth._run_requirement("run-b", "read") == (("experiment", "2"),
                                                      [("experiment", "2", "read"), ("run", "*", "read")])
    assert auth._run_requirement("run-a", "read")[1][1] == ("run", "*", "read")
    assert auth._run_requirement("run-a", "delete")[1][1] == ("run", "*", "delete")


def test_a_user_is_looked_up_once_per_request_and_again_in_the_next():
    lookups: list[str] = []

    def get_user(name: str) -> dict[str, str]:
        lookups.append(name)
        return {"name": name}

    auth = SimpleNamespace(store=SimpleNamespace(get_user=get_user))
    basic_auth.remember_users_per_request(auth)
    app = Flask(__name__)
    for _ in range(2):
        with app.test_request_context("/api/2.0/mlflow/runs/log-metric"):
            assert auth.store.get_user("alice") == auth.store.get_user("alice") == {"name": "alice"}
            auth.store.get_user("bob")
    assert lookups == ["alice", "bob", "alice", "bob"]
    auth.store.get_user("alice")  # outside a request: every time
    assert lookups[-1] == "alice" and len(lookups) == 5


def test_this_mlflows_basic_auth_has_the_routes_the_guard_acts_on():
    from mlflow.server import auth

    paths = locations.create_experiment_paths(auth.BEFORE_REQUEST_VALIDATORS.items(),
                                              auth.validate_can_create_experiment)
    assert paths == {"/api/2.0/mlflow/experiments/create", "/ajax-api/2.0/mlflow/experiments/create"}
    assert set(basic_auth.paths_checked_by(auth, auth.validate_can_list_users)) == {
        ("/api/2.0/mlflow/users/list", "GET"), ("/ajax-api/2.0/mlflow/users/list", "GET")}
    assert {path for path, _ in basic_auth.paths_checked_by(auth, auth.validate_can_read_scorer)} == {
        "/api/3.0/mlflow/scorers/get", "/ajax-api/3.0/mlflow/scorers/get",
        "/api/3.0/mlflow/scorers/versions", "/ajax-api/3.0/mlflow/scorers/versions"}
    assert ("/ajax-api/3.0/mlflow/demo/delete", "POST") in auth.BEFORE_REQUEST_VALIDATORS


def test_this_mlflows_basic_auth_has_every_function_the_guard_asks():
    from mlflow.server import auth

    for name in ("_run_requirement", "_authenticate_cached", "_authenticate_fastapi_request", "_find_fastapi_validator",
                 "is_unprotected_route", "_get_experiment_permission", "make_basic_auth_response"):
        assert callable(getattr(auth, name)), name


def test_mlflow_finds_the_guard_under_its_app_name():
    from mlflow.server import _find_app, _is_factory

    assert _find_app(server_guard.APP_NAME) == server_guard.ENTRY_POINT
    assert _is_factory(server_guard.ENTRY_POINT)  # uvicorn calls it in every worker


def test_the_repository_declares_the_entry_point_the_host_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["mlflow.app"] == {server_guard.APP_NAME: server_guard.ENTRY_POINT}
    assert "server_guard" in project["tool"]["setuptools"]["packages"]
