"""The host's package step (userdata/packages.py) as rendered: it waits on apt's lock and retries instead of
giving up, then puts nginx's site in place once; and the lock option it relies on is apt's own.

The rendered script runs in a temporary tree with stand-ins for apt-get, dpkg, nginx and systemctl first on
PATH (this machine's packages are never touched); apt's own honouring of DPkg::Lock::Timeout is shown with
the real apt-get on an empty dpkg database of its own (APT_CONFIG), whose lock the test holds.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

import userdata
from tests.support import loopback
from userdata import layout, packages

pytestmark = pytest.mark.host

STAND_IN = """#!/bin/bash
echo "$(basename "$0") $*" >> {log}
{body}
"""
# apt-get: `update` fails the way a held lock ends (after its wait) until the test lets it through.
APT_GET = """if [[ $* == *update* && ! -e {released} ]]; then
  echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1234 (unattended-upgr)" >&2
  exit 100
fi
[[ $* == *install* ]] && touch {installed}
exit 0"""
DPKG = """[[ $1 == -s && -e {installed} ]] && echo "Status: install ok installed"
exit 0"""


def write_stand_in(directory: Path, name: str, body: str, log: Path) -> None:
    path = directory / name
    path.write_text(STAND_IN.format(log=log, body=body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def rendered_step(tmp_path: Path, settings: userdata.HostSettings) -> tuple[Path, dict[str, str]]:
    """The package step as rendered, its host paths moved under `tmp_path`, and its environment."""
    root = tmp_path / "host"
    mapping = {path: f"{root}{path}" for path in (
        layout.PACKAGES_MARKER, layout.NGINX_DEFAULT_SITE_ENABLED, layout.NGINX_HTTP_SITE_ENABLED,
        layout.NGINX_HTTP_SITE)}
    script = tmp_path / "mlflow-packages"
    script.write_text(loopback.remap(loopback.host_file_contents(settings)[layout.PACKAGES_SCRIPT],
                                     mapping))
    script.chmod(0o755)
    for directory in ("etc/nginx/sites-enabled", "etc/nginx/sites-available"):
        (root / directory).mkdir(parents=True)
    (root / layout.NGINX_DEFAULT_SITE_ENABLED.lstrip("/")).write_text("Ubuntu's default site\n")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    marks = {"released": tmp_path / "lock-released", "installed": tmp_path / "installed"}
    write_stand_in(bin_dir, "apt-get", APT_GET.format(**marks), log)
    write_stand_in(bin_dir, "dpkg", DPKG.format(**marks), log)
    for name in ("nginx", "systemctl", "sleep"):
        write_stand_in(bin_dir, name, "exit 0", log)
    return script, {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_held_lock_is_waited_out_and_retried_then_nginx_gets_its_site_once(tmp_path: Path) -> None:
    settings = loopback.loopback_settings()
    script, env = rendered_step(tmp_path, settings)
    log = tmp_path / "calls.log"

    # All attempts meet the lock: the step fails (the services run it again), having changed nothing.
    failed = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 1
    assert f"not installed after {packages.ATTEMPTS} attempts; the next service start retries" in failed.stderr
    updates = [line for line in log.read_text().splitlines() if line.startswith("apt-get") and "update" in line]
    assert len(updates) == packages.ATTEMPTS
    assert all(f"-o DPkg::Lock::Timeout={packages.LOCK_TIMEOUT_SECONDS}" in line for line in updates)
    assert (tmp_path / "host" / layout.NGINX_DEFAULT_SITE_ENABLED.lstrip("/")).exists()
    assert not (tmp_path / "host" / layout.PACKAGES_MARKER.lstrip("/")).exists()

    # The next start (the lock was released meanwhile) installs, replaces the default site, and records it.
    (tmp_path / "lock-released").touch()
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert any(line.startswith("apt-get") and "install -y nginx python3-venv" in line for line in calls)
    assert not (tmp_path / "host" / layout.NGINX_DEFAULT_SITE_ENABLED.lstrip("/")).exists()
    assert os.readlink(tmp_path / "host" / layout.NGINX_HTTP_SITE_ENABLED.lstrip("/")).endswith(layout.NGINX_HTTP_SITE)
    assert calls[-2:] == ["nginx -t -q", f"systemctl reload-or-restart {layout.NGINX_UNIT_NAME}"]

    # Every later service start returns at once.
    before = len(log.read_text().splitlines())
    again = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and len(log.read_text().splitlines()) == before


def test_apt_waits_for_a_held_lock_as_long_as_the_option_says(tmp_path: Path) -> None:
    """The option the step passes is apt's own: apt-get waits for the dpkg frontend lock, then goes on."""
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not installed (Debian package apt)")
    admin = tmp_path / "dpkg"
    admin.mkdir()
    (admin / "status").touch()
    (tmp_path / "apt.conf").write_text(f'Dir::State::status "{admin}/status";\n')
    lock = os.open(admin / "lock-frontend", os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    held_for = 2.0
    release = threading.Timer(held_for, lambda: os.close(lock))
    started = time.monotonic()
    release.start()
    try:
        result = subprocess.run(
            ["apt-get", "-q", "-o", f"DPkg::Lock::Timeout={packages.LOCK_TIMEOUT_SECONDS}", "-y", "remove",
             "mlflow-aws-no-such-package"],
            env={**os.environ, "APT_CONFIG": str(tmp_path / "apt.conf")}, capture_output=True, text=True,
            timeout=60, check=False,
        )
    finally:
        release.cancel()
    waited = time.monotonic() - started
    assert "Waiting for cache lock" in result.stdout + result.stderr, result.stdout + result.stderr
    # It went on once the lock was free: the package it was asked to remove is simply unknown.
    assert "Unable to acquire the dpkg frontend lock" not in result.stderr
    assert waited >= held_for
