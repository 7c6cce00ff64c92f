"""`mlflow-aws env --user`, `tokens` and the auth-mode-specific `users` refusals, without a server: what is
refused (and written) before any request is sent. Against the real server: tests/host/test_oidc_*.py."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from client import cli
from naming import Outputs
from tests.client.consumers import bash_source, docker_env_file

BASIC_OUTPUTS: dict[str, Any] = {
    Outputs.TRACKING_URI: "https://203.0.113.7",
    Outputs.ADMIN_USERNAME: "admin",
    Outputs.ADMIN_PASSWORD: "Zq8x2kLm9pQr4sTuVw",
    Outputs.REGION: "eu-west-1",
}
OIDC_OUTPUTS = {**BASIC_OUTPUTS, Outputs.AUTH: "oidc"}
ACCESS_TOKEN = "mlf_0a1b2c3d_Ju2mF1cYv0oQpD8zX4rT6wSaK9hL3nE7bG5uI0yP2vM"
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.fixture(autouse=True)
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_request(*args: object, **kwargs: object) -> None:
        raise AssertionError("a request was sent")

    monkeypatch.setattr("urllib.request.urlopen", no_request)


def outputs_file(tmp_path: Path, outputs: dict[str, Any]) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    return path


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
        stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    try:
        code = cli.main(list(args))
    except SystemExit as exited:
        code = int(exited.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- env --user -----------------------------------------------------------------------------------------


def test_env_for_a_user_writes_their_name_and_password_not_the_admins(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "app.env"
    code, _, err = run(monkeypatch, capsys, "env", "--outputs", str(outputs_file(tmp_path, BASIC_OUTPUTS)),
                       "--out", str(out), "--user", "alice", "--password-stdin", "--no-check",
                       stdin="alice-own-password\n")
    assert code == 0, err
    expected = {"MLFLOW_TRACKING_URI": "https://203.0.113.7", "MLFLOW_TRACKING_USERNAME": "alice",
                "MLFLOW_TRACKING_PASSWORD": "alice-own-password", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert docker_env_file(out, lookup={}) == expected
    assert bash_source(out, home=tmp_path) == expected
    assert BASIC_OUTPUTS[Outputs.ADMIN_PASSWORD] not in out.read_text()


def test_env_for_a_user_of_an_oidc_stack_writes_their_access_token(tmp_path, monkeypatch, capsys) -> None:
    out, token_file = tmp_path / "app.env", tmp_path / "token"
    token_file.write_text(ACCESS_TOKEN + "\n")
    code, _, err = run(monkeypatch, capsys, "env", "--outputs", str(outputs_file(tmp_path, OIDC_OUTPUTS)),
                       "--out", str(out), "--user", "ci-bot", "--password-file", str(token_file), "--no-check")
    assert code == 0, err
    values = docker_env_file(out, lookup={})
    assert (values["MLFLOW_TRACKING_USERNAME"], values["MLFLOW_TRACKING_PASSWORD"]) == ("ci-bot", ACCESS_TOKEN)


def test_env_for_a_user_needs_the_secret_from_stdin_or_a_file(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "app.env"
    code, _, err = run(monkeypatch, capsys, "env", "--outputs", str(outputs_file(tmp_path, BASIC_OUTPUTS)),
                       "--out", str(out), "--user", "alice")
    assert code == 2 and "--password-stdin or --password-file" in err and "never on the command line" in err
    assert not out.exists()


def test_a_password_option_without_a_user_is_refused(tmp_path, monkeypatch, capsys) -> None:
    code, _, err = run(monkeypatch, capsys, "env", "--outputs", str(outputs_file(tmp_path, BASIC_OUTPUTS)),
                       "--password-stdin", stdin="whatever-password\n")
    assert code == 2 and "go with --user NAME" in err


def test_a_password_mlflow_would_refuse_is_not_written(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "app.env"
    code, _, err = run(monkeypatch, capsys, "env", "--outputs", str(outputs_file(tmp_path, BASIC_OUTPUTS)),
                       "--out", str(out), "--user", "alice", "--password-stdin", stdin="short\n")
    assert code == 2 and "shorter than 12" in err
    assert not out.exists()


@pytest.mark.parametrize(("secret", "named"), [(ID_TOKEN, "identity provider token"),
                                               ("alice-own-password", "mlf_<8 hex>_<secret>")])
def test_an_oidc_stack_takes_an_access_token_only(tmp_path, monkeypatch, capsys, secret, named) -> None:
    out = tmp_path / "app.env"
    code, _, err = run(monkeypatch, capsys, "env", "--outputs", str(outputs_file(tmp_path, OIDC_OUTPUTS)),
                       "--out", str(out), "--user", "alice", "--password-stdin", stdin=secret + "\n")
    assert code == 2 and named in err and "mlflow-aws tokens create" in err
    assert not out.exists()


@pytest.mark.parametrize("name", ["two words", "colon:name"])
def test_a_user_name_basic_auth_cannot_carry_is_refused(tmp_path, monkeypatch, capsys, name) -> None:
    code, _, err = run(monkeypatch, capsys, "env", "--outputs", str(outputs_file(tmp_path, BASIC_OUTPUTS)),
                       "--out", str(tmp_path / "x.env"), "--user", name, "--password-stdin",
                       stdin="alice-own-password\n")
    assert code == 2 and "is not a user name" in err


def test_an_unknown_auth_output_is_named(tmp_path, monkeypatch, capsys) -> None:
    code, _, err = run(monkeypatch, capsys, "env", "--outputs",
                       str(outputs_file(tmp_path, {**BASIC_OUTPUTS, Outputs.AUTH: "saml"})),
                       "--out", str(tmp_path / "x.env"), "--user", "alice", "--password-stdin",
                       stdin="alice-own-password\n")
    assert code == 2 and "output 'auth' is 'saml'" in err


# --- tokens -------------------------------------------------------------------------------------------


def test_tokens_on_a_basic_auth_stack_point_to_a_user_of_its_own(tmp_path, monkeypatch, capsys) -> None:
    code, _, err = run(monkeypatch, capsys, "tokens", "list", "--user", "alice",
                       "--outputs", str(outputs_file(tmp_path, BASIC_OUTPUTS)))
    assert code == 2 and "no access tokens" in err and "mlflow-aws env --user NAME --password-stdin" in err


@pytest.mark.parametrize(("extra", "named"), [(("--days", "400"), "1 to 365 days"), (("--days", "0"), "1 to 365"),
                                              ((), "identity provider token is empty")])
def test_tokens_create_refuses_before_any_request(tmp_path, monkeypatch, capsys, extra, named) -> None:
    code, out, err = run(monkeypatch, capsys, "tokens", "create", "--name", "ci", "--id-token-stdin", *extra,
                         "--outputs", str(outputs_file(tmp_path, OIDC_OUTPUTS)), stdin="\n")
    assert code == 1 and named in err and out == ""


def test_tokens_create_needs_an_identity_provider_token(tmp_path, monkeypatch, capsys) -> None:
    code, _, err = run(monkeypatch, capsys, "tokens", "create", "--name", "ci",
                       "--outputs", str(outputs_file(tmp_path, OIDC_OUTPUTS)))
    assert code == 2 and "--id-token-stdin" in err


# --- users: what each mode refuses -------------------------------------------------------------------------


def test_people_are_not_added_on_an_oidc_stack(tmp_path, monkeypatch, capsys) -> None:
    code, out, err = run(monkeypatch, capsys, "users", "add", "alice",
                         "--outputs", str(outputs_file(tmp_path, OIDC_OUTPUTS)))
    assert code == 1 and out == ""
    assert "first sign in through the identity provider" in err and "--service-account" in err


def test_no_password_is_set_on_an_oidc_stack(tmp_path, monkeypatch, capsys) -> None:
    code, out, err = run(monkeypatch, capsys, "users", "set-password", "alice",
                         "--outputs", str(outputs_file(tmp_path, OIDC_OUTPUTS)))
    assert code == 1 and out == "" and "nobody has a password" in err and "mlflow-aws tokens create" in err


def test_the_stack_admin_is_not_removed_on_an_oidc_stack(tmp_path, monkeypatch, capsys) -> None:
    code, _, err = run(monkeypatch, capsys, "users", "remove", "admin",
                       "--outputs", str(outputs_file(tmp_path, OIDC_OUTPUTS)))
    assert code == 1 and "the stack's admin" in err


@pytest.mark.parametrize(("args", "named"), [(("add", "ci-bot", "--service-account"), "ordinary user"),
                                             (("grant", "data-science", "--group", "--model", "m", "READ"),
                                              "no groups")])
def test_oidc_only_options_are_refused_on_a_basic_stack(tmp_path, monkeypatch, capsys, args, named) -> None:
    code, _, err = run(monkeypatch, capsys, "users", *args, "--outputs", str(outputs_file(tmp_path, BASIC_OUTPUTS)))
    assert code == 2 and named in err
