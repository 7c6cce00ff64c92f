"""The CloudWatch agent's configuration the user data writes: valid for the pinned agent, and reading
exactly the sources the stack's log groups are for."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

import config
import naming
import userdata
from host_settings import host_settings_for
from tests.support import cloudwatch_agent_schema
from userdata import monitoring, pins

STACKS: dict[str, dict[str, Any]] = {
    "default": {},
    "domain": {"domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABC"},
    "tls-off": {"tls": "off"},
    "fleet": {"hosts": 2, "domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABC"},
}


def settings_for(overrides: dict[str, Any]) -> userdata.HostSettings:
    cfg = config.load_config(overrides, project="mlflow-aws", stack="dev", region="eu-west-1")
    return host_settings_for(cfg, artifact_bucket="mlflow-aws-dev-artifacts",
                             host_files_bucket="mlflow-aws-dev-host-files", public_ip="203.0.113.10")


def written(settings: userdata.HostSettings) -> dict[str, str]:
    """The files the host gets (the object its bootstrap fetches: DESIGN decision 16)."""
    return {file.path: file.content for file in userdata.host_files(settings)}


def agent_config(overrides: dict[str, Any]) -> dict[str, Any]:
    return json.loads(written(settings_for(overrides))[monitoring.AGENT_CONFIG])  # type: ignore[no-any-return]


@pytest.mark.parametrize("stack", STACKS)
def test_the_rendered_configuration_is_valid_for_the_pinned_agent(stack: str) -> None:
    assert cloudwatch_agent_schema.problems(agent_config(STACKS[stack])) == []


@pytest.mark.parametrize(("change", "complaint"), [
    (lambda c: c["logs"]["logs_collected"]["journald"]["collect_list"][0].update(unit=["x"]),
     "Additional properties are not allowed ('unit' was unexpected)"),
    (lambda c: c["logs"]["logs_collected"]["files"]["collect_list"][0].pop("file_path"),
     "'file_path' is a required property"),
    (lambda c: c["logs"]["logs_collected"]["journald"]["collect_list"][0].update(retention_in_days=10),
     "10 is not one of"),
    (lambda c: c["metrics"]["metrics_collected"].update(memory={"measurement": ["used_percent"]}),
     "('memory' was unexpected)"),
    (lambda c: c["metrics"]["metrics_collected"]["cpu"].update(resources=["cpu0"]), "'cpu0' is not one of ['*']"),
    (lambda c: c["agent"].update(metrics_collection_interval=0), "0 is less than the minimum of 1"),
], ids=["misspelt-journald-key", "file-without-path", "retention", "unknown-plugin", "cpu-resources", "interval"])
def test_the_schema_check_refuses_what_the_agent_refuses(change: Any, complaint: str) -> None:
    broken = copy.deepcopy(agent_config({}))
    change(broken)
    found = cloudwatch_agent_schema.problems(broken)
    assert any(complaint in problem for problem in found), found


def test_the_journal_of_mlflow_nginx_and_the_certificate_units_goes_to_one_group_each() -> None:
    journals = agent_config({})["logs"]["logs_collected"]["journald"]["collect_list"]
    assert {entry["log_group_name"]: tuple(entry["units"]) for entry in journals} == {
        "/mlflow-aws/dev/mlflow": ("mlflow.service",),
        "/mlflow-aws/dev/nginx": ("nginx.service",),
        "/mlflow-aws/dev/certificate": ("mlflow-certificate.service", "mlflow-certificate-renewal.service"),
    }


def test_hosts_without_certbot_ship_no_certificate_journal() -> None:
    for stack in ("tls-off", "fleet"):
        journals = agent_config(STACKS[stack])["logs"]["logs_collected"]["journald"]["collect_list"]
        assert all("certificate" not in entry["log_group_name"] for entry in journals), stack


def test_the_agent_tails_the_json_access_log_nginx_writes_and_nginx_error_log() -> None:
    files = written(settings_for({}))
    entries = json.loads(files[monitoring.AGENT_CONFIG])["logs"]["logs_collected"]["files"]["collect_list"]
    tailed = {entry["file_path"]: entry["log_group_name"] for entry in entries}
    assert tailed == {monitoring.ACCESS_LOG: "/mlflow-aws/dev/access",
                      "/var/log/nginx/error.log": "/mlflow-aws/dev/nginx"}
    assert f"access_log {monitoring.ACCESS_LOG} mlflow_json;" in files[monitoring.ACCESS_LOG_CONF]


def test_every_host_writes_its_own_stream() -> None:
    config_ = agent_config(STACKS["fleet"])["logs"]["logs_collected"]
    streams = [(e["log_group_name"], e["log_stream_name"]) for kind in ("files", "journald")
               for e in config_[kind]["collect_list"]]
    assert all(stream.startswith("{instance_id}") for _, stream in streams)
    assert len(set(streams)) == len(streams)


def test_the_agent_writes_only_the_groups_the_stack_creates_and_sets_no_retention_of_its_own() -> None:
    for stack, overrides in STACKS.items():
        logs = agent_config(overrides)["logs"]["logs_collected"]
        entries = [e for kind in ("files", "journald") for e in logs[kind]["collect_list"]]
        certificate = stack in ("default", "domain")
        groups = monitoring.log_groups(certificate=certificate)
        expected = {naming.log_group_name("mlflow-aws", "dev", group) for group in groups}
        assert {e["log_group_name"] for e in entries} == expected, stack
        assert not any("retention_in_days" in e for e in entries)  # would need logs:PutRetentionPolicy


def test_metrics_go_to_the_stacks_namespace_without_a_host_dimension() -> None:
    config_ = agent_config({})
    assert config_["metrics"]["namespace"] == "mlflow-aws/dev"
    assert config_["agent"]["omit_hostname"] is True
    assert "append_dimensions" not in config_["metrics"]


def test_monitoring_off_writes_no_agent_and_no_json_access_log() -> None:
    files = written(settings_for({"monitoring": False}))
    assert not set(files) & {monitoring.AGENT_CONFIG, monitoring.ACCESS_LOG_CONF, monitoring.INSTALL_SCRIPT}


def test_the_install_pins_the_release_and_aws_signing_key() -> None:
    script = written(settings_for({}))[monitoring.INSTALL_SCRIPT]
    assert f"/ubuntu/$(dpkg --print-architecture)/{pins.CLOUDWATCH_AGENT_RELEASE}" in script
    assert f"readonly FINGERPRINT={pins.CLOUDWATCH_AGENT_KEY_FINGERPRINT}" in script
    assert "https://amazoncloudwatch-agent-eu-west-1.s3.eu-west-1.amazonaws.com" in script


def test_the_install_runs_on_its_own_timer_and_never_before_mlflow() -> None:
    files = written(settings_for({}))
    assert monitoring.INSTALL_SCRIPT not in files["/etc/systemd/system/mlflow.service"]
    assert "systemctl enable --now mlflow-cloudwatch-agent.timer" in userdata.boot_commands(settings_for({}))
    assert f"SuccessExitStatus={monitoring.TEMPFAIL_EXIT_CODE}" in files[monitoring.INSTALL_SERVICE]


def test_mlflows_line_for_each_health_check_is_not_shipped() -> None:
    (server,) = [entry for entry in agent_config({})["logs"]["logs_collected"]["journald"]["collect_list"]
                 if entry["units"] == ["mlflow.service"]]
    assert server["filters"] == [{"type": "exclude", "expression": monitoring.HEALTH_CHECK_LINE}]
    uvicorn_line = 'INFO:     127.0.0.1:0 - "GET /health HTTP/1.1" 200 OK'
    assert re.search(monitoring.HEALTH_CHECK_LINE, uvicorn_line)
    assert not re.search(monitoring.HEALTH_CHECK_LINE, uvicorn_line.replace("/health", "/api/2.0/mlflow/runs/get"))
