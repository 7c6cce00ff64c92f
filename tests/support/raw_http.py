"""HTTP at the socket level, for what a well-behaved client library will not do: requests from a chosen
loopback address (127.0.0.0/8 is all local on Linux, so each test or bench can be its own client as
nginx sees it), requests left half-sent, and bodies streamed until the server answers.

Also the peak resident memory of a set of processes since a reset (/proc/PID/clear_refs, VmHWM), which
shows what a process held during a request even after it has given the memory back.
"""

from __future__ import annotations

import base64
import select
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the server took before it answered


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def connect(port: int, source: str, timeout: float = 30.0) -> socket.socket:
    """A TCP connection to 127.0.0.1:`port` from `source` (any 127.x.y.z)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(method: str, path: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket, sent: int, deadline: float) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock, deadline)
    header_text, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = header_text.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += _recv(sock, deadline)
    return Answer(int(status_line.split()[1]), headers, body[:length], sent)


def _recv(sock: socket.socket, deadline: float) -> bytes:
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the server closed the connection without a whole answer")
    return chunk


def request(port: int, source: str, method: str, path: str, headers: Mapping[str, str] | None = None,
            body: bytes = b"", timeout: float = 30.0) -> Answer:
    """One request from `source`, `Connection: close`."""
    wanted = {"Connection": "close", **(headers or {})}
    if body or method in ("POST", "PUT", "PATCH"):
        wanted["Content-Length"] = str(len(body))
    with connect(port, source, timeout) as sock:
        sock.sendall(head(method, path, wanted) + body)
        return read_answer(sock, len(body), time.monotonic() + timeout)


def stream_until_answered(port: int, source: str, path: str, size: int, headers: Mapping[str, str] | None = None,
                          timeout: float = 120.0, *, chunked: bool = False) -> Answer:
    """POST a `size`-byte body a megabyte at a time, declared in Content-Length (or sent chunked, its size
    unknown to the server until the end), stopping as soon as the server answers; `sent` says how much of
    it left this client first."""
    deadline = time.monotonic() + timeout
    chunk = b"{" + b" " * (CHUNK - 1)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(size)}
    with connect(port, source, timeout) as sock:
        sock.sendall(head("POST", path, {"Content-Type": "application/json", "Connection": "close", **framing,
                                         **(headers or {})}))
        sent = 0
        while sent < size and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break
            if writable:
                piece = chunk[: min(CHUNK, size - sent)]
                framed = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
                try:
                    sock.sendall(framed)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(piece)
        if chunked and sent >= size:
            sock.sendall(b"0\r\n\r\n")
        return read_answer(sock, sent, deadline)


def half_sent(port: int, source: str, method: str, path: str, headers: Mapping[str, str], *,
              finish_headers: bool) -> socket.socket:
    """A request left unfinished: its headers without the blank line that ends them, or whole headers
    declaring a body that never comes. The caller closes the socket."""
    text = head(method, path, headers)
    sock = connect(port, source)
    sock.sendall(text if finish_headers else text[:-2])
    return sock


def reset_peak_memory(pids: Iterable[int]) -> None:
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := the current RSS


def peak_memory_kib(pids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """pid -> (VmHWM, VmRSS) in KiB."""
    found = {}
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in status if ":" in line)
        found[pid] = (int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0]))
    return found
