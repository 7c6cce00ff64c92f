"""HTTPS end to end on loopback, the default stack's way: the rendered nginx sites, issuance script,
units and certbot (the pinned release from PyPI, installed by the rendered install script) obtain a
certificate for the host's IP address itself (127.0.0.1 here, the Elastic IP on AWS) from pebble (a
real ACME server), nginx serves MLflow with it, and the account and certificate go to SSM (moto).

The tests run in file order on one host: first what a client sees while the certificate is pending,
then issuance, then the HTTPS server, then renewal, then a replacement host that restores the saved
certificate from SSM and places no order.

Pebble 2.5 or newer is needed: 2.4 (Debian 12) also puts an IP identifier in the common name, which
certbot 5 rejects; scripts/test installs Debian 13's. Pebble 2.6 offers no ACME profiles, so these
runs also prove certbot's fallback for `--preferred-profile shortlived` (order without a profile);
its certificates are made to last 160 hours, as Let's Encrypt's short-lived ones do.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import http.client
import io
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

import naming
from client.verify import checks
from client.verify import facts as verify_facts
from tests.support import loopback
from tests.support.pebble import Pebble, running_pebble
from tests.support.ports import free_port
from tests.support.tls_loopback import UBUNTU_DEFAULT_SITE, TlsHost, tls_binaries_missing
from userdata import layout, tls

pytestmark = pytest.mark.host

HOSTNAME = loopback.LOOPBACK  # no domain: the certificate is for the address itself
ISSUANCE_TIMEOUT_SECONDS = 120
POLL_TIMEOUT_SECONDS = 15.0
SHORT_LIVED_SECONDS = 160 * 3600
SMOKE_TIMEOUT_SECONDS = 240
MIN_PEBBLE_VERSION = (2, 5)


def pebble_version() -> tuple[int, ...]:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "pebble"], capture_output=True, text=True,
                            timeout=30)
    numbers = result.stdout.split("+", 1)[0].split(".")
    return tuple(int(n) for n in numbers if n.isdigit()) if result.returncode == 0 else ()


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

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_path().read_bytes())

    def run_unit(self, unit_path: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """What systemd runs for a rendered unit's ExecStart (plus `extra`), in the foreground."""
        result = subprocess.run(
            [*self.tls.service_command(unit_path), *extra],
            env=self.tls.env(REQUESTS_CA_BUNDLE=str(self.pebble.directory_ca)),
            capture_output=True, text=True, timeout=ISSUANCE_TIMEOUT_SECONDS,
        )
        self.tls.wait_for_nginx_reloads()
        return result

    def run_issuance(self) -> subprocess.CompletedProcess[str]:
        return self.run_unit(tls.ISSUANCE_SERVICE)

    def saved_parameter(self, parameter: naming.SsmParameter) -> dict[str, str]:
        name = naming.parameter_name(self.tls.settings.ssm_prefix, parameter)
        found: dict[str, str] = self.tls.stack.ssm_client().get_parameter(Name=name, WithDecryption=True)["Parameter"]
        return found

    def served_serial(self) -> int:
        with _tls_connection(self) as connection:
            der = connection.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    missing = tls_binaries_missing() + loopback.host_binaries_missing()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages nginx, pebble, postgresql, openssl)")
    if pebble_version() < MIN_PEBBLE_VERSION:
        pytest.skip(f"needs pebble 2.5 or newer (IP identifiers in SANs only); scripts/test installs Debian 13's, "
                    f"this is {pebble_version()}")
    acme_port = free_port()
    settings = loopback.loopback_settings(tls="letsencrypt", acme_directory=f"https://127.0.0.1:{acme_port}/dir")
    assert settings.public_hostname == HOSTNAME and settings.hostname_is_ip
    tls_host = TlsHost(settings, https_port=free_port())
    try:
        with running_pebble(tls_host.stack.root / "pebble", http_port=tls_host.http_port,
                            acme_port=acme_port, validity_seconds=SHORT_LIVED_SECONDS) as pebble:
            tls_host.start()
            # What HostIdentity creates before the host boots: the two parameters, nothing saved yet.
            for parameter in naming.HOST_WRITTEN_PARAMETERS:
                tls_host.stack.ssm_client().put_parameter(
                    Name=naming.parameter_name(settings.ssm_prefix, parameter), Value=naming.UNSAVED_STATE,
                    Type="SecureString")
            tls_host.run_boot_commands()
            yield Host(tls_host, pebble)
    finally:
        tls_host.close()


@pytest.fixture(scope="module")
def issued(host: Host) -> Host:
    result = host.run_issuance()
    assert result.returncode == 0, f"issuance failed:\n{result.stdout}\n{result.stderr}"
    assert "nothing saved in" in result.stdout
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
    assert any(call.startswith("enable ") and "mlflow-certificate-renewal.timer" in call for call in calls)


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


def test_issuance_obtains_a_certificate_for_the_ip_address_from_the_acme_directory(issued: Host) -> None:
    certificate = issued.certificate()
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(address) for address in names.get_values_for_type(x509.IPAddress)] == [HOSTNAME]
    assert names.get_values_for_type(x509.DNSName) == []
    issuer = certificate.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert "Pebble" in str(issuer)
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert abs(lifetime.total_seconds() - SHORT_LIVED_SECONDS) < 3600


