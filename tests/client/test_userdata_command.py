"""`mlflow-aws userdata [--stack NAME]`: the user data `pulumi up` would send, from the stack's config and outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

import userdata
from client import cli
from naming import Outputs
from userdata.settings import HostSettings

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = {
    Outputs.ARTIFACT_BUCKET: "mlflow-aws-staging-artifacts-0f1e2d3c",
    Outputs.HOST_FILES_BUCKET: "mlflow-aws-staging-host-files-0f1e2d3c",
    Outputs.PUBLIC_IP: "198.51.100.23",
    Outputs.ADMIN_PASSWORD: "Never4Printed5In6User7Data",
}


def project(tmp_path: Path, config: dict[str, object]) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: mlflow-aws\nruntime: python\n")
    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump({"config": config}))
    (tmp_path / "outputs.json").write_text(json.dumps(OUTPUTS))
    return tmp_path


def run_userdata(directory: Path, *extra: str) -> int:
    return cli.main(
        ["userdata", "--stack", "staging", "--outputs", str(directory / "outputs.json"),
         "--project-dir", str(directory), *extra]
    )


def test_prints_the_user_data_for_the_stack_config_and_its_allocated_bucket_and_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = project(tmp_path, {
        "aws:region": "eu-central-1",
        "mlflow-aws:instanceType": "t3.medium",
        "mlflow-aws:mlflowVersion": "3.16.0",
        "mlflow-aws:acmeEmail": "ops@example.org",
    })
    assert run_userdata(directory) == 0
    printed = capsys.readouterr().out
    expected = HostSettings(
        project="mlflow-aws",
        stack="staging",
        region="eu-central-1",
        ssm_prefix="/mlflow-aws/staging",
        artifact_bucket="mlflow-aws-staging-artifacts-0f1e2d3c",
        host_files_bucket="mlflow-aws-staging-host-files-0f1e2d3c",
        public_hostname="198.51.100.23",  # no domain: the Elastic IP itself
        public_ip="198.51.100.23",
        mlflow_version="3.16.0",
        instance_memory_mib=4096,
        tls="letsencrypt",
        acme_email="ops@example.org",
    )
    assert printed == userdata.render(expected)
    assert printed.startswith("#cloud-config")
    assert OUTPUTS[Outputs.ADMIN_PASSWORD] not in printed


def test_domain_in_the_config_replaces_the_ip_address_as_the_certified_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = project(tmp_path, {"aws:region": "eu-west-1", "mlflow-aws:domain": "mlflow.example.org"})
    assert run_userdata(directory, "--files") == 0
    printed = capsys.readouterr().out
    assert "--cert-name mlflow.example.org --domain mlflow.example.org" in printed
    assert "--ip-address" not in printed and "live/198.51.100.23/" not in printed


def test_files_prints_every_host_file_the_object_the_user_data_names_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = project(tmp_path, {"aws:region": "eu-west-1"})
    assert run_userdata(directory) == 0
    user_data = yaml.safe_load(capsys.readouterr().out)
    assert run_userdata(directory, "--files") == 0
    printed = capsys.readouterr().out

    early = user_data["bootcmd"][1]
    bucket, key = early[early.index("--bucket") + 1], early[early.index("--key") + 1]
    assert bucket == OUTPUTS[Outputs.HOST_FILES_BUCKET]
    assert printed.startswith(f"# s3://{bucket}/{key}\n")
    headers = [line for line in printed.splitlines() if line.startswith("# /")]
    assert "# /etc/systemd/system/nginx.service.d/mlflow-aws-hardening.conf (root:root 0644, early)" in headers
    assert "# /etc/systemd/system/mlflow.service (root:root 0644, deferred)" in headers
    assert OUTPUTS[Outputs.ADMIN_PASSWORD] not in printed


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_shipped_example_stacks_render(stack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(OUTPUTS))
    args = ["userdata", "--stack", stack, "--outputs", str(outputs), "--project-dir", str(REPO)]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.startswith("#cloud-config\n")


def test_invalid_config_prints_the_problem_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = project(tmp_path, {"aws:region": "eu-west-1", "mlflow-aws:instanceType": "t3.nano"})
    assert run_userdata(directory) == 2
    captured = capsys.readouterr()
    assert "instanceType" in captured.err and captured.out == ""


def test_unknown_stack_says_how_to_create_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = project(tmp_path, {"aws:region": "eu-west-1"})
    args = ["userdata", "--stack", "qa", "--outputs", str(directory / "outputs.json"), "--project-dir", str(directory)]
    assert cli.main(args) == 2
    assert "pulumi stack init qa" in capsys.readouterr().err


def test_directory_without_pulumi_yaml_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["userdata", "--stack", "dev", "--project-dir", str(tmp_path)]) == 2
    assert "Pulumi.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("missing", [Outputs.ARTIFACT_BUCKET, Outputs.HOST_FILES_BUCKET, Outputs.PUBLIC_IP])
def test_missing_output_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], missing: str) -> None:
    directory = project(tmp_path, {"aws:region": "eu-west-1"})
    (directory / "outputs.json").write_text(json.dumps({k: v for k, v in OUTPUTS.items() if k != missing}))
    assert run_userdata(directory) == 2
    captured = capsys.readouterr()
    assert repr(missing) in captured.err and captured.out == ""


def fake_pulumi(directory: Path, stack_name: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `pulumi` on PATH that has `stack_name` selected, and records where it was asked."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    asked = directory / "asked-in"
    fake = bin_dir / "pulumi"
    fake.write_text(f'#!/bin/sh\npwd > {asked}\n[ "$*" = "stack --show-name" ] && echo {stack_name}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    return asked


def test_without_stack_the_stack_selected_for_the_project_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = project(tmp_path, {"aws:region": "eu-west-1"})
    asked = fake_pulumi(tmp_path, "staging", monkeypatch)
    args = ["userdata", "--outputs", str(directory / "outputs.json"), "--project-dir", str(directory)]
    assert cli.main(args) == 0
    assert "#cloud-config" in capsys.readouterr().out
    assert asked.read_text().strip() == str(directory)


def test_without_stack_and_without_the_pulumi_cli_says_to_pass_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = project(tmp_path, {"aws:region": "eu-west-1"})
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    args = ["userdata", "--outputs", str(directory / "outputs.json"), "--project-dir", str(directory)]
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    assert "the pulumi CLI is not on PATH" in captured.err and "pass --stack NAME" in captured.err
    assert captured.out == ""


def test_help_shows_stack_as_optional_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["userdata", "--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "[--stack NAME]" in help_text
    assert "(default: the selected stack)" in help_text
    assert "required" not in help_text
    assert "userdata [--stack NAME]" in " ".join((cli.__doc__ or "").split())
