"""The `hosts` key: 1 (the default) is the single host; 2 or more a fleet that needs domain and hostedZoneId."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import config
from config import ConfigError, StackConfig, load_config

FLEET_DNS = {"domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABC"}


def load(raw: Mapping[str, Any]) -> StackConfig:
    return load_config(raw, project=config.PROJECT, stack="test", region="eu-west-1")


def problems_for(raw: Mapping[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(raw)
    return caught.value.problems


def test_one_host_is_the_default_and_not_a_fleet() -> None:
    cfg = load({})
    assert cfg.hosts == 1 and not cfg.fleet


@pytest.mark.parametrize("value", [2, "3", " 10 "])
def test_two_or_more_hosts_with_a_zone_is_a_fleet(value: Any) -> None:
    cfg = load({"hosts": value, **FLEET_DNS})
    assert cfg.fleet and cfg.hosts == int(str(value))


@pytest.mark.parametrize("missing", ["domain", "hostedZoneId"])
def test_a_fleet_names_the_missing_dns_key_and_how_to_set_it(missing: str) -> None:
    raw: dict[str, Any] = {"hosts": 2, **FLEET_DNS}
    del raw[missing]
    if missing == "domain":
        del raw["hostedZoneId"]  # a zone without a domain is its own problem; this case is the fleet's
    problems = problems_for(raw)
    assert any(p.startswith(f"{missing}: required with hosts 2") and f"pulumi config set {missing}" in p
               for p in problems), problems


def test_a_fleet_without_dns_names_both_keys_at_once() -> None:
    problems = problems_for({"hosts": 3})
    assert [p.split(":")[0] for p in problems] == ["domain", "hostedZoneId"]
    assert all("ACM certificate" in p for p in problems)


@pytest.mark.parametrize("value", [0, 11, "many", True])
def test_hosts_out_of_range_or_not_a_number_is_refused(value: Any) -> None:
    (problem,) = problems_for({"hosts": value})
    assert problem.startswith("hosts: ")


def test_a_fleet_refuses_tls_off_because_the_load_balancer_always_serves_https() -> None:
    (problem,) = problems_for({"hosts": 2, "tls": "off", **FLEET_DNS})
    assert problem.startswith("tls: off with hosts 2")


def test_a_fleet_refuses_ssh_because_hosts_admit_only_the_load_balancer() -> None:
    (problem,) = problems_for(
        {"hosts": 2, "sshCidrs": ["198.51.100.0/24"], "sshKeyName": "ops", **FLEET_DNS}
    )
    assert problem.startswith("sshCidrs: set with hosts 2") and "SSM Session Manager" in problem


def test_a_fleet_refuses_the_job_runner_which_would_run_each_job_on_every_host() -> None:
    problems = problems_for({"hosts": 2, "jobRunner": "true", **FLEET_DNS})
    assert any(p.startswith("jobRunner: true runs MLflow's job runner on every host") for p in problems), problems
