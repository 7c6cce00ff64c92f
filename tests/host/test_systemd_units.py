"""`systemd-analyze verify` accepts every unit the user data writes, with nothing on stderr.

verify resolves the units' dependencies and executables inside `--root`: the tree gets this
machine's system units, the rendered files at their host paths, a copy of the venv's `mlflow`, and
what this machine's nginx.service runs (the user data adds a drop-in to the distribution's unit).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.loopback import host_file_contents, loopback_settings
from tests.support.tls_loopback import certbot_venv
from userdata import layout, tls

pytestmark = pytest.mark.host

SYSTEM_UNITS = Path("/usr/lib/systemd/system")
SETTINGS = loopback_settings(public_hostname="203.0.113.10", public_ip="203.0.113.10")


def host_root(tmp_path: Path, files: dict[str, str]) -> Path:
    if shutil.which("systemd-analyze") is None or not SYSTEM_UNITS.is_dir():
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    for host_path, content in files.items():
        target = root / host_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(0o755 if content.startswith("#!") else 0o644)
    mlflow = root / layout.VENV_DIR.lstrip("/") / "bin" / "mlflow"
    mlflow.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(sys.prefix) / "bin" / "mlflow", mlflow)
    if tls.CERTBOT_INSTALL_SCRIPT in files:  # the renewal unit runs the venv's certbot
        certbot = root / tls.CERTBOT.lstrip("/")
        certbot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(certbot_venv() / "bin" / "certbot", certbot)
    # What this machine's nginx.service runs (the drop-in is verified with the unit it extends).
    for executable in ("/usr/sbin/nginx", "/sbin/start-stop-daemon"):
        if not Path(executable).exists():
            pytest.skip(f"{executable} is not installed (Debian packages nginx, dpkg)")
        target = root / executable.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(executable, target)
    return root


def units(files: dict[str, str]) -> list[str]:
    """The units the user data writes, and the distribution's units it adds a drop-in to."""
    names = set()
    for path in files:
        relative = Path(path).relative_to(layout.SYSTEMD_DIR) if path.startswith(f"{layout.SYSTEMD_DIR}/") else None
        if relative is not None:
            names.add(relative.parts[0].removesuffix(".d") if len(relative.parts) > 1 else relative.name)
    return sorted(names)


def verify(root: Path, names: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", *names], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("tls", ["off", "letsencrypt"])
def test_systemd_accepts_every_rendered_unit_without_warnings(tmp_path, tls):
    files = host_file_contents(dataclasses.replace(SETTINGS, tls=tls))
    names = units(files)
    assert layout.UNIT_NAME in names
    assert layout.NGINX_UNIT_NAME in names  # this machine's nginx.service, with the rendered drop-in
    result = verify(host_root(tmp_path, files), names)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_systemd_analyze_reports_a_broken_unit(tmp_path):
    files = host_file_contents(SETTINGS)
    files[layout.UNIT_PATH] = files[layout.UNIT_PATH].replace("Restart=always", "Restart=sometimes")
    result = verify(host_root(tmp_path, files), [layout.UNIT_NAME])
    assert "restart specifier" in result.stderr
