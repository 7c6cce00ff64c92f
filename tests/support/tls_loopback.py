"""The host with `tls: letsencrypt` on 127.0.0.1: tests/support/loopback.py's stack (PostgreSQL, moto,
MLflow from the rendered unit) plus the rendered TLS files, nginx switching between them, and certbot
asking pebble (tests/support/pebble.py) for the certificate.

Host paths and ports go through loopback's one `remap()`, with `tls_replacements()` added to the
stack's replacements: /etc/letsencrypt, certbot's work and log directories, the ACME webroot and the
issuance state move into the stack's tree, port 443 becomes a free port (80 already is one), and
certbot's venv is `certbot_venv()`: the pinned certbot, installed once by the rendered install script
(kept next to the project's venv, so later runs find it complete and return at once).
The rendered scripts then run unchanged, with two stand-ins first on PATH: `nginx` (the real binary,
pointed at the stack's nginx.conf) and `systemctl` (records what the scripts ask of systemd; a
reload of nginx reloads the stack's nginx, as `systemctl reload-or-restart nginx` would).
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support import loopback, ports
from tests.support.loopback import LoopbackStack
from userdata import layout, tls
from userdata.settings import HostSettings

STARTUP_TIMEOUT_SECONDS = 30.0
COMMAND_TIMEOUT_SECONDS = 60.0
CERTBOT_INSTALL_TIMEOUT_SECONDS = 900.0
# The pinned certbot the host installs, installed the host's way for the tests (certbot_venv()).
TEST_CERTBOT_VENV = Path(sys.prefix) / "mlflow-aws-certbot"

# Everything the TLS files keep outside the directories loopback already moves.
TLS_HOST_DIRECTORIES = (
    tls.LETSENCRYPT_DIR,
    "/var/lib/letsencrypt",
    "/var/log/letsencrypt",
    tls.ACME_WEBROOT,
    str(Path(tls.ISSUANCE_STATE).parent),
)
# What Ubuntu's nginx package leaves enabled, and serving, before the boot commands run.
UBUNTU_DEFAULT_SITE = """server {
    listen 80 default_server;
    location / { return 200 "Welcome to nginx!\\n"; }
}
"""


def tls_replacements(root: Path, *, https_port: int, certbot_venv: Path | None = None) -> dict[str, str]:
    """Added to loopback's replacements: the TLS files' host directories into `root`, 443 to
    `https_port`, certbot's venv to `certbot_venv` (by default into `root` too)."""
    return {
        **{directory: f"{root}{directory}" for directory in TLS_HOST_DIRECTORIES},
        tls.CERTBOT_DIR: f"{root}{tls.CERTBOT_DIR}",
        **({tls.CERTBOT_VENV: str(certbot_venv)} if certbot_venv is not None else {}),
        f"listen {tls.HTTPS_PORT} ": f"listen {loopback.LOOPBACK}:{https_port} ",
    }


def certbot_venv() -> Path:
    """The host's certbot venv for the tests, made by the rendered install script itself (its uv the
    project's, its cache the user's), once: later calls find the completion marker and return."""
    script = tls.certbot_install_script(loopback.loopback_settings(tls="letsencrypt"))
    uv = shutil.which("uv") or str(Path(sys.prefix) / "bin" / "uv")
    uv_dir = TEST_CERTBOT_VENV.parent / "mlflow-aws-uv"
    (uv_dir / "bin").mkdir(parents=True, exist_ok=True)
    if not (uv_dir / "bin" / "uv").exists():
        (uv_dir / "bin" / "uv").symlink_to(uv)
    cache = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv")
    script = loopback.remap(script, {tls.CERTBOT_VENV: str(TEST_CERTBOT_VENV), layout.UV_DIR: str(uv_dir),
                                     layout.UV_CACHE_DIR: cache})
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                            timeout=CERTBOT_INSTALL_TIMEOUT_SECONDS)
    if result.returncode != 0:
        raise AssertionError(f"installing certbot failed:\n{result.stdout}{result.stderr}")
    return TEST_CERTBOT_VENV


def host_replacements(root: Path, *, nginx_port: int, https_port: int) -> dict[str, str]:
    """Every host path and port the rendered files use, moved into `root` (no stack needed)."""
    return {
        **loopback.loopback_replacements(root, venv=root / "venv", mlflow_port=ports.free_port(),
                                         nginx_port=nginx_port),
        **tls_replacements(root, https_port=https_port),
    }


def tls_binaries_missing() -> list[str]:
    """Debian's binaries the TLS tests run (certbot is PyPI's: certbot_venv())."""
    return [name for name in ("nginx", "pebble", "pebble-challtestsrv") if shutil.which(name) is None]


