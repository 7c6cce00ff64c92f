"""INTERIM: a plain MLflow server behind the nginx upstream, until tests/support/loopback.py exists."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from userdata.files import HostFile


@dataclass(frozen=True)
class MlflowUpstream:
    port: int
    nginx_files: list[HostFile]
    client_env: dict[str, str] = field(default_factory=dict)


@contextmanager
def running_mlflow_upstream(workdir: Path, *, hostname: str) -> Iterator[MlflowUpstream]:
    workdir.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (workdir / "mlflow.log").open("wb")
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    process = subprocess.Popen([
        mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{workdir}/mlflow.db",
        "--artifacts-destination", str(workdir / "artifacts"), "--serve-artifacts",
        "--allowed-hosts", f"{hostname},{hostname}:*",
    ], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError((workdir / "mlflow.log").read_text())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        files = [
            HostFile("/etc/nginx/conf.d/mlflow-upstream.conf", f"upstream mlflow {{ server 127.0.0.1:{port}; }}\n"),
            HostFile("/etc/nginx/snippets/mlflow-proxy.conf", """location / {
    proxy_pass http://mlflow;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-Proto $scheme;
    client_max_body_size 0;
}
"""),
        ]
        yield MlflowUpstream(port=port, nginx_files=files)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
