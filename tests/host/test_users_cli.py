"""`mlflow-aws users` against the loopback stack: accounts, passwords and grants as the admin from the
stack outputs, on a stack whose new work is private (`defaultPermission: NO_PERMISSIONS`).

Each user acts through nginx with plain HTTP basic auth, as a team member's client would.
"""

from __future__ import annotations

import io
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import requests

from client import cli
from naming import Outputs
from tests.support import loopback

pytestmark = pytest.mark.host


def outputs_file(stack: loopback.LoopbackStack, directory: Path, *, username: str | None = None,
                 password: str | None = None) -> Path:
    path = directory / f"outputs-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps({
        Outputs.TRACKING_URI: stack.tracking_uri,
        Outputs.ADMIN_USERNAME: username or stack.admin_username,
        Outputs.ADMIN_PASSWORD: password or stack.admin_password,
    }))
    return path


def users(outputs: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """`mlflow-aws users ARGS --outputs FILE` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(stdin))
        patch.setattr("sys.stdout", out)
        patch.setattr("sys.stderr", err)
        code = cli.main(["users", *args, "--outputs", str(outputs)])
    return code, out.getvalue(), err.getvalue()


def as_user(stack: loopback.LoopbackStack, user: str, password: str, method: str, path: str,
            **params: Any) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        url, auth = stack.tracking_uri + path, (user, password)
        if method == "GET":
            return session.request(method, url, auth=auth, timeout=30, params=params)
        return session.request(method, url, auth=auth, timeout=30, json=params)


def new_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def add_user(outputs: Path, name: str) -> str:
    code, out, err = users(outputs, "add", name)
    assert code == 0, err
    (password,) = out.split()
    return password


@pytest.fixture
def admin_outputs(team_stack: loopback.LoopbackStack, tmp_path: Path) -> Path:
    return outputs_file(team_stack, tmp_path)


def test_added_user_logs_in_with_the_printed_password_and_is_listed(team_stack, admin_outputs):
    name = new_name("alice")
    password = add_user(admin_outputs, name)
    assert len(password) >= 12
    assert as_user(team_stack, name, password, "GET", "/api/2.0/mlflow/users/current").status_code == 200
    code, out, _ = users(admin_outputs, "list")
    assert code == 0
    assert any(line.split()[:2] == [name, "no"] for line in out.splitlines())
    assert any(line.split()[:2] == [team_stack.admin_username, "yes"] for line in out.splitlines())


def test_adding_a_user_that_exists_says_so_in_one_line_without_the_servers_internals(team_stack, admin_outputs):
    name = new_name("bob")
    add_user(admin_outputs, name)

    code, out, err = users(admin_outputs, "add", name)

    assert (code, out) == (1, "")
    assert err.splitlines() == [f"mlflow-aws: error: user {name!r} already exists: choose another name, or give it "
                                f"a new password with `mlflow-aws users set-password {name}`"]


def test_a_weak_password_is_refused_before_any_request(team_stack, admin_outputs, monkeypatch):
    def no_request(*args: object, **kwargs: object) -> None:
        raise AssertionError("a request was sent")

    name = new_name("weak")
    monkeypatch.setattr("urllib.request.urlopen", no_request)
    code, out, err = users(admin_outputs, "add", name, "--password-stdin", stdin="short-pw\n")
    monkeypatch.undo()
    assert code == 1 and out == ""
    assert "8 characters" in err and "shorter than 12" in err
    code, listed, _ = users(admin_outputs, "list")
    assert name not in listed


def test_new_work_is_private_until_granted_and_a_grant_replaces_the_last(team_stack, admin_outputs):
    owner, reader = new_name("owner"), new_name("reader")
    owner_password, reader_password = add_user(admin_outputs, owner), add_user(admin_outputs, reader)
    experiment = new_name("private-experiment")
    created = as_user(team_stack, owner, owner_password, "POST", "/api/2.0/mlflow/experiments/create",
                      name=experiment)
    assert created.status_code == 200, created.text
    experiment_id = created.json()["experiment_id"]

    def reader_can(method: str, path: str, **params: Any) -> int:
        return as_user(team_stack, reader, reader_password, method, path, **params).status_code

    assert reader_can("GET", "/api/2.0/mlflow/experiments/get", experiment_id=experiment_id) == 403
    code, _, err = users(admin_outputs, "grant", reader, "--experiment", experiment, "read")
    assert code == 0, err
    assert f"(ID {experiment_id})" in err
    assert reader_can("GET", "/api/2.0/mlflow/experiments/get", experiment_id=experiment_id) == 200
    assert reader_can("POST", "/api/2.0/mlflow/runs/create", experiment_id=experiment_id) == 403
    code, _, err = users(admin_outputs, "grant", reader, "--experiment", experiment_id, "EDIT")
    assert code == 0, err
    assert reader_can("POST", "/api/2.0/mlflow/runs/create", experiment_id=experiment_id) == 200

    model = new_name("private-model")
    assert as_user(team_stack, owner, owner_password, "POST", "/api/2.0/mlflow/registered-models/create",
                   name=model).status_code == 200
    assert reader_can("GET", "/api/2.0/mlflow/registered-models/get", name=model) == 403
    code, _, err = users(admin_outputs, "grant", reader, "--model", model, "READ")
    assert code == 0, err
    assert reader_can("GET", "/api/2.0/mlflow/registered-models/get", name=model) == 200
    code, out, _ = users(admin_outputs, "list")
    (row,) = [line for line in out.splitlines() if line.startswith(reader + " ")]
    assert f"experiment {experiment_id}: EDIT" in row and f"registered_model {model}: READ" in row


def test_set_password_replaces_the_old_one(team_stack, admin_outputs):
    name = new_name("bob")
    old = add_user(admin_outputs, name)
    new = "a-new-long-password-" + secrets.token_hex(4)
    code, out, err = users(admin_outputs, "set-password", name, "--password-stdin", stdin=new + "\n")
    assert code == 0 and out == "", err
    assert as_user(team_stack, name, old, "GET", "/api/2.0/mlflow/users/current").status_code == 401
    assert as_user(team_stack, name, new, "GET", "/api/2.0/mlflow/users/current").status_code == 200


def test_removed_user_can_no_longer_log_in_and_unknown_users_are_named(team_stack, admin_outputs):
    name = new_name("carol")
    password = add_user(admin_outputs, name)
    code, _, err = users(admin_outputs, "remove", name)
    assert code == 0, err
    assert as_user(team_stack, name, password, "GET", "/api/2.0/mlflow/users/current").status_code == 401
    for args in (("remove", name), ("grant", name, "--model", "m", "READ"), ("set-password", name)):
        code, _, err = users(admin_outputs, *args)
        assert code == 1
        assert f"user {name!r} does not exist" in err and "mlflow-aws users list" in err


def test_a_grant_on_an_unknown_experiment_is_named(team_stack, admin_outputs):
    name = new_name("dave")
    add_user(admin_outputs, name)
    code, _, err = users(admin_outputs, "grant", name, "--experiment", "no-such-experiment", "READ")
    assert code == 1
    assert "experiment 'no-such-experiment' does not exist" in err


def test_the_stack_admin_is_neither_removed_nor_given_a_password_here(team_stack, admin_outputs):
    code, _, err = users(admin_outputs, "remove", team_stack.admin_username)
    assert code == 1 and "cannot be removed" in err
    code, _, err = users(admin_outputs, "set-password", team_stack.admin_username)
    assert code == 1 and "pulumi up" in err


def test_stale_admin_credentials_are_explained(team_stack, tmp_path):
    stale = outputs_file(team_stack, tmp_path, password="not-the-admin-password")
    code, _, err = users(stale, "list")
    assert code == 1
    assert "HTTP 401" in err and "pulumi stack output --json --show-secrets" in err


def test_a_non_admin_in_the_outputs_is_explained(team_stack, admin_outputs, tmp_path):
    name = new_name("eve")
    password = add_user(admin_outputs, name)
    code, _, err = users(outputs_file(team_stack, tmp_path, username=name, password=password), "add",
                         new_name("mallory"))
    assert code == 1
    assert "is not an MLflow administrator (HTTP 403)" in err
