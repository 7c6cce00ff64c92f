"""Switching a running stack between `auth: basic` and `auth: oidc` (`pulumi config set auth ...` and `pulumi
up`, which replaces the host), proven on loopback: the host is rendered again for the other mode against
the same PostgreSQL and bucket. Every run, model and artifact stays; each mode's users and grants stay in
its own database, so a basic-auth user's password stops working under oidc and works again, with the same
grants, after switching back (README: Single sign-on, Switching a running stack).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

import naming
import userdata
from tests.host.conftest import require_host_binaries
from tests.support import loopback
from tests.support.oidc_loopback import USERS_GROUP, oidc_venv, provider_trust, sign_in
from tests.support.oidc_provider import OidcProvider, RegisteredClient
from userdata import layout
from userdata.settings import OidcSettings

pytestmark = pytest.mark.host

ALICE, ALICE_PASSWORD = "alice", "alice-basic-password-0123"
ALICE_EMAIL = "alice@example.com"
MODEL = "alice-model"
TIMEOUT = 60


@dataclass
class Seen:
    """What the switches left, observed in each phase (one module stack, so no test depends on another's)."""

    under_oidc: dict[str, requests.Response]
    under_basic_again: dict[str, requests.Response]
    basic_users_kept: bool


def render_as(stack: loopback.LoopbackStack, settings: object, venv: Path) -> None:
    """What `pulumi up` gives the replacement host: the user data and the host's files rendered for `settings`."""
    stack.settings = settings  # type: ignore[assignment]
    stack.user_data = userdata.render(stack.settings)
    stack.host_bundle = userdata.host_bundle(stack.settings)
    stack.files = loopback.host_file_contents(stack.settings)
    stack.unit = loopback.unit_directives(stack.files[layout.UNIT_PATH])
    stack.replacements[layout.VENV_DIR] = str(venv)
    stack.write_host_files()


def as_alice(stack: loopback.LoopbackStack, method: str, path: str, **request: object) -> requests.Response:
    return requests.request(method, f"{stack.tracking_uri}{path}", auth=(ALICE, ALICE_PASSWORD), timeout=TIMEOUT,
                            **request)  # type: ignore[arg-type]


def ok(response: requests.Response) -> dict[str, object]:
    assert response.status_code == 200, f"{response.url}: {response.status_code} {response.text[:300]}"
    body: dict[str, object] = response.json() if response.content.strip() else {}
    return body


def register(idp: OidcProvider, stack: loopback.LoopbackStack) -> RegisteredClient:
    client = idp.register_client([f"{stack.tracking_uri}/callback"])
    name = naming.parameter_name(stack.settings.ssm_prefix, naming.OIDC_CLIENT_SECRET)
    stack.ssm_client().put_parameter(Name=name, Value=client.client_secret, Type="SecureString", Overwrite=True)
    return client


def team_data(stack: loopback.LoopbackStack) -> tuple[str, str]:
    """Under basic-auth: alice with a password and EDIT on the admin's experiment, her run (a metric, an
    artifact) in it, and her registered model. Returns (experiment id, run id)."""
    admin = (stack.admin_username, stack.admin_password)
    ok(requests.post(f"{stack.tracking_uri}/api/2.0/mlflow/users/create", auth=admin, timeout=TIMEOUT,
                     json={"username": ALICE, "password": ALICE_PASSWORD}))
    experiment_id = str(ok(requests.post(f"{stack.tracking_uri}/api/2.0/mlflow/experiments/create", auth=admin,
                                         json={"name": "switch-team"}, timeout=TIMEOUT))["experiment_id"])
    ok(requests.post(f"{stack.tracking_uri}/api/3.0/mlflow/users/permissions/grant", auth=admin, timeout=TIMEOUT,
                     json={"username": ALICE, "resource_type": "experiment", "resource_id": experiment_id,
                           "permission": "EDIT"}))
    run = ok(as_alice(stack, "POST", "/api/2.0/mlflow/runs/create", json={"experiment_id": experiment_id}))
    run_id = str(run["run"]["info"]["run_id"])  # type: ignore[index]
    ok(as_alice(stack, "POST", "/api/2.0/mlflow/runs/log-metric",
                json={"run_id": run_id, "key": "loss", "value": 0.125, "timestamp": 0, "step": 0}))
    ok(as_alice(stack, "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/a.txt",
                data=b"alice's artifact\n"))
    ok(as_alice(stack, "POST", "/api/2.0/mlflow/registered-models/create", json={"name": MODEL}))
    return experiment_id, run_id


def observe_oidc(stack: loopback.LoopbackStack, idp: OidcProvider, experiment_id: str,
                 run_id: str) -> dict[str, requests.Response]:
    admin = (stack.admin_username, stack.admin_password)
    person = sign_in(stack, idp, ALICE_EMAIL)
    return {
        "run": requests.get(f"{stack.tracking_uri}/api/2.0/mlflow/runs/get", auth=admin, timeout=TIMEOUT,
                            params={"run_id": run_id}),
        "artifact": requests.get(f"{stack.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}"
                                 "/artifacts/a.txt", auth=admin, timeout=TIMEOUT),
        "model": requests.get(f"{stack.tracking_uri}/api/2.0/mlflow/registered-models/get", auth=admin,
                              timeout=TIMEOUT, params={"name": MODEL}),
        "password": as_alice(stack, "GET", "/api/2.0/mlflow/users/current"),
        "person reads the run": person.get(f"{stack.tracking_uri}/api/2.0/mlflow/runs/get", timeout=TIMEOUT,
                                           params={"run_id": run_id}),
    }


def observe_basic(stack: loopback.LoopbackStack, experiment_id: str) -> dict[str, requests.Response]:
    return {
        "grant": as_alice(stack, "POST", "/api/2.0/mlflow/experiments/update",
                          json={"experiment_id": experiment_id, "new_name": "switch-team-renamed"}),
        "model": as_alice(stack, "GET", "/api/2.0/mlflow/registered-models/get", params={"name": MODEL}),
    }


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seen]:
    """basic-auth with a team's data, then auth oidc (observed), then basic-auth again (observed)."""
    require_host_binaries()
    venv = oidc_venv()
    with OidcProvider(tmp_path_factory.mktemp("idp")) as idp:
        idp.set_user(ALICE_EMAIL, groups=[USERS_GROUP])
        stack = loopback.LoopbackStack()
        try:
            experiment_id, run_id = team_data(stack)
            basic = stack.settings

            stack.stop_mlflow()
            client = register(idp, stack)
            render_as(stack, dataclasses.replace(basic, auth="oidc", oidc=OidcSettings(
                issuer=idp.issuer, client_id=client.client_id, admin_group="mlflow-admins",
                allowed_groups=(USERS_GROUP,))), venv)
            stack.replacements[f"{basic.tracking_uri}/callback"] = f"{stack.tracking_uri}/callback"
            stack.write_host_files()
            stack.startup_timeout = 300
            stack.start_mlflow(env=provider_trust(idp))
            under_oidc = observe_oidc(stack, idp, experiment_id, run_id)
            with loopback.autocommit_cursor(stack.auth_postgres_dsn) as cursor:
                cursor.execute("SELECT username FROM users WHERE username = %s", (ALICE,))
                basic_users_kept = cursor.fetchone() == (ALICE,)

            stack.stop_mlflow()
            render_as(stack, basic, Path(sys.prefix))
            stack.start_mlflow()
            yield Seen(under_oidc, observe_basic(stack, experiment_id), basic_users_kept)
        finally:
            stack.close()


def test_under_oidc_every_run_artifact_and_model_is_still_there(seen):
    assert seen.under_oidc["run"].json()["run"]["data"]["metrics"][0]["value"] == 0.125
    assert seen.under_oidc["artifact"].content == b"alice's artifact\n"
    assert seen.under_oidc["model"].status_code == 200


def test_under_oidc_a_basic_auth_password_no_longer_signs_in(seen):
    refused = seen.under_oidc["password"]
    assert refused.status_code == 401 and refused.headers["content-type"].startswith("application/json")


def test_under_oidc_the_person_signs_in_through_the_provider_and_reads_by_the_default_permission(seen):
    assert seen.under_oidc["person reads the run"].status_code == 200


def test_under_oidc_basic_auths_users_stay_in_their_database(seen):
    assert seen.basic_users_kept


def test_switching_back_to_basic_restores_the_password_and_the_grants(seen):
    assert seen.under_basic_again["grant"].status_code == 200, seen.under_basic_again["grant"].text
    assert seen.under_basic_again["model"].status_code == 200
