"""Pebble, Let's Encrypt's test ACME server, on 127.0.0.1 for the HTTPS tests.

pebble-challtestsrv is the DNS server pebble's validator asks: it answers every A query with 127.0.0.1,
so any test hostname validates against the nginx listening on `http_port`. Pebble's own HTTPS (its
directory) uses a certificate from a throwaway CA made here, which certbot trusts through
REQUESTS_CA_BUNDLE; the certificates pebble issues chain to a different root, read from its management
interface (`issuing_root`), which is what clients of the issued certificate trust.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.ports import free_port
from tests.support.servers import stop

STARTUP_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class Pebble:
    directory_url: str
    directory_ca: Path  # trust this to talk ACME to pebble (certbot: REQUESTS_CA_BUNDLE)
    issuing_root: Path  # trust this to accept the certificates pebble issues
    log: Path

    def orders_placed(self) -> int:
        """New orders pebble has accepted so far (an issuance or a renewal each places one)."""
        return self.log.read_text(errors="replace").count("Added order ")


def pebble_binaries_missing() -> list[str]:
    return [name for name in ("pebble", "pebble-challtestsrv") if shutil.which(name) is None]


@contextmanager
def running_pebble(workdir: Path, *, http_port: int, acme_port: int | None = None,
                   validity_seconds: int | None = None) -> Iterator[Pebble]:
    """Pebble validating HTTP-01 challenges against 127.0.0.1:`http_port`, stopped on exit.

    `acme_port` fixes where the directory listens (https://127.0.0.1:<acme_port>/dir), for settings
    rendered before pebble starts; `validity_seconds` how long its certificates are valid (pebble's
    default: 5 years)."""
    workdir.mkdir(parents=True, exist_ok=True)
    directory_ca, certificate, key = _directory_tls(workdir)
    dns_port, management_port = free_port(), free_port()
    acme_port = acme_port or free_port()
    config = workdir / "pebble-config.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{acme_port}",
        "managementListenAddress": f"127.0.0.1:{management_port}",
        "certificate": str(certificate),
        "privateKey": str(key),
        "httpPort": http_port,
        "tlsPort": free_port(),  # TLS-ALPN-01 is not used; nothing listens there
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
        **({"certificateValidityPeriod": validity_seconds} if validity_seconds else {}),
    }}))
    dns_log, pebble_log = workdir / "challtestsrv.log", workdir / "pebble.log"
    env = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        # Deterministic runs: never reject a good nonce (pebble rejects 5% by default to test clients).
        "PEBBLE_WFE_NONCEREJECT": "0",
        # Every order validates its challenge anew (pebble reuses half of the valid authorizations by
        # default), so a renewal proves the challenge is still served.
        "PEBBLE_AUTHZREUSE": "0",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with dns_log.open("wb") as out:
            processes.append(subprocess.Popen(
                ["pebble-challtestsrv", "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "",
                 "-tlsalpn01", "", "-management", f"127.0.0.1:{free_port()}", "-defaultIPv6", ""],
                stdout=out, stderr=subprocess.STDOUT,
            ))
        _wait_for_port(dns_port, processes[-1], dns_log)
        with pebble_log.open("wb") as out:
            processes.append(subprocess.Popen(
                ["pebble", "-config", str(config), "-dnsserver", f"127.0.0.1:{dns_port}"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            ))
        _wait_for_port(acme_port, processes[-1], pebble_log)
        _wait_for_port(management_port, processes[-1], pebble_log)
        issuing_root = workdir / "pebble-issuing-root.pem"
        context = ssl.create_default_context(cafile=str(directory_ca))
        with urllib.request.urlopen(
            f"https://127.0.0.1:{management_port}/roots/0", context=context, timeout=10
        ) as response:
            issuing_root.write_bytes(response.read())
        yield Pebble(
            directory_url=f"https://127.0.0.1:{acme_port}/dir",
            directory_ca=directory_ca,
            issuing_root=issuing_root,
            log=pebble_log,
        )
    finally:
        for process in reversed(processes):
            stop(process)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    name = log.stem
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{name} did not listen on {port} in {STARTUP_TIMEOUT_SECONDS}s:\n{log.read_text()}")


def _directory_tls(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and, signed by it, a certificate for 127.0.0.1 that pebble serves its API with."""
    now = datetime.datetime.now(datetime.timezone.utc)
    validity = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlflow-aws test ACME directory CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0]).not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False,
        ), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0]).not_valid_after(validity[1])
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, certificate_path, key_path = (
        workdir / "directory-ca.pem", workdir / "directory-cert.pem", workdir / "directory-key.pem"
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return ca_path, certificate_path, key_path