def test_issuance_saves_the_account_and_certificate_as_ssm_securestrings(issued: Host) -> None:
    account = issued.saved_parameter(naming.ACME_ACCOUNT)
    certificate = issued.saved_parameter(naming.TLS_CERTIFICATE)
    assert account["Type"] == certificate["Type"] == "SecureString"
    names = _archive_names(certificate["Value"])
    assert f"live/{HOSTNAME}/privkey.pem" in names and f"renewal/{HOSTNAME}.conf" in names
    assert any(name.startswith("accounts/") and name.endswith("private_key.json")
               for name in _archive_names(account["Value"]))
    assert _saved_leaf(certificate["Value"]).serial_number == issued.certificate().serial_number


def test_the_saved_state_never_reaches_a_log(issued: Host) -> None:
    values = [issued.saved_parameter(p)["Value"] for p in naming.HOST_WRITTEN_PARAMETERS]
    key = issued.path(f"{tls.LETSENCRYPT_DIR}/live/{HOSTNAME}/privkey.pem").read_text()
    logs = [path for path in issued.tls.stack.root.rglob("*.log") if path.is_file()]
    for log in logs:
        text = log.read_text(errors="replace")
        assert not any(value[:64] in text for value in values), log
        assert key.splitlines()[1] not in text, log


def test_issuance_switches_nginx_to_the_https_site(issued: Host) -> None:
    assert issued.path(tls.ENABLED_SITE).resolve() == issued.path(tls.HTTPS_SITE)


def test_issuance_stops_the_retry_timer_once_the_certificate_exists(issued: Host) -> None:
    assert "disable --now mlflow-certificate.timer" in issued.tls.systemctl_calls()
    again = issued.run_issuance()
    assert again.returncode == 0
    assert "exists" in again.stdout
    assert "attempt" not in again.stdout


# --- serving HTTPS -----------------------------------------------------------------------------


def test_after_issuance_the_acme_challenge_is_still_served_on_http(issued: Host) -> None:
    token = issued.path(f"{tls.ACME_WEBROOT}/.well-known/acme-challenge/probe")
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text("probe-token")
    try:
        response = _http(issued, "GET", "/.well-known/acme-challenge/probe")
    finally:
        token.unlink()
    assert (response.status, response.body) == (200, "probe-token")


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


def test_no_server_block_names_nginxs_version(issued: Host) -> None:
    for response in (_http(issued, "GET", "/"), _http(issued, "GET", "/health"), _https(issued, "GET", "/health")):
        assert response.headers["Server"] == "nginx"


