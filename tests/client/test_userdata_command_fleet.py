"""`mlflow-aws userdata` for a fleet (hosts >= 2): the launch template's user data, with no Elastic IP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import userdata
from client import cli
from config import from_stack_files
from host_settings import host_settings_for
from naming import Outputs

BUCKET = "mlflow-aws-staging-artifacts-0f1e2d3c"
HOST_FILES_BUCKET = "mlflow-aws-staging-host-files-0f1e2d3c"


def test_prints_the_fleets_user_data_from_the_buckets_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: mlflow-aws\nruntime: python\n")
    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump({"config": {
        "aws:region": "eu-west-1", "mlflow-aws:hosts": 2, "mlflow-aws:domain": "mlflow.example.com",
        "mlflow-aws:hostedZoneId": "Z0123456789ABC",
    }}))
    outputs = {Outputs.ARTIFACT_BUCKET: BUCKET, Outputs.HOST_FILES_BUCKET: HOST_FILES_BUCKET}
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    code = cli.main(["userdata", "--stack", "staging", "--outputs", str(tmp_path / "outputs.json"),
                     "--project-dir", str(tmp_path)])
    assert code == 0
    expected = host_settings_for(from_stack_files(str(tmp_path), "staging"), artifact_bucket=BUCKET,
                                 host_files_bucket=HOST_FILES_BUCKET, public_ip="")
    assert expected.behind_load_balancer
    assert capsys.readouterr().out == userdata.render(expected)
