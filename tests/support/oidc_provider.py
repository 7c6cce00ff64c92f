"""A real OpenID Connect provider on 127.0.0.1 for the tests: `oidc-provider-mock` (PyPI) over HTTPS.

The provider is the package's own Flask app (authorization code flow with nonce, ID tokens signed RS256,
a JWKS, dynamic client registration, userinfo), served by werkzeug in a thread with a certificate from a
throwaway CA, so the server under test meets what it meets in production: an https issuer whose
discovery document, keys and token endpoint it must trust. Clients must be registered (their secret and
redirect URIs are checked), and users carry the claims a test gives them, a `groups` claim among them.

    with OidcProvider(tmp_path) as idp:
        client = idp.register_client(["http://127.0.0.1:8080/callback"])
        idp.set_user("alice@example.com", groups=["mlflow-users"])
        ...
        callback = idp.approve(authorization_url, "alice@example.com")   # the user's "Authorize" click

`ca_bundle` is the machine's CA bundle plus the throwaway CA: point SSL_CERT_FILE and REQUESTS_CA_BUNDLE
at it for a process that must trust the provider.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

LOOPBACK = "127.0.0.1"
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
REQUEST_TIMEOUT_SECONDS = 30
# How long ID tokens (and the access tokens beside them) live, unless a test asks for less.
TOKEN_LIFETIME = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


def _write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1 and localhost, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlflow-aws test identity provider CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK)),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            # Python 3.13's default context verifies strictly (VERIFY_X509_STRICT): it wants both key ids.
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


class OidcProvider:
    def __init__(self, directory: Path, *, token_lifetime: datetime.timedelta = TOKEN_LIFETIME) -> None:
        import werkzeug.serving
        from oidc_provider_mock import app

        self.directory = directory
        ca, cert, key = _write_certificates(directory / "idp-tls")
        self.ca_certificate = ca
        # For 127.0.0.1 from the same CA: a stand-in for another HTTPS endpoint (the fleet's load balancer).
        self.certificate, self.key = cert, key
        self.ca_bundle = directory / "idp-tls" / "ca-bundle.pem"
        system = SYSTEM_CA_BUNDLE.read_bytes() if SYSTEM_CA_BUNDLE.is_file() else b""
        self.ca_bundle.write_bytes(system + b"\n" + ca.read_bytes())
        application = app(require_client_registration=True, require_nonce=True,
                          access_token_max_age=token_lifetime)
        self._server = werkzeug.serving.make_server(LOOPBACK, 0, application, threaded=True,
                                                    ssl_context=(str(cert), str(key)))
        self.port: int = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="oidc-provider", daemon=True)
        self._thread.start()

    # -- facts -----------------------------------------------------------------------------------------
    @property
    def issuer(self) -> str:
        """What the provider's discovery document and tokens say (`iss`): its own URL, no trailing slash."""
        return f"https://{LOOPBACK}:{self.port}"

    def _url(self, path: str) -> str:
        return f"{self.issuer}{path}"

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self._url(path) if path.startswith("/") else path,
                                verify=str(self.ca_bundle), timeout=REQUEST_TIMEOUT_SECONDS, **kwargs)

    # -- what an identity provider's administrator does ---------------------------------------------------
    def register_client(self, redirect_uris: list[str]) -> RegisteredClient:
        answer = self._request("POST", "/oauth2/clients", json={"redirect_uris": redirect_uris})
        answer.raise_for_status()
        body = answer.json()
        return RegisteredClient(body["client_id"], body["client_secret"], tuple(body["redirect_uris"]))

    def set_user(self, email: str, *, groups: list[str], name: str | None = None, **claims: Any) -> None:
        """The user `email` (also their subject) with these groups in the `groups` claim."""
        body = {"email": email, "email_verified": True, "name": name or email.split("@")[0], "groups": groups,
                **claims}
        answer = self._request("PUT", f"/users/{urllib.parse.quote(email, safe='')}", json=body)
        assert answer.status_code == 204, answer.text

    # -- what a user does ------------------------------------------------------------------------------------
    def approve(self, authorization_url: str, email: str) -> str:
        """The user `email` authorizes the request at `authorization_url` (the provider's form, posted);
        returns where the provider sends the browser back: the client's redirect URI with a code."""
        if not authorization_url.startswith(self.issuer + "/"):
            raise AssertionError(f"not this provider's authorization URL: {authorization_url}")
        answer = self._request("POST", authorization_url, data={"sub": email}, allow_redirects=False)
        assert answer.status_code == 302, f"{answer.status_code}: {answer.text[:500]}"
        return str(answer.headers["location"])

    def id_token(self, client: RegisteredClient, email: str) -> str:
        """An ID token for `email` issued to `client`, through the authorization code flow without a
        browser (what an identity provider's own CLI does for a script)."""
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uris[0],
            "scope": "openid email profile", "nonce": secrets.token_urlsafe(12), "state": secrets.token_urlsafe(12),
        })
        callback = self.approve(f"{self._url('/oauth2/authorize')}?{query}", email)
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["code"][0]
        answer = self._request("POST", "/oauth2/token", auth=(client.client_id, client.client_secret), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0]})
        answer.raise_for_status()
        return str(answer.json()["id_token"])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> OidcProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
