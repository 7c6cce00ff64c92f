"""The pack's rules for the fleet (hosts >= 2): listeners, launch templates, the load balancer's and the
hosts' security groups; and the real program in fleet mode passes its own pack."""

from __future__ import annotations

from typing import Any

import pytest

from policy import rules
from tests.policy.test_program_passes_pack import stack_resources
from tests.support.pulumi_program import ProgramRun, RegisteredResource, run_program

LISTENER = "aws:lb/listener:Listener"
FLEET = {"hosts": 2, "domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABC"}


@pytest.fixture(scope="module", params=["dev", "prod"])
def fleet_run(request: pytest.FixtureRequest) -> ProgramRun:
    return run_program(request.param, FLEET)


# --- the rules on their own ----------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-3-2021-06",
                                    "ELBSecurityPolicy-FS-1-2-Res-2020-10"])
def test_https_listener_with_a_current_tls_policy_passes(policy: str) -> None:
    assert rules.check_load_balancer_listener(LISTENER, {"protocol": "HTTPS", "sslPolicy": policy}) == []


@pytest.mark.parametrize("policy", [None, "ELBSecurityPolicy-2016-08", "ELBSecurityPolicy-TLS-1-1-2017-01"])
def test_https_listener_with_an_old_or_default_tls_policy_is_refused(policy: str | None) -> None:
    (message,) = rules.check_load_balancer_listener(LISTENER, {"protocol": "HTTPS", "sslPolicy": policy})
    assert message.startswith("HTTPS listener's sslPolicy is") and "TLS 1.2+" in message


def test_http_listener_that_forwards_is_refused_and_one_that_redirects_to_https_passes() -> None:
    forward = {"protocol": "HTTP", "defaultActions": [{"type": "forward", "targetGroupArn": "arn"}]}
    (message,) = rules.check_load_balancer_listener(LISTENER, forward)
    assert "does not only redirect to HTTPS" in message
    redirect = {"protocol": "HTTP", "defaultActions": [{"type": "redirect", "redirect": {"protocol": "HTTPS"}}]}
    assert rules.check_load_balancer_listener(LISTENER, redirect) == []


def test_listener_values_unknown_in_preview_are_not_flagged() -> None:
    assert rules.check_load_balancer_listener(LISTENER, {"protocol": "HTTPS", "sslPolicy": rules.UNKNOWN}) == []
    assert rules.check_load_balancer_listener(LISTENER, {"protocol": rules.UNKNOWN}) == []


def test_launch_template_without_imdsv2_or_with_an_unencrypted_volume_is_refused() -> None:
    messages = rules.check_ec2_instance(rules.LAUNCH_TEMPLATE, {
        "metadataOptions": {"httpTokens": "optional"},
        "blockDeviceMappings": [{"deviceName": "/dev/sda1", "ebs": {"encrypted": "false"}}],
    })
    assert any("httpTokens is 'optional'" in m for m in messages)
    assert any("blockDeviceMappings[0].ebs is not encrypted" in m for m in messages)


def test_launch_template_that_maps_no_volume_keeps_the_images_unencrypted_root_and_is_refused() -> None:
    messages = rules.check_ec2_instance(rules.LAUNCH_TEMPLATE, {"metadataOptions": {"httpTokens": "required"}})
    assert messages == [m for m in messages if "maps no EBS volume" in m] and messages


# --- the real program in fleet mode --------------------------------------------------------------


def test_the_fleet_passes_every_resource_rule(fleet_run: ProgramRun) -> None:
    protect = fleet_run.stack == "prod"
    violations = {
        resource.name: messages for resource in fleet_run.resources
        if (messages := rules.validate_resource(resource.type, resource.inputs, protect_data=protect))
    }
    assert violations == {}


def test_the_fleet_passes_the_stack_rules(fleet_run: ProgramRun) -> None:
    resources = stack_resources(fleet_run.resources)
    assert rules.validate_stack(resources) == []
    assert rules.validate_load_balancer_groups(resources) == []


def test_the_fleet_creates_what_the_new_rules_guard(fleet_run: ProgramRun) -> None:
    types = {resource.type for resource in fleet_run.resources}
    assert {LISTENER, rules.LAUNCH_TEMPLATE, "aws:lb/loadBalancer:LoadBalancer"} <= types


def spoiled(resource: RegisteredResource, **changes: Any) -> dict[str, Any]:
    return {**resource.inputs, **changes}


def test_the_listener_and_template_rules_read_the_programs_property_names(fleet_run: ProgramRun) -> None:
    https, http = sorted(fleet_run.of_type(LISTENER), key=lambda listener: -int(listener.inputs["port"]))
    assert rules.check_load_balancer_listener(LISTENER, spoiled(https, sslPolicy="ELBSecurityPolicy-2016-08"))
    forward = [{"type": "forward", "targetGroupArn": "arn"}]
    assert rules.check_load_balancer_listener(LISTENER, spoiled(http, defaultActions=forward))
    template = fleet_run.one(rules.LAUNCH_TEMPLATE)
    (disk,) = template.inputs["blockDeviceMappings"]
    unencrypted = [{**disk, "ebs": {**disk["ebs"], "encrypted": "false"}}]
    assert rules.check_ec2_instance(rules.LAUNCH_TEMPLATE, spoiled(template, blockDeviceMappings=unencrypted))
    optional = {**template.inputs["metadataOptions"], "httpTokens": "optional"}
    assert rules.check_ec2_instance(rules.LAUNCH_TEMPLATE, spoiled(template, metadataOptions=optional))


def replaced(run: ProgramRun, name: str, **changes: Any) -> list[rules.StackResource]:
    return [
        rules.StackResource(r.type, {**r.inputs, **changes} if r.name == name else r.inputs, r.urn,
                            {key: frozenset(urns) for key, urns in r.property_dependencies.items()})
        for r in run.resources
    ]


def test_a_load_balancer_group_admitting_another_port_is_caught(fleet_run: ProgramRun) -> None:
    name = f"{fleet_run.stack}-alb-443-0.0.0.0-0"
    (violation,) = rules.validate_load_balancer_groups(replaced(fleet_run, name, fromPort=22, toPort=22))
    assert "admits port 22; it may admit only 80 and 443" in violation.message
    assert violation.urn.endswith(name)


def test_a_hosts_group_admitting_a_cidr_is_caught(fleet_run: ProgramRun) -> None:
    name = f"{fleet_run.stack}-web-80-from-alb"
    (violation,) = rules.validate_load_balancer_groups(replaced(fleet_run, name, cidrIpv4="198.51.100.0/24"))
    assert "other than the load balancer's group" in violation.message
