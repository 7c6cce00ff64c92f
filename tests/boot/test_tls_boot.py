"""The default TLS path booted for real: a stack's default config (the certificate it asks for, the
name it is for), its user data under cloud-init and systemd, and pebble as the ACME directory.

pebble (tests/support/pebble.py) runs on this machine's 127.0.0.1 and validates HTTP-01 against port 80,
where the container's nginx listens (it shares the host's network); pebble-challtestsrv resolves every
name to 127.0.0.1. Test-only, beside the rendered files: the ACME directory's URL (HostSettings'
`acme_directory`, the one seam the settings have for it) and, through drop-ins for the certificate
services, the CA certbot must trust to talk to pebble's directory.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shlex
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlflow
import pytest
import requests
from cryptography import x509
from mlflow.tracking import MlflowClient

from tests.boot.conftest import require_boot
from tests.support import boot
from tests.support.boot_stack import CERTIFICATE_UNITS, BootedHost, boot_settings
from tests.support.pebble import Pebble, pebble_binaries_missing, running_pebble
from tests.support.ports import free_port
from userdata import layout, tls

pytestmark = pytest.mark.boot

FIRST_BOOT_TIMEOUT_SECONDS = 900.0
ISSUANCE_TIMEOUT_SECONDS = 420.0  # the issuance script's attempts wait 30 s, then 120 s
DIRECTORY_CA = f"{boot.TEST_DIR}/acme-directory-ca.pem"
# The services that run certbot: issuance at boot, and renewal (mlflow-certificate-renewal.timer).
CERTBOT_UNITS = CERTIFICATE_UNITS


@dataclasses.dataclass(frozen=True)
class TlsBoot:
    host: BootedHost
    pebble: Pebble

    @property
    def hostname(self) -> str:
        return urlsplit(self.host.settings.tracking_uri).hostname or ""

    def served_certificate(self) -> x509.Certificate:
        """The certificate nginx serves on 443 for the hostname, verified against pebble's issuing root."""
        context = ssl.create_default_context(cafile=str(self.pebble.issuing_root))
        with socket.create_connection(("127.0.0.1", tls.HTTPS_PORT), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=self.hostname) as wrapped:
            der = wrapped.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)


@pytest.fixture(scope="module")
def tls_boot() -> Iterator[TlsBoot]:
    require_boot()
    missing = pebble_binaries_missing()
    if missing:
        pytest.skip(f"the ACME directory needs {', '.join(missing)} (Debian packages pebble, certbot)")
    acme_port = free_port()
    # The default config's TLS, with the ACME directory moved to pebble.
    settings = dataclasses.replace(boot_settings(), acme_directory=f"https://127.0.0.1:{acme_port}/dir")
    assert settings.tls != "off"
    with boot.boot_workdir("mlflow-aws-boot-tls-") as workdir, \
            running_pebble(workdir / "pebble", http_port=layout.HTTP_PORT, acme_port=acme_port) as pebble:
        host = BootedHost(
            settings, workdir,
            extra_files={DIRECTORY_CA: pebble.directory_ca.read_bytes()},
            extra_drop_ins={unit: {"REQUESTS_CA_BUNDLE": DIRECTORY_CA} for unit in CERTBOT_UNITS},
        )
        with host:
            host.running().wait_for_health(timeout=FIRST_BOOT_TIMEOUT_SECONDS)
            yield TlsBoot(host, pebble)


@pytest.fixture
def issued(tls_boot: TlsBoot) -> TlsBoot:
    """Once nginx serves the issued certificate on 443."""
    def serving() -> bool | None:
        try:
            tls_boot.served_certificate()
        except (OSError, ssl.SSLError):
            return None
        return True

    boot.wait_until("nginx serving the certificate on 443", serving, ISSUANCE_TIMEOUT_SECONDS, interval=2.0,
                    describe=lambda: tls_boot.host.running().journal("--unit", "mlflow-certificate.service")[-3000:])
    return tls_boot


@pytest.fixture
def resolve_to_loopback(issued: TlsBoot, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tracking URI's name resolves to 127.0.0.1 in this process (the Elastic IP stands there);
    an address needs nothing."""
    name = issued.hostname
    try:
        ipaddress.ip_address(name)
        return
    except ValueError:
        pass
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == name else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_the_certificate_is_the_one_the_default_config_asks_for(issued):
    certificate = issued.served_certificate()
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert issued.hostname in [*names.get_values_for_type(x509.DNSName),
                               *(str(ip) for ip in names.get_values_for_type(x509.IPAddress))]
    container = issued.host.running()
    assert container.run(["readlink", tls.ENABLED_SITE]).stdout.strip() == tls.HTTPS_SITE


def test_a_client_with_the_uri_and_login_works_over_https(issued, resolve_to_loopback, monkeypatch):
    for key in [key for key in os.environ if key.startswith(("AWS_", "MLFLOW_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", issued.host.admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", issued.host.admin_password)
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(issued.pebble.issuing_root))
    monkeypatch.setenv("NO_PROXY", "*")
    uri = issued.host.settings.tracking_uri
    assert uri.startswith("https://")
    mlflow.set_tracking_uri(uri)
    try:
        experiment_id = mlflow.set_experiment("boot-tls").experiment_id
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_metric("accuracy", 0.9)
            mlflow.log_text("over https", "notes.txt")
        client = MlflowClient(uri)
        assert client.get_run(run.info.run_id).data.metrics == {"accuracy": 0.9}
        assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes.txt") == "over https"
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None restores the default


def test_port_80_redirects_to_https_and_keeps_health_open(issued):
    headers = {"Host": issued.hostname}
    redirect = requests.get("http://127.0.0.1/api/2.0/mlflow/experiments/search", headers=headers,
                            allow_redirects=False, timeout=10)
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == f"https://{issued.hostname}/api/2.0/mlflow/experiments/search"
    assert requests.get("http://127.0.0.1/health", headers=headers, timeout=10).status_code == 200


def test_renewal_is_scheduled_and_a_renewal_reloads_the_sandboxed_nginx(issued):
    container = issued.host.running()
    renewal_timer = Path(tls.RENEWAL_TIMER).name
    assert container.run(["systemctl", "is-active", renewal_timer]).stdout.strip() == "active"
    # The issuance timer's job is done once the certificate is served.
    assert container.run(["systemctl", "is-enabled", "mlflow-certificate.timer"]).stdout.strip() == "disabled"
    before = issued.served_certificate().serial_number
    # What the renewal timer runs, forced, as a service with the renewal unit's environment: the deploy
    # hook (mlflow-tls-site https, then the state saved to SSM) reloads nginx, sandboxed.
    environment = issued.host.unit_environments[Path(tls.RENEWAL_SERVICE).name]
    result = container.run(["systemd-run", "--wait", "--pipe", "--quiet", "--collect",
                            *(f"--setenv={key}={value}" for key, value in environment.items()),
                            *shlex.split(tls.renew_command()), "--force-renewal"], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    boot.wait_until("nginx serving the renewed certificate",
                    lambda: True if issued.served_certificate().serial_number != before else None, 60)
    assert boot.unit_state(container, layout.NGINX_UNIT_NAME)["ActiveState"] == "active"
    assert container.check(["systemctl", "--failed", "--no-legend", "--plain"]).strip() == ""
