"""Servers the tests start on 127.0.0.1: moto in a thread, stopping a server's process, and reading their
access logs up to now."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

STOP_TIMEOUT_SECONDS = 10
MARKER_WAIT_SECONDS = 10.0


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """moto's server on a free loopback port, as the endpoint URL boto3 takes."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if it has not exited in time; always reaped."""
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def logged_until_now(logs: Sequence[tuple[Path, int, str]]) -> list[list[str]]:
    """The lines each access log gained since its byte offset, up to a marker request sent now to the
    server that writes it: (log, offset, base URL) each. A server writes a request's line once its
    response is sent, so lines of requests whose responses the caller already holds come before the
    marker's (nginx here runs one worker; moto's werkzeug logs as each request ends). Waiting for the
    marker's line, under a deadline, waits for them without a fixed sleep."""
    import requests

    marker = f"/log-marker-{uuid.uuid4().hex}"
    with requests.Session() as session:
        session.trust_env = False
        for _, _, base in logs:
            session.get(base + marker, timeout=30)  # refused or not found: only its log line counts
    deadline = time.monotonic() + MARKER_WAIT_SECONDS
    while True:
        gained = [_lines_from(path, offset) for path, offset, _ in logs]
        ends = [next((i for i, line in enumerate(lines) if marker in line), None) for lines in gained]
        if all(end is not None for end in ends):
            return [lines[:end] for lines, end in zip(gained, ends, strict=True)]
        assert time.monotonic() < deadline, f"no log line for {marker} after {MARKER_WAIT_SECONDS:.0f} s"
        time.sleep(0.05)


def _lines_from(path: Path, offset: int) -> list[str]:
    if not path.exists():
        return []
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace").splitlines()
