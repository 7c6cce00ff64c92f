"""The loopback stack (tests/support/loopback.py) as the benches run it.

Two differences from the tests' stack, both through the harness's public attributes before it
starts: MLflow runs from a venv built by the rendered install script (bench.host_install, bytecode
compiled as on the host; the project's venv may have none, which would make every start compile
MLflow), and a variant may edit the rendered nginx files to compare a setting against the rendered
one. Without a variant, every file is the rendered one.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import naming
from bench.common import process_tree
from tests.support.loopback import LoopbackStack, autocommit_cursor, remap
from tests.support.ports import free_port
from userdata import layout

_UPSTREAM_SERVER = f"{layout.MLFLOW_BIND_HOST}:{layout.MLFLOW_PORT}"
# Variant name -> (host path, rendered text, replacement) edits of the rendered nginx files.
NGINX_VARIANTS: dict[str, list[tuple[str, str, str]]] = {
    "rendered": [],
    # Idle connections to MLflow kept and reused (what the rendered upstream had before the bench).
    "upstream-keepalive": [
        (layout.NGINX_UPSTREAM, f"    server {_UPSTREAM_SERVER};\n",
         f"    server {_UPSTREAM_SERVER};\n    keepalive 16;\n"),
    ],
    # Unbuffered responses read from MLflow one memory page at a time (nginx's default buffer sizes).
    "page-buffers": [
        (layout.NGINX_PROXY_SNIPPET, "proxy_buffer_size 64k;\n", ""),
        (layout.NGINX_PROXY_SNIPPET, "proxy_buffers 4 64k;\n", ""),
    ],
    # nginx's default buffering: request bodies spooled to disk before MLflow sees a byte, responses
    # read ahead into buffers and temporary files.
    "buffered": [
        (layout.NGINX_PROXY_SNIPPET, "proxy_request_buffering off;", "proxy_request_buffering on;"),
        (layout.NGINX_PROXY_SNIPPET, "proxy_buffering off;", "proxy_buffering on;"),
    ],
}


def apply_variant(files: dict[str, str], variant: str) -> None:
    for path, old, new in NGINX_VARIANTS[variant]:
        if old not in files[path]:
            raise KeyError(f"variant {variant}: {path} no longer holds {old!r}")
        files[path] = files[path].replace(old, new)


# What the service's environment lacks on the host but inherits here from a developer's or CI's shell.
HOST_ENVIRONMENT = {"PYTHONDONTWRITEBYTECODE": ""}


@contextmanager
def bench_stack(venv: Path | None, *, variant: str = "rendered", start: bool = True,
                **overrides: Any) -> Iterator[LoopbackStack]:
    """A LoopbackStack with HostSettings `overrides`, MLflow from `venv` (None: the project's venv)."""
    stack = LoopbackStack(start=False, **overrides)
    try:
        if venv is not None:
            stack.replacements[layout.VENV_DIR] = str(venv)
        apply_variant(stack.files, variant)
        if start:
            stack.prepare()
            stack.start_postgres()
            stack.start_mlflow(HOST_ENVIRONMENT)
            stack.start_nginx()
        yield stack
    finally:
        stack.close()


def rendered_pycache_prefix(stack: LoopbackStack) -> Path | None:
    """Where the rendered unit points PYTHONPYCACHEPREFIX (remapped), if it does."""
    for assignment in stack.unit.get("Environment", []):
        for word in shlex.split(assignment):
            key, _, value = word.partition("=")
            if key == "PYTHONPYCACHEPREFIX" and value:
                return Path(stack.remap(value))
    return None


def http_status(url: str, timeout: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0


def poll_until_ok(url: str, deadline: float, interval: float = 0.05) -> float | None:
    """monotonic() of the first 200 from `url`, or None at the deadline."""
    while time.monotonic() < deadline:
        if http_status(url, timeout=2.0) == 200:
            return time.monotonic()
        time.sleep(interval)
    return None


class HealthWatcher:
    """Polls `url` in a thread from start until the first 200 (or `limit` seconds)."""

    def __init__(self, url: str, limit: float) -> None:
        self.url = url
        self.limit = limit
        self.healthy_at: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.healthy_at = poll_until_ok(self.url, time.monotonic() + self.limit)

    def start(self) -> HealthWatcher:
        self._thread.start()
        return self

    def wait(self) -> float | None:
        self._thread.join(timeout=self.limit + 10)
        return self.healthy_at


def start_nginx_unwaited(stack: LoopbackStack) -> None:
    """nginx from the rendered site, not waiting for MLflow: on the host it runs before MLflow does."""
    conf = stack.nginx_config()
    with (stack.logs / "nginx-stdout.log").open("ab") as log:
        stack.nginx = subprocess.Popen(stack.nginx_command(conf, "-g", "daemon off;"), stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while http_status(f"{stack.tracking_uri}/health") == 0:  # 502 once nginx listens
        if time.monotonic() > deadline or stack.nginx.poll() is not None:
            raise RuntimeError(f"nginx did not listen: {stack.nginx_log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)


def fresh_databases(stack: LoopbackStack) -> None:
    """An empty tracking database and no auth database: what a new RDS instance holds."""
    with autocommit_cursor(stack.postgres.dsn("postgres")) as cursor:
        for database in (naming.AUTH_DATABASE, naming.TRACKING_DATABASE):
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{naming.TRACKING_DATABASE}"')


def service_environment(stack: LoopbackStack) -> dict[str, str]:
    """What ExecStart sees: the unit's Environment= lines, moto's endpoints, the configure step's env file."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "MLFLOW_"))}
    for assignment in stack.unit.get("Environment", []):
        for word in shlex.split(assignment):
            key, _, value = word.partition("=")
            env[key] = remap(value, stack.replacements)
    env.update(stack.aws_environment())
    env.update(stack.env_file_values())
    return env


class PlainServer:
    """The rendered ExecStart without its `--app-name` (the guarded basic-auth), on another port, same
    database and bucket: MLflow with no authentication, to isolate what basic-auth costs. With
    `app_name`, that app instead (`basic-auth`: MLflow's own, without the server guard)."""

    def __init__(self, stack: LoopbackStack, app_name: str | None = None) -> None:
        self.stack = stack
        self.app_name = app_name
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        (exec_start,) = self.stack.unit["ExecStart"]
        words = shlex.split(remap(exec_start, self.stack.replacements))
        index = words.index("--app-name")
        del words[index:index + 2]
        if self.app_name is not None:
            words[index:index] = ["--app-name", self.app_name]
        return [word.replace(str(self.stack.mlflow_port), str(self.port)) for word in words]

    def __enter__(self) -> PlainServer:
        log_path = self.stack.logs / f"mlflow-{self.app_name or 'plain'}.log"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), env=service_environment(self.stack), stdout=log,
                                            stderr=log, cwd=self.stack.path(layout.STATE_DIR), start_new_session=True)
        if poll_until_ok(f"{self.uri}/health", time.monotonic() + 180, interval=0.2) is None:
            self.__exit__()
            raise RuntimeError(f"plain mlflow server did not start: {log_path.read_text(errors='replace')[-2000:]}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def rendered_workers(stack: LoopbackStack) -> int:
    """The `--workers` of the rendered ExecStart (what userdata.sizing chose for these settings)."""
    (exec_start,) = stack.unit["ExecStart"]
    words = shlex.split(exec_start)
    return int(words[words.index("--workers") + 1])


def nginx_process_ids(stack: LoopbackStack) -> list[int]:
    return process_tree(stack.nginx.pid) if stack.nginx is not None and stack.nginx.poll() is None else []


def process_role(pid: int) -> str:
    """A short name for a process of the MLflow tree, from its command line."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "gone"
    line = " ".join(words)
    checks: list[tuple[Callable[[str], bool], str]] = [
        (lambda s: " server " in f"{s} " and "mlflow" in s and "uvicorn" not in s, "mlflow server (parent)"),
        (lambda s: "resource_tracker" in s, "multiprocessing resource tracker"),
        (lambda s: "spawn_main" in s, "uvicorn worker"),
        (lambda s: "uvicorn" in s, "uvicorn"),
        (lambda s: "huey" in s or "job" in s, "job runner"),
    ]
    for check, role in checks:
        if check(line):
            return role
    return line[:60]
