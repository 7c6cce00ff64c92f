"""A stand-in for EC2's instance metadata service (IMDSv2 only), on 127.0.0.1, for the boot tests.

It answers what botocore's instance-metadata credential provider asks, in the order it asks: a session
token (`PUT /latest/api/token`), the instance profile's role name and that role's temporary credentials,
each GET carrying the token. A GET without a valid token gets 401, as on an instance launched with
`http_tokens = "required"` (components/host.py). The credentials are a session of the host's role in
moto (tests/support/host_role.py), which authorizes every call with the role's policy: the host's
credential chain finds them the way it does on EC2, with no key in any file or environment of the host.
"""

from __future__ import annotations

import datetime
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support import host_role
from tests.support.host_role import RoleCredentials

TOKEN_PATH = "/latest/api/token"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"
INSTANCE_ID_PATH = "/latest/meta-data/instance-id"
PUBLIC_IPV4_PATH = "/latest/meta-data/public-ipv4"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"


@dataclass
class InstanceMetadata:
    role: str
    credentials: RoleCredentials
    endpoint: str = ""  # http://127.0.0.1:<port>/ once running: AWS_EC2_METADATA_SERVICE_ENDPOINT
    tokens: set[str] = field(default_factory=set)
    credential_reads: int = 0  # GETs of the role's credentials that carried a valid token
    refused: int = 0  # GETs without a valid token
    # The instance's public address (the Elastic IP once associated); "" answers 404, as EC2 does for an
    # instance without one.
    public_ipv4: str = ""

    def credentials_document(self) -> dict[str, str]:
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        return {
            "Code": "Success",
            "LastUpdated": datetime.datetime.now(datetime.timezone.utc).strftime(stamp),
            "Type": "AWS-HMAC",
            "AccessKeyId": self.credentials.access_key_id,
            "SecretAccessKey": self.credentials.secret_access_key,
            "Token": self.credentials.session_token,
            "Expiration": self.credentials.expiration.astimezone(datetime.timezone.utc).strftime(stamp),
        }


def _handler(metadata: InstanceMetadata, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: str, content_type: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            if self.path != TOKEN_PATH or not self.headers.get(TOKEN_TTL_HEADER, "").isdigit():
                self._answer(400, "bad request")
                return
            token = secrets.token_urlsafe(32)
            with lock:
                metadata.tokens.add(token)
            self._answer(200, token)

        def do_GET(self) -> None:
            with lock:
                valid = self.headers.get(TOKEN_HEADER, "") in metadata.tokens
                if not valid:
                    metadata.refused += 1
            if not valid:
                self._answer(401, "unauthorized")
            elif self.path == CREDENTIALS_PATH:
                self._answer(200, metadata.role)
            elif self.path == INSTANCE_ID_PATH:
                self._answer(200, host_role.INSTANCE_ID)
            elif self.path == PUBLIC_IPV4_PATH and metadata.public_ipv4:
                self._answer(200, metadata.public_ipv4)
            elif self.path == CREDENTIALS_PATH + metadata.role:
                with lock:
                    metadata.credential_reads += 1
                self._answer(200, json.dumps(metadata.credentials_document()), "application/json")
            else:
                self._answer(404, "not found")

    return Handler


@contextmanager
def running_instance_metadata(role: str, credentials: RoleCredentials, public_ipv4: str = "",
                              ) -> Iterator[InstanceMetadata]:
    """The stand-in on a free port of 127.0.0.1, serving from a thread until the block exits."""
    metadata = InstanceMetadata(role=role, credentials=credentials, public_ipv4=public_ipv4)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(metadata, threading.Lock()))
    server.daemon_threads = True
    metadata.endpoint = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, name="imds-stand-in", daemon=True)
    thread.start()
    try:
        yield metadata
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
