"""The server guard on its own (server_guard/): its decisions, and that it finds in this MLflow's
basic-auth exactly the routes it acts on. The guard behind nginx: tests/host/test_server_guard.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from flask import Flask

import server_guard
from server_guard import locations, sources, users

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


def test_restricting_a_validator_replaces_it_everywhere_and_nothing_else():
    def everyone() -> bool:
        return True

    def other() -> bool:
        return True

    validators = {("/a", "GET"): everyone, ("/b", "GET"): everyone, ("/c", "GET"): other}
    assert users.restrict_to_admins(validators, everyone) == [("/a", "GET"), ("/b", "GET")]
    assert validators == {("/a", "GET"): users.admins_only, ("/b", "GET"): users.admins_only, ("/c", "GET"): other}
    assert users.admins_only() is False


def test_this_mlflows_basic_auth_has_the_routes_the_guard_acts_on():
    from mlflow.server import auth

    paths = locations.create_experiment_paths(auth.BEFORE_REQUEST_VALIDATORS.items(),
                                              auth.validate_can_create_experiment)
    assert paths == {"/api/2.0/mlflow/experiments/create", "/ajax-api/2.0/mlflow/experiments/create"}
    listing = {key for key, check in auth.BEFORE_REQUEST_VALIDATORS.items() if check is auth.validate_can_list_users}
    assert listing == {("/api/2.0/mlflow/users/list", "GET"), ("/ajax-api/2.0/mlflow/users/list", "GET")}


def test_mlflow_finds_the_guard_under_its_app_name():
    from mlflow.server import _find_app, _is_factory

    assert _find_app(server_guard.APP_NAME) == server_guard.ENTRY_POINT
    assert _is_factory(server_guard.ENTRY_POINT)  # uvicorn calls it in every worker


def test_the_repository_declares_the_entry_point_the_host_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["mlflow.app"] == {server_guard.APP_NAME: server_guard.ENTRY_POINT}
    assert "server_guard" in project["tool"]["setuptools"]["packages"]