def test_mlflow_client_reaches_health_and_logs_a_run_over_https(
    issued: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests
    from mlflow.tracking import MlflowClient

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

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://{HOSTNAME}:{issued.https_port}/health", timeout=10)


def test_verify_reports_the_served_certificate_covers_the_ip_and_matches_the_tracking_uri(
    issued: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(issued.pebble.issuing_root))
    tracking_uri = f"https://{HOSTNAME}:{issued.https_port}"
    served = verify_facts.fetch_served_certificate(tracking_uri)
    assert isinstance(served, verify_facts.ServedCertificate)
    assert served.verify_error is None
    assert x509.load_der_x509_certificate(served.der).serial_number == issued.certificate().serial_number
    outcome = checks.served_certificate(served.der, served.verify_error, tracking_uri,
                                        datetime.datetime.now(datetime.timezone.utc))
    assert outcome.passed, outcome.detail
    assert outcome.detail.startswith(f"covers {HOSTNAME}, 6.")  # 160 hours: 6.7 days
    assert outcome.detail.endswith("matches tracking_uri")


def test_verify_fails_the_certificate_when_the_client_does_not_trust_its_issuer(
    issued: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH", raising=False)
    tracking_uri = f"https://{HOSTNAME}:{issued.https_port}"
    served = verify_facts.fetch_served_certificate(tracking_uri)
    assert isinstance(served, verify_facts.ServedCertificate)
    assert served.verify_error is not None
    outcome = checks.served_certificate(served.der, served.verify_error, tracking_uri,
                                        datetime.datetime.now(datetime.timezone.utc))
    assert not outcome.passed
    assert outcome.detail.startswith("not trusted")


def test_mlflow_aws_smoke_passes_over_https_to_the_ip_address(issued: Host, tmp_path: Path) -> None:
    env_file = tmp_path / "mlflow.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI=https://{HOSTNAME}:{issued.https_port}\n"
        f"MLFLOW_TRACKING_USERNAME={issued.tls.stack.admin_username}\n"
        f"MLFLOW_TRACKING_PASSWORD={issued.tls.stack.admin_password}\n"
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "AWS_"))}
    environment.update(NO_PROXY="127.0.0.1,localhost", MLFLOW_TRACKING_SERVER_CERT_PATH=str(issued.pebble.issuing_root))
    result = subprocess.run([str(Path(sys.executable).parent / "mlflow-aws"), "smoke", "--env", str(env_file)],
                            env=environment, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_SECONDS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"smoke test of https://{HOSTNAME}:{issued.https_port}" in result.stdout
    assert "smoke test passed" in result.stdout


# --- renewal -----------------------------------------------------------------------------------


def test_renewal_by_the_timers_command_gives_nginx_a_new_certificate_without_restarting_mlflow(
    issued: Host,
) -> None:
    before = issued.certificate().serial_number
    mlflow_pid = issued.tls.stack.mlflow_pid
    orders = issued.pebble.orders_placed()
    # What mlflow-certificate-renewal.timer runs, forced: the deploy hook recorded at issuance must
    # reload nginx and save the new certificate.
    result = issued.run_unit(tls.RENEWAL_SERVICE, "--force-renewal")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    renewed = issued.certificate().serial_number
    assert renewed != before
    assert issued.pebble.orders_placed() == orders + 1

    deadline = time.monotonic() + POLL_TIMEOUT_SECONDS
    served = issued.served_serial()
    while served != renewed and time.monotonic() < deadline:
        time.sleep(0.1)
        served = issued.served_serial()
    assert served == renewed, "nginx still serves the old certificate after renewal"
    assert issued.tls.stack.mlflow_pid == mlflow_pid is not None
    assert _saved_leaf(issued.saved_parameter(naming.TLS_CERTIFICATE)["Value"]).serial_number == renewed


def test_renewal_without_force_finds_a_fresh_certificate_not_due(issued: Host) -> None:
    orders = issued.pebble.orders_placed()
    result = issued.run_unit(tls.RENEWAL_SERVICE)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "not yet due for renewal" in result.stdout + result.stderr
    assert issued.pebble.orders_placed() == orders


# --- a replacement host ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replaced(issued: Host) -> Host:
    """The same host with a fresh disk for TLS, as a new instance at the same Elastic IP boots: no
    certbot files, no webroot, no issuance state, Ubuntu's default site enabled; SSM (moto) and pebble
    are the ones the first host used. Then its boot commands and its issuance service run."""
    saved_serial = issued.certificate().serial_number
    for host_path in (tls.LETSENCRYPT_DIR, tls.CERTBOT_WORK_DIR, tls.CERTBOT_LOGS_DIR, tls.ACME_WEBROOT,
                      str(Path(tls.ISSUANCE_STATE).parent)):
        shutil.rmtree(issued.path(host_path), ignore_errors=True)
    issued.path(tls.ENABLED_SITE).unlink()
    default_site = issued.path(layout.NGINX_DEFAULT_SITE_ENABLED)
    default_site.write_text(loopback.remap(UBUNTU_DEFAULT_SITE, issued.tls.stack.replacements))
    issued.tls.run_boot_commands()
    orders = issued.pebble.orders_placed()
    result = issued.run_issuance()
    assert result.returncode == 0, f"issuance on the replacement host failed:\n{result.stdout}\n{result.stderr}"
    assert "restored the saved certificate" in result.stdout, result.stdout
    assert issued.pebble.orders_placed() == orders, "the replacement host placed an order"
    assert issued.certificate().serial_number == saved_serial
    return issued


def test_a_replacement_host_serves_the_saved_certificate_and_places_no_order(replaced: Host) -> None:
    assert replaced.served_serial() == replaced.certificate().serial_number
    assert replaced.path(tls.ENABLED_SITE).resolve() == replaced.path(tls.HTTPS_SITE)
    response = _https(replaced, "GET", "/health")
    assert (response.status, response.body.strip()) == (200, "OK")


def test_a_replacement_host_renews_with_the_restored_account(replaced: Host) -> None:
    before = replaced.certificate().serial_number
    orders = replaced.pebble.orders_placed()
    accounts = replaced.pebble.log.read_text(errors="replace").count("accounts in memory")
    result = replaced.run_unit(tls.RENEWAL_SERVICE, "--force-renewal")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert replaced.certificate().serial_number != before
    assert replaced.pebble.orders_placed() == orders + 1
    # No new ACME account was registered: the restored one signed the order.
    assert replaced.pebble.log.read_text(errors="replace").count("accounts in memory") == accounts


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


def _archive(value: str) -> dict[str, bytes | str]:
    """A saved SSM value (base64 tar.gz): path -> a file's content, or a link's target."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(value)))) as archive:
        entries: dict[str, bytes | str] = {}
        for member in archive.getmembers():
            content = archive.extractfile(member) if member.isfile() else None
            entries[member.name] = content.read() if content is not None else member.linkname
        return entries


def _archive_names(value: str) -> list[str]:
    return list(_archive(value))


def _saved_leaf(value: str) -> x509.Certificate:
    """The certificate a saved value's live/ link points to (the archive holds only that version)."""
    entries = _archive(value)
    link = f"live/{HOSTNAME}/cert.pem"
    target = entries[os.path.normpath(os.path.join(os.path.dirname(link), str(entries[link])))]
    assert isinstance(target, bytes)
    return x509.load_pem_x509_certificate(target)
