"""`auth: oidc` on the loopback host, against a real OpenID Connect provider on 127.0.0.1 (oidc-provider-mock
over HTTPS): people sign in through the provider in a browser and are who the provider says, groups decide
who gets in and who is an admin, and programs use personal access tokens with MLflow's own client, which
gets JSON errors, never the sign-in page.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from client import cli
from naming import Outputs
from tests.host.conftest import require_host_binaries
from tests.support.browser import Browser, chromium_executable
from tests.support.loopback import parse_env_file
from tests.support.oidc_loopback import (
    ADMIN_GROUP,
    USERS_GROUP,
    OidcLoopbackStack,
    create_token,
    sign_in,
    sign_in_answered,
)
from tests.support.oidc_provider import OidcProvider

pytestmark = pytest.mark.host

ALICE, BOSS, EVE = "alice@example.com", "boss@example.com", "eve@example.com"
CLIENT_SECONDS = 600
ARTIFACT_BYTES = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with OidcProvider(tmp_path_factory.mktemp("idp")) as provider:
        provider.set_user(ALICE, groups=[USERS_GROUP, "data-science"], name="Alice Liddell")
        provider.set_user(BOSS, groups=[ADMIN_GROUP], name="The Boss")
        provider.set_user(EVE, groups=["marketing"], name="Eve")
        yield provider


@pytest.fixture(scope="module")
def stack(idp: OidcProvider) -> Iterator[OidcLoopbackStack]:
    require_host_binaries()
    started = OidcLoopbackStack(idp)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def alice(stack: OidcLoopbackStack, idp: OidcProvider) -> requests.Session:
    return sign_in(stack, idp, ALICE)


def current_user(stack: OidcLoopbackStack, **request: object) -> requests.Response:
    return requests.get(f"{stack.tracking_uri}/api/2.0/mlflow/users/current", timeout=60, **request)  # type: ignore[arg-type]


def assert_json_401(response: requests.Response) -> None:
    assert response.status_code == 401, f"{response.status_code} {response.text[:200]}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert "<html" not in response.text.lower()
    response.json()


# --- people, in a browser -------------------------------------------------------------------------------


def test_a_person_signs_in_through_the_provider_in_a_browser_and_sees_the_ui_as_themselves(stack, tmp_path):
    executable = chromium_executable()
    if executable is None:
        pytest.skip("chromium is not installed (Debian package chromium)")
    with Browser(executable, tmp_path / "profile") as browser:
        browser.navigate(f"{stack.tracking_uri}/#/experiments")
        browser.wait_for("document.querySelector('input[name=sub]')", what="the provider's sign-in form")
        assert browser.location().startswith(stack.provider.issuer), browser.location()
        browser.evaluate(f"document.querySelector('input[name=sub]').value = {json.dumps(ALICE)}; "
                         "document.querySelector('form button[type=submit]').click(); true")
        browser.wait_for(f"location.origin === {json.dumps(stack.tracking_uri)} && document.readyState === 'complete'",
                         what="the way back to MLflow")
        status, me = browser.fetch_json("/api/2.0/mlflow/users/current")
        assert status == 200 and me["username"] == ALICE and me["is_admin"] is False
        browser.navigate(f"{stack.tracking_uri}/#/experiments")
        browser.wait_for("document.body && document.body.innerText.includes('Default')", timeout=120,
                         what="the experiment list")
        assert "Alice" in browser.text() or "alice" in browser.text()


def test_a_member_of_the_admin_group_is_an_admin(stack, idp, alice):
    boss = sign_in(stack, idp, BOSS)
    assert boss.get(f"{stack.tracking_uri}/api/2.0/mlflow/users/current", timeout=60).json()["is_admin"] is True
    assert alice.get(f"{stack.tracking_uri}/api/2.0/mlflow/users/current", timeout=60).json()["is_admin"] is False
    assert boss.get(f"{stack.tracking_uri}/api/2.0/mlflow/users/details", timeout=60).status_code == 200
    assert alice.get(f"{stack.tracking_uri}/api/2.0/mlflow/users/details", timeout=60).status_code == 403


def test_a_person_outside_the_allowed_groups_is_refused(stack, idp):
    eve, landed = sign_in_answered(stack, idp, EVE)
    assert_json_401(eve.get(f"{stack.tracking_uri}/api/2.0/mlflow/users/current", timeout=60))
    error = urllib.parse.parse_qs(urllib.parse.urlsplit(landed.headers.get("location", "")).query).get("error")
    assert error == ["User is not allowed to login"], f"{landed.status_code} {landed.headers}"


def test_the_redirect_uri_is_the_tracking_uris_callback(stack):
    start = requests.get(f"{stack.tracking_uri}/login", allow_redirects=False, timeout=60)
    assert start.status_code == 302
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(start.headers["location"]).query)
    assert query["redirect_uri"] == [f"{stack.tracking_uri}/callback"]
    assert query["client_id"] == [stack.client.client_id]


# --- what programs get -------------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", ["application/json", "text/html,application/xhtml+xml", "*/*"])
def test_an_api_route_answers_401_json_never_the_sign_in_page(stack, accept):
    for path in ("/api/2.0/mlflow/experiments/search?max_results=1", "/ajax-api/2.0/mlflow/users/current",
                 "/api/2.0/mlflow-artifacts/artifacts/0/x"):
        assert_json_401(requests.get(f"{stack.tracking_uri}{path}", headers={"Accept": accept},
                                     allow_redirects=False, timeout=60))
    assert_json_401(current_user(stack, auth=(ALICE, "mlf_0123abcd_not-a-real-token-at-all")))


def test_the_public_name_is_a_valid_host_header_and_a_foreign_one_is_not(stack):
    """MLflow's Host header check holds around the plugin's app (the guard adds it), and the name people
    use passes it: no "Invalid Host header" for the server's own name."""
    url, admin = f"{stack.tracking_uri}/api/2.0/mlflow/users/current", (stack.admin_username, stack.admin_password)
    public = requests.get(url, auth=admin, headers={"Host": stack.settings.public_hostname}, timeout=60)
    assert public.status_code == 200, public.text[:200]
    foreign = requests.get(url, auth=admin, headers={"Host": "attacker.example"}, timeout=60)
    assert foreign.status_code in (400, 403) and "<html" not in foreign.text.lower()


