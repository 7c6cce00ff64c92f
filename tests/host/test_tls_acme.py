"""HTTPS end to end on loopback: the rendered nginx sites, issuance script and units obtain a
certificate from pebble (a real ACME server) for a test hostname, and nginx serves MLflow with it.

The tests run in file order on one host: first what a client sees while the certificate is pending,
then issuance, then the HTTPS server, then renewal.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.support import loopback
from tests.support.pebble import Pebble, free_port, running_pebble
from tests.support.tls_loopback import TlsHost, tls_binaries_missing
from userdata import layout, tls

pytestmark = pytest.mark.host

HOSTNAME = "mlflow.test"
ISSUANCE_TIMEOUT_SECONDS = 120
POLL_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Host:
    tls: TlsHost
    pebble: Pebble

    @property
    def http_port(self) -> int:
        return self.tls.http_port

    @property
    def https_port(self) -> int:
        return self.tls.https_port

    def path(self, host_path: str) -> Path:
        return self.tls.path(host_path)

    def certificate_path(self) -> Path:
        return self.path(tls.certificate_path(self.tls.settings))

    def run_issuance(self) -> subprocess.CompletedProcess[str]:
        """What systemd runs for mlflow-certificate.service, run here in the foreground."""
        result = subprocess.run(
            self.tls.service_command(tls.ISSUANCE_SERVICE),
            env=self.tls.env(REQUESTS_CA_BUNDLE=str(self.pebble.directory_ca)),
            capture_output=True, text=True, timeout=ISSUANCE_TIMEOUT_SECONDS,
        )
        self.tls.wait_for_nginx_reloads()
        return result


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    missing = tls_binaries_missing() + loopback.host_binaries_missing()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages nginx, certbot, pebble, postgresql, openssl)")
    acme_port = free_port()
    settings = loopback.loopback_settings(
        tls="letsencrypt", public_hostname=HOSTNAME, acme_directory=f"https://127.0.0.1:{acme_port}/dir",
    )
    tls_host = TlsHost(settings, https_port=free_port())
    try:
        with running_pebble(tls_host.stack.root / "pebble", http_port=tls_host.http_port,
                            acme_port=acme_port) as pebble:
            tls_host.start()
            tls_host.run_boot_commands()
            yield Host(tls_host, pebble)
    finally:
        tls_host.close()


@pytest.fixture(scope="module")
def issued(host: Host) -> Host:
    result = host.run_issuance()
    assert result.returncode == 0, f"issuance failed:\n{result.stdout}\n{result.stderr}"
    return host


# --- before issuance ---------------------------------------------------------------------------


def test_boot_enables_the_pending_site_in_place_of_the_default_one(host: Host) -> None:
    enabled = host.path(tls.ENABLED_SITE)
    assert enabled.resolve() == host.path(tls.PENDING_SITE)
    assert not host.path(layout.NGINX_DEFAULT_SITE_ENABLED).exists()


def test_boot_starts_issuance_and_its_retry_timer(host: Host) -> None:
    calls = host.tls.systemctl_calls()
    assert "start --no-block mlflow-certificate.service" in calls
    assert any(call.startswith("enable ") and "mlflow-certificate.timer" in call for call in calls)
    assert any(call.startswith("enable ") and "certbot.timer" in call for call in calls)


def test_before_issuance_a_client_gets_a_503_explaining_the_certificate_is_pending(host: Host) -> None:
    _require_pending(host)
    for method, path in (("GET", "/"), ("POST", "/api/2.0/mlflow/runs/create"), ("GET", "/#/experiments")):
        response = _http(host, method, path)
        assert response.status == 503
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.headers["Retry-After"]
        assert "waiting for its TLS certificate" in response.body
        assert f"https://{HOSTNAME}" in response.body


def test_before_issuance_health_reaches_mlflow(host: Host) -> None:
    _require_pending(host)
    response = _http(host, "GET", "/health")
    assert (response.status, response.body.strip()) == (200, "OK")


def test_before_issuance_nothing_answers_on_the_https_port(host: Host) -> None:
    _require_pending(host)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", host.https_port), timeout=5).close()


# --- issuance ----------------------------------------------------------------------------------


def test_issuance_obtains_a_certificate_for_the_hostname_from_the_acme_directory(issued: Host) -> None:
    certificate = x509.load_pem_x509_certificate(issued.certificate_path().read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [HOSTNAME]
    issuer = certificate.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert "Pebble" in str(issuer)


def test_issuance_switches_nginx_to_the_https_site(issued: Host) -> None:
    assert issued.path(tls.ENABLED_SITE).resolve() == issued.path(tls.HTTPS_SITE)


def test_issuance_stops_the_retry_timer_once_the_certificate_exists(issued: Host) -> None:
    assert "disable --now mlflow-certificate.timer" in issued.tls.systemctl_calls()
    again = issued.run_issuance()
    assert again.returncode == 0
    assert "exists" in again.stdout
    assert "attempt" not in again.stdout


# --- serving HTTPS -----------------------------------------------------------------------------


def test_after_issuance_http_redirects_to_https(issued: Host) -> None:
    response = _http(issued, "GET", "/api/2.0/mlflow/experiments/search?max_results=1")
    assert response.status == 301
    assert response.headers["Location"] == f"https://{HOSTNAME}/api/2.0/mlflow/experiments/search?max_results=1"


def test_after_issuance_health_still_answers_on_http_for_monitors(issued: Host) -> None:
    response = _http(issued, "GET", "/health")
    assert (response.status, response.body.strip()) == (200, "OK")


def test_https_presents_the_issued_certificate_for_the_hostname(issued: Host) -> None:
    with _tls_connection(issued) as connection:
        served = connection.getpeercert(binary_form=True)
    assert served is not None
    issued_leaf = x509.load_pem_x509_certificate(issued.certificate_path().read_bytes())
    assert x509.load_der_x509_certificate(served).serial_number == issued_leaf.serial_number


def test_https_negotiates_tls_1_3_and_accepts_tls_1_2_with_a_forward_secret_aead_cipher(issued: Host) -> None:
    with _tls_connection(issued) as connection:
        assert connection.version() == "TLSv1.3"
    with _tls_connection(issued, maximum=ssl.TLSVersion.TLSv1_2) as connection:
        negotiated = connection.cipher()
        assert negotiated is not None
        cipher, version, _ = negotiated
        assert version == "TLSv1.2"
        assert cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher)


def test_https_sends_hsts(issued: Host) -> None:
    for path in ("/health", "/api/2.0/mlflow/experiments/search?max_results=1"):
        response = _https(issued, "GET", path)
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_mlflow_client_reaches_health_and_logs_a_run_over_https(
    issued: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests
    from mlflow.tracking import MlflowClient

    _resolve_hostname_to_loopback(monkeypatch)
    tracking_uri = f"https://{HOSTNAME}:{issued.https_port}"
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(issued.pebble.issuing_root))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", issued.tls.stack.admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", issued.tls.stack.admin_password)

    health = requests.get(f"{tracking_uri}/health", verify=str(issued.pebble.issuing_root), timeout=10)
    assert (health.status_code, health.text.strip()) == (200, "OK")

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment(f"tls-{time.time_ns()}")
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "transport", "https")
    client.log_metric(run.info.run_id, "accuracy", 0.93)
    client.log_text(run.info.run_id, "served over TLS", "notes.txt")
    client.set_terminated(run.info.run_id)

    stored = client.get_run(run.info.run_id)
    assert stored.data.params == {"transport": "https"}
    assert stored.data.metrics == {"accuracy": 0.93}
    assert [artifact.path for artifact in client.list_artifacts(run.info.run_id)] == ["notes.txt"]


def test_a_client_that_does_not_trust_the_issuing_ca_is_refused(
    issued: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    _resolve_hostname_to_loopback(monkeypatch)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://{HOSTNAME}:{issued.https_port}/health", timeout=10)


# --- renewal -----------------------------------------------------------------------------------


def test_renewal_reloads_nginx_with_the_renewed_certificate(issued: Host) -> None:
    before = x509.load_pem_x509_certificate(issued.certificate_path().read_bytes()).serial_number
    directories = {name: str(issued.path(path)) for name, path in (
        ("--config-dir", tls.LETSENCRYPT_DIR), ("--work-dir", "/var/lib/letsencrypt"),
        ("--logs-dir", "/var/log/letsencrypt"),
    )}
    # What certbot.timer runs, forced: the deploy hook recorded at issuance must reload nginx.
    result = subprocess.run(
        ["certbot", "renew", "--force-renewal", "--no-random-sleep-on-renew", "--non-interactive",
         *[part for pair in directories.items() for part in pair]],
        env=issued.tls.env(REQUESTS_CA_BUNDLE=str(issued.pebble.directory_ca)),
        capture_output=True, text=True, timeout=ISSUANCE_TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    renewed = x509.load_pem_x509_certificate(issued.certificate_path().read_bytes()).serial_number
    assert renewed != before

    deadline = time.monotonic() + POLL_TIMEOUT_SECONDS
    served = before
    while served != renewed and time.monotonic() < deadline:
        with _tls_connection(issued) as connection:
            der = connection.getpeercert(binary_form=True)
        assert der is not None
        served = x509.load_der_x509_certificate(der).serial_number
        if served != renewed:
            time.sleep(0.1)
    assert served == renewed, "nginx still serves the old certificate after renewal"


# --- helpers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: str


def _require_pending(host: Host) -> None:
    assert not host.certificate_path().exists(), "these checks must run before issuance (file order)"


def _http(host: Host, method: str, path: str) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", host.http_port, timeout=10)
    return _request(connection, method, path)


def _https(host: Host, method: str, path: str) -> Response:
    context = ssl.create_default_context(cafile=str(host.pebble.issuing_root))
    connection = _SniHttpsConnection("127.0.0.1", host.https_port, context, timeout=10)
    return _request(connection, method, path)


class _SniHttpsConnection(http.client.HTTPConnection):
    """Connects to 127.0.0.1 but speaks TLS (SNI, certificate check) for the test hostname."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.tls_context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self.tls_context.wrap_socket(self.sock, server_hostname=HOSTNAME)


def _request(connection: http.client.HTTPConnection, method: str, path: str) -> Response:
    try:
        connection.request(method, path, headers={"Host": HOSTNAME})
        response = connection.getresponse()
        return Response(response.status, dict(response.getheaders()), response.read().decode())
    finally:
        connection.close()


@contextmanager
def _tls_connection(host: Host, maximum: ssl.TLSVersion | None = None) -> Iterator[ssl.SSLSocket]:
    """A verified TLS connection to the HTTPS port for the test hostname, trusting pebble's root."""
    context = ssl.create_default_context(cafile=str(host.pebble.issuing_root))
    if maximum is not None:
        context.maximum_version = maximum
    raw = socket.create_connection(("127.0.0.1", host.https_port), timeout=10)
    with context.wrap_socket(raw, server_hostname=HOSTNAME) as connection:
        yield connection


def _resolve_hostname_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only inside this test process: the test hostname resolves to 127.0.0.1, as DNS would make it."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real_getaddrinfo("127.0.0.1" if host == HOSTNAME else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_no_server_block_names_nginxs_version(issued: Host) -> None:
    for response in (_http(issued, "GET", "/"), _http(issued, "GET", "/health"), _https(issued, "GET", "/health")):
        assert response.headers["Server"] == "nginx"
