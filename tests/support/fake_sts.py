"""Stand-ins for AWS STS on 127.0.0.1, for the deploy scripts' AWS check: one that refuses the credentials
with a given error code (the XML body STS sends), and one that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator
from typing import Any

ERROR_MESSAGES = {
    "InvalidClientTokenId": "The security token included in the request is invalid.",
    "SignatureDoesNotMatch": "The request signature we calculated does not match the signature you provided.",
    "ExpiredToken": "The security token included in the request is expired",
}


def error_body(code: str) -> bytes:
    message = ERROR_MESSAGES.get(code, "refused")
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
    ).encode()


class _RefusingServer(http.server.ThreadingHTTPServer):
    code: str


class _RefusingHandler(http.server.BaseHTTPRequestHandler):
    server: _RefusingServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = error_body(self.server.code)
        self.send_response(403)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def refusing_sts(code: str) -> Iterator[str]:
    """An STS endpoint URL whose every answer is HTTP 403 with error `code`."""
    server = _RefusingServer(("127.0.0.1", 0), _RefusingHandler)
    server.code = code
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def silent_endpoint() -> Iterator[str]:
    """A URL whose server accepts the connection (the kernel's backlog does) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def closed_endpoint() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