def test_a_browser_opening_the_ui_is_sent_to_the_provider(stack):
    page = requests.get(f"{stack.tracking_uri}/", headers={"Accept": "text/html", "Sec-Fetch-Dest": "document"},
                        allow_redirects=False, timeout=60)
    assert page.status_code == 302 and page.headers["location"].startswith("/login")


def run_client(stack: OidcLoopbackStack, username: str, token: str, tmp_path: Path) -> dict[str, Any]:
    """MLflow's stock Python client in its own process, signed in with the token as its password."""
    script = f"""
import json, os, mlflow
from mlflow import MlflowClient
mlflow.set_tracking_uri({stack.tracking_uri!r})
experiment = mlflow.set_experiment("pat-" + os.urandom(4).hex())
payload = os.path.join({str(tmp_path)!r}, "weights.bin")
with open(payload, "wb") as handle:
    handle.write(os.urandom({ARTIFACT_BYTES}))
with mlflow.start_run() as run:
    mlflow.log_metric("loss", 0.25)
    mlflow.log_artifact(payload)
client = MlflowClient()
name = "pat-model-" + os.urandom(4).hex()
client.create_registered_model(name)
version = client.create_model_version(name, f"runs:/{{run.info.run_id}}/weights.bin", run.info.run_id)
back = client.download_artifacts(run.info.run_id, "weights.bin", {str(tmp_path / 'back')!r})
print(json.dumps({{"run": run.info.run_id, "metric": client.get_run(run.info.run_id).data.metrics["loss"],
                  "same": open(back, "rb").read() == open(payload, "rb").read(), "model": name,
                  "version": version.version, "user": client.get_run(run.info.run_id).info.user_id}}))
"""
    (tmp_path / "back").mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))},
           "MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": token, "NO_PROXY": "127.0.0.1",
           **stack.aws_environment()}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=CLIENT_SECONDS, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_personal_access_token_drives_the_stock_python_client(stack, alice, tmp_path):
    token = create_token(alice, stack, "notebook")
    result = run_client(stack, ALICE, token, tmp_path)
    assert result["metric"] == 0.25 and result["same"] is True and result["version"] == "1"


