"""The server guard's tests (test_server_guard.py) with `auth: oidc`: every attack there, and every everyday
use, run again here against mlflow-oidc-auth's app under the guard, through nginx. The team is made the way
it is on such a server: alice signs in through the real provider and works with a personal access token;
the admin is the stack's admin (its password from SSM as its token); her DENY is the plugin's user grant
NO_PERMISSIONS. Each test of that module runs here unless its routes are basic-auth's own (the users API);
those have their twins below, on the plugin's routes.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import pytest

from tests.host import test_server_guard as basic_mode
from tests.host.conftest import require_host_binaries
from tests.host.test_server_guard import SECRET_BYTES, Caller, Team, create_run, ok, unique, upload
from tests.support.oidc_loopback import USERS_GROUP, OidcLoopbackStack, create_token, sign_in
from tests.support.oidc_provider import OidcProvider

pytestmark = pytest.mark.host

# Tests of basic-auth's own user routes, and one whose refusal comes from the plugin before MLflow's own
# check: their auth: oidc twins are below.
BASIC_AUTH_ROUTES = {"test_only_admins_list_users", "test_a_user_still_reads_their_own_account",
                     "test_a_model_version_cannot_point_at_raw_storage"}
# Issue 23's rules that the guard applies to basic-auth's app only, not yet to the plugin's (a known gap with
# auth: oidc, named in the README's Single sign-on section): the database's words scrubbed from a taken
# name's error, and a revoked grant effective on the next request (the plugin caches grants for up to 30 s).
NOT_YET_WITH_OIDC = {"test_a_taken_experiment_name_is_refused_without_the_databases_words",
                     "test_a_taken_user_name_is_refused_without_the_databases_words_or_a_hash",
                     "test_a_revoked_permission_takes_effect_on_the_next_request"}
# Tests whose fixtures (sources, private_scorer) grant through basic-auth's permission routes: their oidc twins,
# granting through the plugin's, are not written yet.
BASIC_AUTH_GRANTS = {"test_a_model_version_cannot_name_what_the_user_may_not_read",
                     "test_a_model_version_of_what_the_user_may_read_is_created_and_downloaded",
                     "test_a_scorer_of_a_denied_experiment_is_refused_like_the_experiment"}
globals().update({name: test for name, test in vars(basic_mode).items()
                  if name.startswith("test_") and callable(test)
                  and name not in BASIC_AUTH_ROUTES | NOT_YET_WITH_OIDC | BASIC_AUTH_GRANTS})

ALICE = "alice.guard@example.com"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with OidcProvider(tmp_path_factory.mktemp("idp")) as provider:
        provider.set_user(ALICE, groups=[USERS_GROUP])
        yield provider


@pytest.fixture(scope="module")
def loopback_stack(idp: OidcProvider) -> Iterator[OidcLoopbackStack]:
    """This module's stack (the session's loopback_stack is basic-auth's)."""
    require_host_binaries()
    stack = OidcLoopbackStack(idp)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
def team(loopback_stack: OidcLoopbackStack, idp: OidcProvider) -> Team:
    admin = Caller(loopback_stack.tracking_uri, loopback_stack.admin_username, loopback_stack.admin_password)
    alice = Caller(loopback_stack.tracking_uri, ALICE,
                   create_token(sign_in(loopback_stack, idp, ALICE), loopback_stack, "guard-tests"))
    experiment_id = ok(admin.post("/api/2.0/mlflow/experiments/create", {"name": unique("private")}))["experiment_id"]
    run_id = create_run(admin, experiment_id)
    upload(admin, experiment_id, run_id, "weights.bin", SECRET_BYTES)
    denied = admin.post(f"/api/2.0/mlflow/permissions/users/{urllib.parse.quote(ALICE)}/experiments/{experiment_id}",
                        {"permission": "NO_PERMISSIONS"})
    assert denied.status_code in (200, 201), denied.text
    return Team(admin, alice, experiment_id, run_id, loopback_stack.bucket)


@pytest.mark.parametrize("location", [
    "s3://{bucket}/{experiment}/{run}/artifacts",
    "s3://{bucket}/{experiment}",
    "file:///etc",
    "/var/lib/mlflow",
])
def test_a_model_version_cannot_point_at_raw_storage_the_plugin_refuses_first(team, location):
    """The plugin checks a source outside the server's URIs against the run it names, and with none it
    refuses (403) before MLflow's source rule would (400, as the admin gets it in the test above)."""
    model = unique("alice-model")
    ok(team.alice.post("/api/2.0/mlflow/registered-models/create", {"name": model}))
    source = location.format(bucket=team.bucket, experiment=team.private_experiment_id, run=team.private_run_id)

    created = team.alice.post("/api/2.0/mlflow/model-versions/create", {"name": model, "source": source})
    download = team.alice.get("/model-versions/get-artifact", name=model, version="1", path="weights.bin")

    assert created.status_code == 403 and created.headers["content-type"].startswith("application/json"), \
        created.text
    assert SECRET_BYTES not in download.content
    found = ok(team.alice.get("/api/2.0/mlflow/model-versions/search", filter=f"name='{model}'"))
    assert found.get("model_versions", []) == []


@pytest.mark.parametrize("path", ["/api/2.0/mlflow/users", "/ajax-api/2.0/mlflow/users"])
def test_only_admins_list_users_with_the_plugins_route(team, path):
    refused = team.alice.get(path)
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    listed = team.admin.get(path)
    assert listed.status_code == 200 and team.alice.username in listed.json()


def test_a_user_still_reads_their_own_account_with_the_plugins_route(team):
    assert ok(team.alice.get("/api/2.0/mlflow/users/current"))["username"] == team.alice.username
    other = team.alice.get(f"/api/2.0/mlflow/users/{urllib.parse.quote(team.admin.username)}")
    assert other.status_code == 403
