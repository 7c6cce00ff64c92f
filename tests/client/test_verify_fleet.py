"""`mlflow-aws verify` on a fleet's outputs says it does not check a fleet, instead of blaming an output."""

from __future__ import annotations

import pytest

from client.verify import runner
from naming import Outputs


def test_verify_refuses_a_fleet_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    fleet_outputs = {Outputs.AUTOSCALING_GROUP_NAME: "dev-hosts-abc123", Outputs.TRACKING_URI: "https://m.example.com",
                     Outputs.REGION: "eu-west-1"}
    assert runner.main(fleet_outputs, None) == 2
    error = capsys.readouterr().err
    assert "this stack is a fleet" in error and "dev-hosts-abc123" in error and "run `pulumi up`" not in error