def test_an_expired_token_gets_401_json(stack, alice):
    token = create_token(alice, stack, "short-lived", expires_in=datetime.timedelta(seconds=8))
    assert current_user(stack, auth=(ALICE, token)).status_code == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and current_user(stack, auth=(ALICE, token)).status_code == 200:
        time.sleep(1)
    assert_json_401(current_user(stack, auth=(ALICE, token)))


def test_a_revoked_token_gets_401_json_at_once(stack, alice):
    token = create_token(alice, stack, "to-revoke")
    assert current_user(stack, auth=(ALICE, token)).status_code == 200
    listed = alice.get(f"{stack.tracking_uri}/api/2.0/mlflow/users/current/tokens", timeout=60).json()["tokens"]
    (record,) = [t for t in listed if t["name"] == "to-revoke"]
    deleted = alice.delete(f"{stack.tracking_uri}/api/2.0/mlflow/users/current/tokens/{record['id']}", timeout=60)
    assert deleted.status_code == 200
    assert_json_401(current_user(stack, auth=(ALICE, token)))


def test_a_token_cannot_mint_another(stack, alice):
    token = create_token(alice, stack, "no-minting")
    minted = requests.post(f"{stack.tracking_uri}/api/2.0/mlflow/users/current/tokens", auth=(ALICE, token),
                           json={"name": "child", "expiration": "2030-01-01T00:00:00Z"}, timeout=60)
    assert minted.status_code == 403 and minted.headers["content-type"].startswith("application/json")


def test_the_stack_admin_signs_in_with_the_password_in_ssm(stack):
    me = current_user(stack, auth=(stack.admin_username, stack.admin_password))
    assert me.status_code == 200 and me.json()["is_admin"] is True and me.json()["is_service_account"] is True
    assert_json_401(current_user(stack, auth=(stack.admin_username, stack.admin_password + "x")))


# --- mlflow-aws on an auth: oidc stack ---------------------------------------------------------------------


def outputs_file(stack: OidcLoopbackStack, directory: Path) -> Path:
    path = directory / "outputs.json"
    path.write_text(json.dumps({
        Outputs.TRACKING_URI: stack.tracking_uri, Outputs.ADMIN_USERNAME: stack.admin_username,
        Outputs.ADMIN_PASSWORD: stack.admin_password, Outputs.REGION: stack.region, Outputs.AUTH: "oidc"}))
    return path


