"""The rendered TLS files, run for real on 127.0.0.1: nginx from the rendered sites, the rendered
issuance script and site switch, certbot against pebble.

Everything the host would find at an absolute path (/etc/nginx, /etc/letsencrypt, /usr/local/sbin, ...)
lives under one temporary root instead, and ports 80/443 become free ports on 127.0.0.1: `remap` is the
single text transformation that does both, applied to every rendered file. The scripts then run
unchanged, with two stand-ins first on PATH: `nginx` (the real binary, pointed at the temporary
prefix) and `systemctl` (records what the scripts ask of systemd and reloads or starts nginx, as
`systemctl reload-or-restart nginx` would).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from userdata.files import HostFile

NGINX = "/usr/sbin/nginx"
STOP_TIMEOUT_SECONDS = 10.0
# Host paths the rendered TLS and nginx files use; each moves under the temporary root.
HOST_PATH_PREFIXES = (
    "/etc/nginx",
    "/etc/letsencrypt",
    "/var/lib/letsencrypt",
    "/var/log/letsencrypt",
    "/var/lib/mlflow-acme",
    "/var/lib/mlflow-certificate",
    "/usr/local/sbin",
    "/etc/systemd/system",
)
_HOST_PATH = re.compile(r"(?<![\w./-])(" + "|".join(map(re.escape, HOST_PATH_PREFIXES)) + r")(?=[/\s;\"')]|$)")
_LISTEN = re.compile(r"\blisten\s+(80|443)\b")


@dataclass(frozen=True)
class Layout:
    root: Path
    http_port: int
    https_port: int

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def nginx_conf(self) -> Path:
        return self.root / "etc/nginx/nginx.conf"

    @property
    def nginx_prefix(self) -> Path:
        return self.root / "nginx"

    @property
    def systemctl_log(self) -> Path:
        return self.root / "systemctl.log"

    def path(self, host_path: str) -> Path:
        """Where a host path lives in this layout."""
        return Path(remap(host_path, self))

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", **extra}


def remap(text: str, layout: Layout) -> str:
    """A rendered file as it must read on loopback: host paths under `layout.root`, 80/443 on free ports."""
    text = _HOST_PATH.sub(lambda match: f"{layout.root}{match.group(1)}", text)
    ports = {"80": layout.http_port, "443": layout.https_port}
    return _LISTEN.sub(lambda match: f"listen 127.0.0.1:{ports[match.group(1)]}", text)


def install(files: list[HostFile], layout: Layout) -> None:
    for host_file in files:
        target = layout.path(host_file.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(remap(host_file.content, layout))
        target.chmod(int(host_file.permissions, 8))


def prepare(layout: Layout) -> None:
    """The directories and stand-ins a fresh Ubuntu host with nginx and certbot installed has."""
    for directory in ("etc/nginx/conf.d", "etc/nginx/sites-available", "etc/nginx/sites-enabled",
                      "etc/nginx/snippets", "nginx/logs", "bin"):
        (layout.root / directory).mkdir(parents=True, exist_ok=True)
    # An Ubuntu image enables this site; the boot commands must take it out of the way.
    default_site = layout.root / "etc/nginx/sites-enabled/default"
    default_site.write_text(f"server {{ listen 127.0.0.1:{layout.http_port} default_server; return 418; }}\n")
    layout.nginx_conf.write_text(_nginx_conf(layout))
    prefix_args = (f"-p {shlex.quote(str(layout.nginx_prefix))}/ -c {shlex.quote(str(layout.nginx_conf))} "
                   f"-e {shlex.quote(str(layout.nginx_prefix / 'logs/error.log'))}")
    _write_executable(layout.bin_dir / "nginx", f'#!/bin/sh\nexec {NGINX} {prefix_args} "$@"\n')
    pid_file = shlex.quote(str(layout.nginx_prefix / "nginx.pid"))
    _write_executable(layout.bin_dir / "systemctl", f"""#!/bin/sh
echo "$*" >> {shlex.quote(str(layout.systemctl_log))}
case "$*" in
  "reload-or-restart nginx"|"reload nginx")
    if [ -s {pid_file} ] && kill -0 "$(cat {pid_file})" 2>/dev/null; then
      exec {NGINX} {prefix_args} -s reload
    fi
    exec {NGINX} {prefix_args} ;;
esac
""")


def run_boot_commands(commands: list[str], layout: Layout, *, timeout: float = 60) -> None:
    for command in commands:
        subprocess.run(["bash", "-euo", "pipefail", "-c", remap(command, layout)], env=layout.env(),
                       check=True, timeout=timeout, capture_output=True)


def exec_start(unit_path: str, layout: Layout) -> list[str]:
    """The command line of a rendered unit's ExecStart=, remapped: what systemd would run."""
    unit = layout.path(unit_path).read_text()
    (line,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def systemctl_calls(layout: Layout) -> list[str]:
    return layout.systemctl_log.read_text().splitlines() if layout.systemctl_log.exists() else []


@contextmanager
def nginx_stopped_on_exit(layout: Layout) -> Iterator[None]:
    """Stops the nginx the stand-in systemctl started (found by its pid file), whatever happens."""
    try:
        yield
    finally:
        pid_file = layout.nginx_prefix / "nginx.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGQUIT)
            _wait_until_gone(pid)


def _wait_until_gone(pid: int) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def _write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _nginx_conf(layout: Layout) -> str:
    prefix = layout.nginx_prefix
    # Workers of a root-started nginx run as nobody and could not read the temporary root.
    user = "user root;\n" if os.geteuid() == 0 else ""
    mime_types = "include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else ""
    return f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    {mime_types}
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    # As Ubuntu's nginx.conf has it: the MLflow site must narrow this itself.
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    include {layout.root}/etc/nginx/conf.d/*.conf;
    include {layout.root}/etc/nginx/sites-enabled/*;
}}
"""


def binaries_missing() -> list[str]:
    return [name for name in (NGINX,) if shutil.which(name) is None]
