"""scripts/deploy and scripts/destroy, run for real against stand-ins.

`pulumi` and `uv` are stubs on PATH that record their arguments; the AWS credential check talks to
moto's STS on 127.0.0.1. The scripts run from a copy of scripts/ in a temporary repository whose
.venv links to this one, so the local state directory they create stays in the temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import fake_sts, servers

REPO = Path(__file__).resolve().parents[2]
TRACKING_URI = "https://203.0.113.7"

PULUMI_STUB = f"""#!/usr/bin/env bash
echo "$*" >> "$STUB_LOG"
case "$*" in
  "stack ls --json") echo "${{STUB_STACKS:-[]}}" ;;
  "config get aws:region") echo eu-west-1 ;;
  "config get protectData") [ -n "${{STUB_PROTECT:-}}" ] || exit 1; echo "$STUB_PROTECT" ;;
  "stack output tracking_uri") echo {TRACKING_URI} ;;
  "stack output admin_username") echo admin ;;
  "version") echo "${{STUB_PULUMI_VERSION-v3.272.0}}" ;;
esac
exit 0
"""
UV_STUB = """#!/usr/bin/env bash
echo "uv $*" >> "$STUB_LOG"
"""


@dataclass
class Sandbox:
    repo: Path
    log: Path
    env: dict[str, str]

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.repo / "scripts" / script), *args],
            cwd=self.repo,
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,  # not a terminal: the scripts must never wait for input
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def pulumi_calls(self) -> list[str]:
        return [call for call in self.calls() if not call.startswith("uv ")]


@pytest.fixture(scope="module")
def moto_sts() -> Iterator[str]:
    with servers.moto_endpoint() as endpoint:
        yield endpoint


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def sandbox(tmp_path: Path, moto_sts: str) -> Sandbox:
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", repo / "scripts")
    (repo / ".venv").symlink_to(Path(sys.prefix))
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    _executable(stubs / "pulumi", PULUMI_STUB)
    _executable(stubs / "uv", UV_STUB)
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "STUB_LOG": str(log),
        "PULUMI_CONFIG_PASSPHRASE": "correct horse",
        "AWS_ENDPOINT_URL": moto_sts,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return Sandbox(repo, log, env)


def test_deploy_sets_up_the_dev_stack_on_a_local_backend_and_runs_pulumi_up(sandbox):
    result = sandbox.run("deploy", "--yes")
    assert result.returncode == 0, result.stderr
    state = sandbox.repo / ".pulumi-state"
    assert state.is_dir()
    calls = sandbox.pulumi_calls()
    assert f"login --non-interactive file://{state}" in calls
    assert "stack select --create dev" in calls
    assert "up --yes" in calls
    assert calls.index("stack select --create dev") < calls.index("up --yes")
    assert TRACKING_URI in result.stderr
    assert "123456789012" in result.stderr  # moto's account: the credential check ran before `up`


def test_deploy_installs_the_project_and_pip_into_the_venv(sandbox):
    assert sandbox.run("deploy", "--yes").returncode == 0
    # pip: Pulumi's pip toolchain (Pulumi.yaml) lists the venv's packages with `python -m pip list`.
    assert "uv pip install --quiet --python .venv/bin/python -e . pip" in sandbox.calls()


def test_deploy_takes_the_stack_name_and_passes_the_remaining_arguments_to_pulumi_up(sandbox):
    stacks = '[{"name": "organization/mlflow-aws/prod"}]'
    result = sandbox.run("deploy", "prod", "--yes", "--skip-preview", STUB_STACKS=stacks)
    assert result.returncode == 0, result.stderr
    calls = sandbox.pulumi_calls()
    assert "stack select prod" in calls
    assert "up --yes --skip-preview" in calls


def test_deploy_uses_pulumi_backend_url_instead_of_logging_in_locally(sandbox):
    result = sandbox.run("deploy", "--yes", PULUMI_BACKEND_URL="s3://team-state?region=eu-west-1")
    assert result.returncode == 0, result.stderr
    assert not any(call.startswith("login") for call in sandbox.pulumi_calls())
    assert not (sandbox.repo / ".pulumi-state").exists()
    assert "s3://team-state" in result.stderr


def test_deploy_without_a_passphrase_explains_and_stops_before_touching_the_stack(sandbox):
    env = {key: value for key, value in sandbox.env.items() if key != "PULUMI_CONFIG_PASSPHRASE"}
    sandbox.env = env
    result = sandbox.run("deploy", "--yes")
    assert result.returncode != 0
    assert "PULUMI_CONFIG_PASSPHRASE is not set" in result.stderr
    assert not any(call.startswith(("stack select", "up")) for call in sandbox.pulumi_calls())


def test_deploy_without_aws_credentials_explains_and_never_runs_up(sandbox):
    sandbox.env = {key: value for key, value in sandbox.env.items() if not key.startswith("AWS_ACCESS")}
    sandbox.env.pop("AWS_SECRET_ACCESS_KEY")
    result = sandbox.run("deploy", "--yes")
    assert result.returncode != 0
    assert "no AWS credentials found in this shell" in result.stderr
    assert "aws configure" in result.stderr
    assert not any(call.startswith("up") for call in sandbox.pulumi_calls())


def test_deploy_without_a_route_to_aws_blames_the_network_not_the_credentials(sandbox):
    result = sandbox.run("deploy", "--yes", AWS_ENDPOINT_URL=fake_sts.closed_endpoint())
    assert result.returncode != 0
    assert "cannot reach AWS STS" in result.stderr
    assert "This is the network, not the credentials" in result.stderr
    assert "HTTPS_PROXY" in result.stderr and "aws configure" not in result.stderr
    assert not any(call.startswith("up") for call in sandbox.pulumi_calls())


def test_deploy_with_credentials_aws_refuses_says_which_and_never_runs_up(sandbox):
    with fake_sts.refusing_sts("InvalidClientTokenId") as endpoint:
        result = sandbox.run("deploy", "--yes", AWS_ENDPOINT_URL=endpoint)
    assert result.returncode != 0
    assert "AWS refused the credentials from the environment (AWS_ACCESS_KEY_ID) (InvalidClientTokenId" in result.stderr
    assert "network" not in result.stderr
    assert not any(call.startswith("up") for call in sandbox.pulumi_calls())


def test_the_passphrase_message_names_the_stack_without_doubling_an_apostrophe(sandbox):
    sandbox.env = {key: value for key, value in sandbox.env.items() if key != "PULUMI_CONFIG_PASSPHRASE"}
    result = sandbox.run("deploy", "--yes")
    assert "It encrypts the secrets in the state of stack dev;" in result.stderr
    assert "''" not in result.stderr


@pytest.mark.parametrize("script", ["deploy", "destroy", "test"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_script_prints_its_usage_for_help_and_exits_0_before_doing_anything(sandbox, script, flag):
    result = sandbox.run(script, flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {sandbox.repo / 'scripts' / script} "), result.stdout
    assert sandbox.calls() == []  # neither uv nor pulumi ran
    assert not (sandbox.repo / ".pulumi-state").exists()


def test_deploy_help_after_a_stack_name_is_still_help(sandbox):
    result = sandbox.run("deploy", "prod", "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout and sandbox.calls() == []


def test_the_shared_setup_file_run_by_itself_points_to_the_scripts(sandbox):
    result = subprocess.run(["bash", str(sandbox.repo / "scripts" / "_setup.sh"), "--help"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0
    assert "scripts/deploy and scripts/destroy source it" in result.stderr


@pytest.mark.parametrize("version", ["v3.207.0", "v3.99.1", ""])
def test_deploy_refuses_a_pulumi_cli_older_than_replacement_trigger_with_the_upgrade_command(sandbox, version):
    result = sandbox.run("deploy", "--yes", STUB_PULUMI_VERSION=version)
    assert result.returncode != 0
    assert f"is {version or 'of unknown version'};" in result.stderr
    assert "needs 3.208.0 or newer" in result.stderr
    assert "curl -fsSL https://get.pulumi.com | sh -s -- --version 3.272.0 --no-edit-path" in result.stderr
    assert not any(call.startswith(("login", "stack", "up")) for call in sandbox.pulumi_calls())


@pytest.mark.parametrize("version", ["v3.208.0", "v3.272.0", "v3.1000.0"])
def test_deploy_accepts_a_pulumi_cli_that_honours_replacement_trigger(sandbox, version):
    result = sandbox.run("deploy", "--yes", STUB_PULUMI_VERSION=version)
    assert result.returncode == 0, result.stderr
    assert "up --yes" in sandbox.pulumi_calls()


def test_destroy_needs_a_stack_name(sandbox):
    result = sandbox.run("destroy")
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert sandbox.calls() == []


def test_destroy_refuses_a_stack_that_protects_its_data(sandbox):
    stacks = '[{"name": "organization/mlflow-aws/prod"}]'
    result = sandbox.run("destroy", "prod", "--yes", STUB_STACKS=stacks, STUB_PROTECT="true")
    assert result.returncode != 0
    assert "pulumi config set protectData false && pulumi up" in result.stderr
    assert not any(call.startswith("destroy") for call in sandbox.pulumi_calls())


def test_destroy_tears_down_an_unprotected_stack(sandbox):
    stacks = '[{"name": "organization/mlflow-aws/dev"}]'
    result = sandbox.run("destroy", "dev", "--yes", STUB_STACKS=stacks, STUB_PROTECT="false")
    assert result.returncode == 0, result.stderr
    assert sandbox.pulumi_calls()[-1] == "destroy --yes"


def test_destroy_never_creates_a_missing_stack(sandbox):
    result = sandbox.run("destroy", "staging", "--yes")
    assert result.returncode != 0
    assert "does not exist" in result.stderr
    assert not any(call.startswith(("stack select", "destroy")) for call in sandbox.pulumi_calls())


@pytest.mark.host
def test_shell_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed (Debian package: shellcheck)")
    scripts = sorted(
        path for path in (REPO / "scripts").iterdir()
        if path.is_file() and path.read_text().startswith(("#!/usr/bin/env bash", "#!/bin/bash", "# shellcheck shell="))
    )
    scripts.append(REPO / ".ci" / "run")
    assert {"deploy", "destroy", "test"} <= {path.name for path in scripts}
    result = subprocess.run(
        ["shellcheck", "--external-sources", *map(str, scripts)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