def mlflow_aws(*args: str, stdin: str = "") -> tuple[int, str, str]:
    """`mlflow-aws ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(stdin))
        patch.setattr("sys.stdout", out)
        patch.setattr("sys.stderr", err)
        try:
            code = cli.main(list(args))
        except SystemExit as exited:
            code = int(exited.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_env_for_a_user_writes_a_file_their_client_signs_in_with(stack, alice, tmp_path):
    token = create_token(alice, stack, "env-file")
    outputs, env = outputs_file(stack, tmp_path), tmp_path / "alice.env"
    code, _, err = mlflow_aws("env", "--outputs", str(outputs), "--out", str(env), "--user", ALICE,
                              "--password-stdin", stdin=token + "\n")
    assert code == 0, err
    values = parse_env_file(env.read_text())
    assert (values["MLFLOW_TRACKING_USERNAME"], values["MLFLOW_TRACKING_PASSWORD"]) == (ALICE, token)
    assert stack.admin_password not in env.read_text()
    me = current_user(stack, auth=(values["MLFLOW_TRACKING_USERNAME"], values["MLFLOW_TRACKING_PASSWORD"]))
    assert me.json()["username"] == ALICE


def test_env_for_a_user_refuses_a_token_the_server_refuses_and_writes_nothing(stack, tmp_path):
    outputs, env = outputs_file(stack, tmp_path), tmp_path / "wrong.env"
    code, _, err = mlflow_aws("env", "--outputs", str(outputs), "--out", str(env), "--user", ALICE,
                              "--password-stdin", stdin="mlf_0123abcd_not-the-token-the-server-issued\n")
    assert code == 2 and "refused" in err and "HTTP 401" in err
    assert not env.exists()


def test_a_person_creates_a_token_with_their_identity_provider_token(stack, idp, alice, tmp_path):
    id_token = idp.id_token(stack.client, ALICE)
    code, out, err = mlflow_aws("tokens", "create", "--name", "from-cli", "--days", "7", "--id-token-stdin",
                                "--outputs", str(outputs_file(stack, tmp_path)), stdin=id_token + "\n")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("mlf_") and current_user(stack, auth=(ALICE, token)).json()["username"] == ALICE


def test_an_identity_provider_token_for_another_application_is_refused(stack, idp):
    other = idp.register_client(["https://another-app.example.com/callback"])
    assert_json_401(current_user(stack, headers={"Authorization": f"Bearer {idp.id_token(other, ALICE)}"}))
    assert current_user(stack, headers={"Authorization": f"Bearer {idp.id_token(stack.client, ALICE)}"}
                        ).json()["username"] == ALICE


def test_a_service_account_gets_a_token_without_a_browser_and_loses_it_when_revoked(stack, idp, tmp_path):
    outputs = str(outputs_file(stack, tmp_path))
    assert mlflow_aws("users", "add", "churn-predictor", "--service-account", "--outputs", outputs)[0] == 0
    sign_in(stack, idp, BOSS)  # the admin's account exists once they have signed in
    code, out, err = mlflow_aws("tokens", "create", "--user", "churn-predictor", "--name", "prod",
                                "--id-token-stdin", "--outputs", outputs, stdin=idp.id_token(stack.client, BOSS))
    assert code == 0, err
    token = out.strip()
    assert current_user(stack, auth=("churn-predictor", token)).json()["is_service_account"] is True
    code, out, _ = mlflow_aws("tokens", "list", "--user", "churn-predictor", "--outputs", outputs)
    assert code == 0 and "prod" in out
    assert mlflow_aws("tokens", "revoke", "--user", "churn-predictor", "--name", "prod", "--outputs", outputs)[0] == 0
    assert_json_401(current_user(stack, auth=("churn-predictor", token)))


def test_a_person_cannot_issue_a_token_for_someone_else(stack, idp, alice, tmp_path):
    code, out, err = mlflow_aws("tokens", "create", "--user", BOSS, "--name", "stolen", "--id-token-stdin",
                                "--outputs", str(outputs_file(stack, tmp_path)),
                                stdin=idp.id_token(stack.client, ALICE))
    assert code == 1 and out == "" and "HTTP 403" in err


def test_the_stack_admin_grants_a_person_and_a_group_and_lists_them(stack, alice, tmp_path):
    outputs = str(outputs_file(stack, tmp_path))
    admin = (stack.admin_username, stack.admin_password)
    name = "granted-" + os.urandom(4).hex()
    created = requests.post(f"{stack.tracking_uri}/api/2.0/mlflow/experiments/create", auth=admin,
                            json={"name": name}, timeout=60).json()["experiment_id"]
    assert mlflow_aws("users", "grant", ALICE, "--experiment", created, "EDIT", "--outputs", outputs)[0] == 0
    code, _, err = mlflow_aws("users", "grant", "data-science", "--group", "--experiment", created, "READ",
                              "--outputs", outputs)
    assert code == 0, err
    code, out, _ = mlflow_aws("users", "list", "--outputs", outputs)
    (row,) = [line for line in out.splitlines() if line.startswith(ALICE)]
    assert f"experiment {name}: EDIT" in row
    assert alice.post(f"{stack.tracking_uri}/api/2.0/mlflow/experiments/update", timeout=60,
                      json={"experiment_id": created, "new_name": "renamed-" + os.urandom(4).hex()}).status_code == 200
