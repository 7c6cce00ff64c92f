"""`extraAllowedOrigins`: the UI's writes from another origin (a reverse proxy, a forwarded port under
another name) pass MLflow's cross-origin and Host checks on the stack that lists it, and only there.
localhost origins, which SSM port forwarding gives a browser, pass on every stack (MLflow's own rule)."""

from __future__ import annotations

import secrets

import pytest
import requests

from tests.host.conftest import TEAM_ORIGIN
from tests.support import loopback

pytestmark = pytest.mark.host

CREATE_EXPERIMENT = "/ajax-api/2.0/mlflow/experiments/create"


def ui_write(stack: loopback.LoopbackStack, origin: str, host: str | None = None) -> requests.Response:
    """What the UI sends to create an experiment: a POST with the page's Origin (and its Host)."""
    headers = {"Origin": origin, **({"Host": host} if host else {})}
    with requests.Session() as session:
        session.trust_env = False
        return session.post(stack.tracking_uri + CREATE_EXPERIMENT, headers=headers, timeout=30,
                            auth=(stack.admin_username, stack.admin_password),
                            json={"name": f"origin-{secrets.token_hex(4)}"})


def test_the_listed_origin_may_write_through_its_own_host_name(team_stack):
    response = ui_write(team_stack, TEAM_ORIGIN, host=TEAM_ORIGIN.split("://", 1)[1])
    assert response.status_code == 200, response.text


def test_a_browsers_preflight_from_the_listed_origin_is_answered_without_a_login(team_stack):
    with requests.Session() as session:
        session.trust_env = False
        response = session.options(team_stack.tracking_uri + CREATE_EXPERIMENT, timeout=30, headers={
            "Origin": TEAM_ORIGIN, "Host": TEAM_ORIGIN.split("://", 1)[1], "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == TEAM_ORIGIN


def test_an_unlisted_origin_is_still_refused(team_stack):
    response = ui_write(team_stack, "https://elsewhere.example")
    assert response.status_code == 403
    assert "Cross-origin request blocked" in response.text


def test_without_the_setting_the_same_origin_and_host_are_refused(loopback_stack):
    assert ui_write(loopback_stack, TEAM_ORIGIN).status_code == 403
    host_only = ui_write(loopback_stack, loopback_stack.tracking_uri, host=TEAM_ORIGIN.split("://", 1)[1])
    assert host_only.status_code == 403


@pytest.mark.parametrize("origin", ["https://localhost:8443", "http://127.0.0.1:8080"])
def test_a_forwarded_localhost_port_may_write_on_every_stack(loopback_stack, origin):
    assert ui_write(loopback_stack, origin, host=origin.split("://", 1)[1]).status_code == 200
