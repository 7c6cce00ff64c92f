"""The host with `auth: oidc` on 127.0.0.1: tests/support/loopback.py's stack rendered with OidcSettings for
a real provider (tests/support/oidc_provider.py), from the host's auth: oidc venv (mlflow-oidc-auth,
resolved as the host resolves it, on Python 3.12+).

The provider registers the stack as a client whose one redirect URI is the tracking URI's /callback
(nginx's port chosen first, so the registration and the rendered user data agree), and the client
secret goes into SSM as components.server_secrets puts it. What only the test machine needs: the
server trusts the provider's throwaway CA (SSL_CERT_FILE and REQUESTS_CA_BUNDLE, as a host trusts a
public CA through its own store).

    with OidcProvider(tmp) as idp, OidcLoopbackStack(idp) as stack:
        idp.set_user("alice@example.com", groups=["mlflow-users"])
        session = sign_in(stack, idp, "alice@example.com")      # a requests.Session with the login cookie
        token = create_token(session, stack, "laptop")          # a personal access token
"""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import requests

import naming
from tests.support import mlflow_venv
from tests.support.fleet_loopback import FleetHost
from tests.support.loopback import LOOPBACK, LoopbackStack, loopback_settings
from tests.support.oidc_provider import OidcProvider, RegisteredClient
from tests.support.ports import free_port
from userdata import layout
from userdata.settings import OidcSettings

ADMIN_GROUP = "mlflow-admins"
USERS_GROUP = "mlflow-users"
# The plugin's app takes a while to import on a busy 2-CPU machine (tens of seconds per process), in the
# configure step (its store and migrations) as in the server.
STARTUP_TIMEOUT_SECONDS = 300.0
REQUEST_TIMEOUT_SECONDS = 60


def oidc_venv() -> Any:
    """The host's auth: oidc venv, or a skip naming what is missing."""
    python = mlflow_venv.python_for_oidc()
    if python is None:
        pytest.skip("mlflow-oidc-auth imports only on Python 3.12 or newer, and none is installed "
                    "(python3.12 on the PATH, or pyenv)")
    return mlflow_venv.mlflow_venv(loopback_settings().mlflow_version, auth="oidc", python=python)


class OidcLoopbackStack(LoopbackStack):
    """`public_url`: where people reach the server (default: this host's nginx), whose /callback the
    provider registers; behind the fleet's stand-in load balancer, its URL."""

    def __init__(self, provider: OidcProvider, *, start: bool = True, venv: Any = None,
                 admin_group: str = ADMIN_GROUP, allowed_groups: tuple[str, ...] = (USERS_GROUP,),
                 public_url: str | None = None, nginx_port: int | None = None, **overrides: Any) -> None:
        self.provider = provider
        nginx_port = nginx_port or free_port()
        self.public_url = public_url or f"http://{LOOPBACK}:{nginx_port}"
        self.client: RegisteredClient = provider.register_client([f"{self.public_url}/callback"])
        oidc = OidcSettings(issuer=provider.issuer, client_id=self.client.client_id, admin_group=admin_group,
                            allowed_groups=allowed_groups)
        settings = loopback_settings(auth="oidc", oidc=oidc, **overrides)
        super().__init__(settings, start=False, venv=venv or oidc_venv(), nginx_port=nginx_port)
        trust_provider(self, provider)
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    def put_parameters(self) -> None:
        super().put_parameters()
        name = naming.parameter_name(self.settings.ssm_prefix, naming.OIDC_CLIENT_SECRET)
        self.ssm_client().put_parameter(Name=name, Value=self.client.client_secret, Type="SecureString",
                                        Overwrite=True)
        self.parameters[name] = self.client.client_secret

    @property
    def secret_values(self) -> list[str]:
        return [*super().secret_values, self.client.client_secret]

    def _service_environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return super()._service_environment({**provider_trust(self.provider), **(extra or {})})


def provider_trust(provider: OidcProvider) -> dict[str, str]:
    """The environment that makes the server trust the provider's throwaway CA (a real provider's is public)."""
    return {"SSL_CERT_FILE": str(provider.ca_bundle), "REQUESTS_CA_BUNDLE": str(provider.ca_bundle)}


def trust_provider(host: Any, provider: OidcProvider) -> None:
    """What every auth: oidc host of these tests shares: a longer start, and the rendered redirect URI
    (the tracking URI's, without the port people use here) pointed at where they reach it."""
    host.startup_timeout = STARTUP_TIMEOUT_SECONDS
    host.replacements[f"{host.settings.tracking_uri}/callback"] = f"{host.public_url}/callback"


class OidcFleetHost(FleetHost):
    """Another auth: oidc host of a fleet: the primary's provider, client, venv and settings."""

    def __init__(self, primary: OidcLoopbackStack, nginx_port: int | None = None) -> None:
        self.provider = primary.provider
        self.client = primary.client
        self.public_url = primary.public_url
        super().__init__(primary, primary.settings, venv=Path(primary.replacements[layout.VENV_DIR]),
                         nginx_port=nginx_port)
        trust_provider(self, self.provider)
        self.write_host_files()  # again, with the redirect URI pointed at the load balancer

    def _service_environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return super()._service_environment({**provider_trust(self.provider), **(extra or {})})


def sign_in(server: LoopbackStack | str, provider: OidcProvider, email: str) -> requests.Session:
    """What a browser does, without one: the server's /login sends it to the provider, the user approves,
    the provider sends it back to /callback, and the server sets its session cookie. `server`: a stack, or
    the URL people reach it at."""
    return sign_in_answered(server, provider, email)[0]


def sign_in_answered(server: LoopbackStack | str, provider: OidcProvider,
                     email: str) -> tuple[requests.Session, requests.Response]:
    """sign_in(), and the server's answer to the provider's redirect back (/callback)."""
    base = server if isinstance(server, str) else server.tracking_uri
    session = requests.Session()
    session.trust_env = False
    start = session.get(f"{base}/login", allow_redirects=False, timeout=REQUEST_TIMEOUT_SECONDS)
    assert start.status_code == 302, f"/login: {start.status_code} {start.text[:300]}"
    callback = provider.approve(start.headers["location"], email)
    assert callback.startswith(f"{base}/callback?"), callback
    landed = session.get(callback, allow_redirects=False, timeout=REQUEST_TIMEOUT_SECONDS)
    return session, landed


def create_token(session: requests.Session, server: LoopbackStack | str, name: str, *,
                 expires_in: datetime.timedelta = datetime.timedelta(days=30), user: str | None = None) -> str:
    """A personal access token, as the UI's Access tokens page creates it (for `user` too, as an admin).
    `server`: a stack, or the URL people reach it at."""
    base = server if isinstance(server, str) else server.tracking_uri
    expiration = (datetime.datetime.now(datetime.timezone.utc) + expires_in).isoformat()
    path = f"/api/2.0/mlflow/users/{urllib.parse.quote(user, safe='')}/tokens" if user else \
        "/api/2.0/mlflow/users/current/tokens"
    created = session.post(f"{base}{path}", json={"name": name, "expiration": expiration},
                           timeout=REQUEST_TIMEOUT_SECONDS)
    assert created.status_code == 201, f"{created.status_code} {created.text[:300]}"
    token: str = created.json()["token"]
    return token
