"""Servers the tests start on 127.0.0.1: moto in a thread, and stopping a server's process."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from typing import Any

STOP_TIMEOUT_SECONDS = 10


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
