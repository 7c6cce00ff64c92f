"""Every shell script the user data writes, as rendered for each kind of stack, passes shellcheck (all its
default checks, style included), so the host's shell is linted like the rest of the code."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import userdata
from config import load_config
from host_settings import host_settings_for
from userdata import layout, tls
from userdata.settings import HostSettings

# The stacks whose user data differs in its shell: Pulumi.dev.yaml, Pulumi.prod.yaml (with an email for
# the ACME account), a fleet, tls off, and a domain whose certificate is validated through Route 53.
STACKS: dict[str, dict[str, Any]] = {
    "dev": {},
    "prod": {"protectData": True, "dbMultiAz": True, "acmeEmail": "ops@example.com"},
    "fleet": {"hosts": 3, "domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"},
    "tls-off": {"tls": "off"},
    "dns-01": {"domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"},
}
SHELL_SCRIPTS = {layout.INSTALL_SCRIPT, tls.ISSUANCE_SCRIPT, tls.CERTBOT_INSTALL_SCRIPT, tls.SITE_SWITCH}


def settings(stack: str) -> HostSettings:
    cfg = load_config(STACKS[stack], project="mlflow-aws", stack=stack, region="eu-west-1")
    return host_settings_for(cfg, artifact_bucket="mlflow-aws-dev-artifacts-0123abcd",
                             host_files_bucket="mlflow-aws-dev-host-files-0123abcd", public_ip="203.0.113.10")


def shell_scripts(s: HostSettings) -> dict[str, str]:
    return {f.path: f.content for f in userdata.host_files(s) if f.content.startswith("#!/bin/bash\n")}


def test_the_shell_scripts_are_the_four_known_ones_and_each_kind_of_stack_has_some():
    found = {path for stack in STACKS for path in shell_scripts(settings(stack))}
    assert found == SHELL_SCRIPTS
    assert set(shell_scripts(settings("tls-off"))) == {layout.INSTALL_SCRIPT}


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_the_rendered_shell_scripts_pass_shellcheck(stack, tmp_path):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    written = []
    for path, content in shell_scripts(settings(stack)).items():
        script = tmp_path / Path(path).name
        script.write_text(content)
        written.append(str(script))
    result = subprocess.run(["shellcheck", "--severity=style", "--format=gcc", *written], capture_output=True,
                            text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr
