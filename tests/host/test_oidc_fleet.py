"""`auth: oidc` on a fleet: two hosts on one database behind the HTTPS stand-in for the load balancer share
what a login needs, with no Redis. A login the load balancer starts on one host finishes on the other, and
the session then works on both; so do a personal access token and its revocation.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.host.conftest import require_host_binaries
from tests.support.fleet_loopback import LOOPBACK_VPC, StandInLoadBalancer
from tests.support.loopback import LOOPBACK
from tests.support.oidc_loopback import USERS_GROUP, OidcFleetHost, OidcLoopbackStack, create_token
from tests.support.oidc_provider import OidcProvider
from tests.support.ports import free_port

pytestmark = pytest.mark.host

ALICE = "alice.fleet@example.com"
TIMEOUT = 60


@dataclass
class Fleet:
    idp: OidcProvider
    first: OidcLoopbackStack
    second: OidcFleetHost
    balancer: StandInLoadBalancer

    def only(self, host: OidcLoopbackStack) -> None:
        """The load balancer sends every request to `host`, as a target group with it alone."""
        self.balancer.set_targets([host.nginx_port])

    def browser(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.idp.ca_bundle)
        return session


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_host_binaries()
    root = tmp_path_factory.mktemp("oidc-fleet")
    with OidcProvider(root / "idp") as idp:
        idp.set_user(ALICE, groups=[USERS_GROUP])
        first_port, second_port, balancer_port = free_port(), free_port(), free_port()
        first = OidcLoopbackStack(idp, start=False, public_url=f"https://{LOOPBACK}:{balancer_port}",
                                  nginx_port=first_port, public_ip="", load_balancer_cidr=LOOPBACK_VPC)
        second: OidcFleetHost | None = None
        balancer: StandInLoadBalancer | None = None
        try:
            first.start()
            second = OidcFleetHost(first, nginx_port=second_port)
            second.start_mlflow()
            second.start_nginx()
            balancer = StandInLoadBalancer(root / "balancer", [first_port, second_port], port=balancer_port,
                                           tls=(idp.certificate, idp.key, idp.ca_bundle))
            balancer.start()
            yield Fleet(idp, first, second, balancer)
        finally:
            if balancer is not None:
                balancer.stop()
            if second is not None:
                second.close()
            first.close()


def requests_seen(host: OidcLoopbackStack, path: str) -> int:
    log = (host.logs / "nginx-access.log").read_text(errors="replace")
    return len(re.findall(rf'"[A-Z]+ {re.escape(path)}[ ?]', log))


def wait_for_requests(host: OidcLoopbackStack, path: str, count: int, timeout: float = 20.0) -> int:
    """How many requests for `path` the host's nginx logged, once it has `count` (it logs as each ends)."""
    deadline = time.monotonic() + timeout
    while requests_seen(host, path) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return requests_seen(host, path)


def test_a_login_started_on_one_host_finishes_on_the_other(fleet):
    browser = fleet.browser()
    seen = {(host, path): requests_seen(host, path) for host in (fleet.first, fleet.second)
            for path in ("/login", "/callback")}
    fleet.only(fleet.first)
    start = browser.get(f"{fleet.balancer.url}/login", allow_redirects=False, timeout=TIMEOUT)
    assert start.status_code == 302
    callback = fleet.idp.approve(start.headers["location"], ALICE)

    fleet.only(fleet.second)
    landed = browser.get(callback, allow_redirects=False, timeout=TIMEOUT)

    assert wait_for_requests(fleet.first, "/login", seen[fleet.first, "/login"] + 1) == seen[fleet.first, "/login"] + 1
    assert wait_for_requests(fleet.second, "/callback", seen[fleet.second, "/callback"] + 1) == \
        seen[fleet.second, "/callback"] + 1
    assert requests_seen(fleet.first, "/callback") == seen[fleet.first, "/callback"]
    assert requests_seen(fleet.second, "/login") == seen[fleet.second, "/login"]
    assert landed.status_code == 302 and "error" not in landed.headers["location"], landed.headers
    for host in (fleet.second, fleet.first):
        fleet.only(host)
        me = browser.get(f"{fleet.balancer.url}/api/2.0/mlflow/users/current", timeout=TIMEOUT)
        assert me.status_code == 200 and me.json()["username"] == ALICE, (host.nginx_port, me.text)


def test_a_token_made_on_one_host_works_on_the_other_until_revoked_there(fleet):
    browser = fleet.browser()
    fleet.only(fleet.first)
    start = browser.get(f"{fleet.balancer.url}/login", allow_redirects=False, timeout=TIMEOUT)
    browser.get(fleet.idp.approve(start.headers["location"], ALICE), allow_redirects=False, timeout=TIMEOUT)

    token = create_token(browser, fleet.balancer.url, "fleet")
    fleet.only(fleet.second)
    me = requests.get(f"{fleet.balancer.url}/api/2.0/mlflow/users/current", auth=(ALICE, token),
                      verify=str(fleet.idp.ca_bundle), timeout=TIMEOUT)
    assert me.status_code == 200
    (record,) = [t for t in browser.get(f"{fleet.balancer.url}/api/2.0/mlflow/users/current/tokens",
                                        timeout=TIMEOUT).json()["tokens"] if t["name"] == "fleet"]
    assert browser.delete(f"{fleet.balancer.url}/api/2.0/mlflow/users/current/tokens/{record['id']}",
                          timeout=TIMEOUT).status_code == 200
    fleet.only(fleet.first)
    refused = requests.get(f"{fleet.balancer.url}/api/2.0/mlflow/users/current", auth=(ALICE, token),
                           verify=str(fleet.idp.ca_bundle), timeout=TIMEOUT)
    assert refused.status_code == 401 and refused.headers["content-type"].startswith("application/json")