class TlsHost:
    """A LoopbackStack for `settings` (tls: letsencrypt), its TLS side on `https_port`."""

    def __init__(self, settings: HostSettings, *, https_port: int) -> None:
        self.stack = LoopbackStack(settings, start=False)
        self.settings = self.stack.settings
        self.https_port = https_port
        self.stack.replacements.update(
            tls_replacements(self.stack.root, https_port=https_port, certbot_venv=certbot_venv()))
        self.bin_dir = self.stack.root / "bin"
        self.systemctl_log = self.stack.logs / "systemctl.log"
        self.conf = self.stack.root / "nginx" / "nginx.conf"

    @property
    def http_port(self) -> int:
        return self.stack.nginx_port

    @property
    def user_data_boot_commands(self) -> list[str]:
        """The TLS lines of the rendered runcmd (they come last, after nginx and MLflow are up)."""
        runcmd: list[str] = yaml.safe_load(self.stack.user_data)["runcmd"]
        tls_commands = tls.tls_boot_commands(self.settings)
        if runcmd[-len(tls_commands):] != tls_commands:
            raise AssertionError(f"the rendered runcmd does not end with the TLS commands: {runcmd}")
        return runcmd[-len(tls_commands):]

    def path(self, host_path: str) -> Path:
        return self.stack.path(host_path)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of the host's units: the stand-ins first on PATH, AWS (SSM) is moto, signed with
        the host role's session from the metadata stand-in (no AWS_ variable of this machine's)."""
        inherited = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        return {**inherited, "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                **self.stack.aws_environment(), **extra}

    def start(self) -> None:
        """The host after cloud-init's packages and files, before runcmd's TLS lines: MLflow running,
        nginx running with Ubuntu's default site."""
        self.stack.prepare()
        self.stack.start_postgres()
        self.stack.start_mlflow()
        self._write_stand_ins()
        default_site = self.path(layout.NGINX_DEFAULT_SITE_ENABLED)
        default_site.parent.mkdir(parents=True, exist_ok=True)
        default_site.write_text(loopback.remap(UBUNTU_DEFAULT_SITE, self.stack.replacements))
        with (self.stack.logs / "nginx-stdout.log").open("ab") as log:
            self.stack.nginx = subprocess.Popen(self.stack.nginx_command(self.conf, "-g", "daemon off;"),
                                                stdout=log, stderr=log)
        self._wait_for_port(self.http_port)

    def close(self) -> None:
        self.stack.close()

    def run_boot_commands(self) -> None:
        for command in self.user_data_boot_commands:
            result = subprocess.run(["bash", "-c", loopback.remap(command, self.stack.replacements)],
                                    env=self.env(), capture_output=True, text=True,
                                    timeout=COMMAND_TIMEOUT_SECONDS)
            if result.returncode != 0:
                raise AssertionError(f"{command!r} failed:\n{result.stdout}{result.stderr}")
        self.wait_for_nginx_reloads()

    def wait_for_nginx_reloads(self) -> None:
        """Until every reload signalled so far has taken effect: `nginx -s reload` only signals the
        master, which then starts new workers and retires the old ones (as on the host)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            log = self.stack.nginx_log.read_text(errors="replace") if self.stack.nginx_log.exists() else ""
            signalled = log.count("signal process started")
            retired = log.count("gracefully shutting down")
            if retired >= signalled:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"nginx did not finish {signalled - retired} reload(s):\n{log[-3000:]}")
            time.sleep(0.05)

    def service_command(self, unit_path: str) -> list[str]:
        """A rendered unit's ExecStart=, remapped: what systemd runs for it."""
        (command,) = loopback.unit_directives(self.stack.files[unit_path])["ExecStart"]
        return shlex.split(loopback.remap(command, self.stack.replacements))

    def systemctl_calls(self) -> list[str]:
        return self.systemctl_log.read_text().splitlines() if self.systemctl_log.exists() else []

    def _write_stand_ins(self) -> None:
        # Includes whatever site is enabled, as Debian's nginx.conf does; the stack writes pid and logs.
        self.stack.nginx_config([f"{layout.NGINX_DIR}/sites-enabled/*"])
        nginx = shlex.join(self.stack.nginx_command(self.conf))
        pid_file = shlex.quote(str(self.conf.parent / "nginx.pid"))
        self.bin_dir.mkdir(exist_ok=True)
        _write_executable(self.bin_dir / "nginx", f'#!/bin/sh\nexec {nginx} "$@"\n')
        _write_executable(self.bin_dir / "systemctl", f"""#!/bin/sh
echo "$*" >> {shlex.quote(str(self.systemctl_log))}
case "$*" in
  "reload-or-restart nginx"|"reload nginx")
    if [ -s {pid_file} ] && kill -0 "$(cat {pid_file})" 2>/dev/null; then exec {nginx} -s reload; fi
    echo "systemctl stand-in: the test's nginx is not running" >&2; exit 1 ;;
esac
""")

    def _wait_for_port(self, port: int) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.stack.nginx is not None and self.stack.nginx.poll() is not None:
                raise AssertionError(f"nginx exited:\n{self.stack.nginx_log.read_text(errors='replace')}")
            try:
                with socket.create_connection((loopback.LOOPBACK, port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nothing listened on {port} within {STARTUP_TIMEOUT_SECONDS}s")


def _write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)
