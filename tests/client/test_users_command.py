"""`mlflow-aws users` without a server: what is refused before any request is sent."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from client import cli, users
from naming import Outputs

OUTPUTS = {Outputs.TRACKING_URI: "https://203-0-113-7.sslip.io", Outputs.ADMIN_USERNAME: "admin",
           Outputs.ADMIN_PASSWORD: "Zq8x2kLm9pQr4sTu"}


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def no_request(*args: object, **kwargs: object) -> None:
        raise AssertionError("a request was sent")

    monkeypatch.setattr("urllib.request.urlopen", no_request)
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(OUTPUTS))
    return path


@pytest.mark.parametrize("password", ["", "eleven-char", " padded-password ", "tab\tin-the-middle"])
def test_a_password_mlflow_or_a_login_box_would_refuse_is_refused_locally(outputs, monkeypatch, capsys, password):
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert cli.main(["users", "add", "alice", "--password-stdin", "--outputs", str(outputs)]) == 1
    assert "mlflow-aws: error: " in capsys.readouterr().err


def test_an_unknown_permission_is_an_argument_error(outputs, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["users", "grant", "alice", "--experiment", "1", "OWNER", "--outputs", str(outputs)])
    assert exited.value.code == 2
    assert "READ" in capsys.readouterr().err


def test_grant_needs_exactly_one_target(outputs):
    with pytest.raises(SystemExit):
        cli.main(["users", "grant", "alice", "READ", "--outputs", str(outputs)])


@pytest.mark.parametrize("name", ["", "two words", "colon:name"])
def test_a_name_basic_auth_cannot_carry_is_refused(outputs, capsys, name):
    assert cli.main(["users", "remove", name, "--outputs", str(outputs)]) == 1
    assert "is not a user name" in capsys.readouterr().err


def test_missing_admin_outputs_are_named(tmp_path, capsys):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({Outputs.TRACKING_URI: "https://x.example"}))
    assert cli.main(["users", "list", "--outputs", str(path)]) == 2
    assert "admin_username" in capsys.readouterr().err


def test_a_tracking_uri_without_a_scheme_is_named_before_any_request(tmp_path, capsys):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({**OUTPUTS, Outputs.TRACKING_URI: "203.0.113.7"}))
    assert cli.main(["users", "list", "--outputs", str(path)]) == 2
    err = capsys.readouterr().err
    assert "output 'tracking_uri' is '203.0.113.7', not an http(s) URL" in err
    assert "allowedCidrs" not in err


def test_set_password_names_the_user_without_doubling_an_apostrophe(outputs, monkeypatch, capsys):
    class Answer(io.BytesIO):
        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    monkeypatch.setattr("urllib.request.urlopen", lambda request, timeout: Answer(b"{}"))
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-new-password\n"))
    assert cli.main(["users", "set-password", "bob", "--password-stdin", "--outputs", str(outputs)]) == 0
    err = capsys.readouterr().err
    assert "changed the password of 'bob'" in err
    assert "''" not in err


def test_generated_passwords_pass_mlflows_rule():
    for _ in range(20):
        users.check_password(users.generated_password())
