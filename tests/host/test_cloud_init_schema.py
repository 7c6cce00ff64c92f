"""cloud-init's own schema check accepts the rendered document (Debian's cloud-init 22.4 here; the
document uses only keys that 22.4 and Ubuntu 24.04's 24.x both accept)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

import userdata
from tests.support.loopback import loopback_settings

pytestmark = pytest.mark.host

SETTINGS = loopback_settings(public_hostname="203.0.113.10", public_ip="203.0.113.10")


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("cloud-init") is None:
        pytest.skip("cloud-init is not installed (Debian package cloud-init)")
    return subprocess.run(["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("tls", ["off", "letsencrypt"])
def test_cloud_init_accepts_the_rendered_document(tmp_path, tls):
    path = tmp_path / "user-data"
    path.write_text(userdata.render(dataclasses.replace(SETTINGS, tls=tls)))
    result = schema_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_cloud_init_rejects_a_broken_document(tmp_path):
    rendered = userdata.render(SETTINGS)
    broken = rendered.replace("  system: true", "  system: sometimes", 1)  # a boolean in cloud-init's schema
    assert broken != rendered
    path = tmp_path / "user-data"
    path.write_text(broken)
    result = schema_check(path)
    assert result.returncode != 0
    assert "users.1" in result.stdout + result.stderr
