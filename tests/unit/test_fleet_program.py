"""The Pulumi program in fleet mode (hosts >= 2) under mocks, and the single host left exactly as it was."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

import config
import userdata
from components import address, fleet, load_balancer
from host_settings import host_settings_for
from naming import Outputs
from tests.support.pulumi_program import Account, ProgramFailed, ProgramRun, Record, RegisteredResource, run_program
from tests.support.resource_snapshot import snapshot, snapshot_path

FLEET = {"hosts": 3, "domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABC"}
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SUBNET = "aws:ec2/subnet:Subnet"
GROUP = "aws:autoscaling/group:Group"
TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
ALB = "aws:lb/loadBalancer:LoadBalancer"
RECORD = "aws:route53/record:Record"


@pytest.fixture(scope="module", params=["dev", "prod"])
def fleet_run(request: pytest.FixtureRequest) -> ProgramRun:
    return run_program(request.param, FLEET)


@pytest.fixture(scope="module")
def dev_fleet() -> ProgramRun:
    return run_program("dev", FLEET)


def group_urn(run: ProgramRun, suffix: str) -> str:
    (group,) = [g for g in run.of_type(SECURITY_GROUP) if g.name.endswith(suffix)]
    return group.urn


def rules_of(run: ProgramRun, rule_type: str, suffix: str) -> list[RegisteredResource]:
    group = group_urn(run, suffix)
    return [r for r in run.of_type(rule_type) if group in r.property_dependencies.get("securityGroupId", set())]


def source(run: ProgramRun, rule: RegisteredResource) -> str:
    if rule.inputs.get("cidrIpv4"):
        return str(rule.inputs["cidrIpv4"])
    (referenced,) = rule.property_dependencies["referencedSecurityGroupId"]
    return run.by_urn(referenced).name


# --- hosts: 1 stays what it was ------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_single_host_stack_registers_exactly_the_resources_it_did_before_the_fleet(stack: str) -> None:
    before = json.loads(snapshot_path(stack).read_text())
    now = snapshot(run_program(stack, {"hosts": 1}))
    changed = sorted(name for name in set(before["resources"]) | set(now["resources"])
                     if before["resources"].get(name) != now["resources"].get(name))
    assert not changed, (f"hosts: 1 changed {changed}; if intended, run "
                         ".venv/bin/python -m tests.support.resource_snapshot --write and review the diff")
    assert now["outputs"] == before["outputs"]


# --- what a fleet is made of ---------------------------------------------------------------------


def test_fleet_has_no_elastic_ip_no_single_instance_and_no_recovery_alarms(fleet_run: ProgramRun) -> None:
    for absent in ("aws:ec2/eip:Eip", "aws:ec2/instance:Instance", "aws:ec2/networkInterface:NetworkInterface",
                   "aws:cloudwatch/metricAlarm:MetricAlarm", "mlflow-aws:compute:TrackingHost"):
        assert not fleet_run.of_type(absent), absent
    assert Outputs.PUBLIC_IP not in fleet_run.outputs and Outputs.INSTANCE_ID not in fleet_run.outputs


def test_fleet_outputs_the_https_domain_the_load_balancer_and_the_group(fleet_run: ProgramRun) -> None:
    assert fleet_run.outputs[Outputs.TRACKING_URI] == "https://mlflow.example.com"
    assert fleet_run.outputs[Outputs.LOAD_BALANCER_DNS_NAME].endswith(".elb.amazonaws.com")
    assert fleet_run.outputs[Outputs.AUTOSCALING_GROUP_NAME] == f"{fleet_run.stack}-hosts-abc123"
    assert Outputs.ADMIN_PASSWORD in fleet_run.secret_outputs


def test_group_keeps_exactly_hosts_instances_across_two_public_subnets_in_two_zones(fleet_run: ProgramRun) -> None:
    group = fleet_run.one(GROUP)
    assert (group.inputs["minSize"], group.inputs["maxSize"], group.inputs["desiredCapacity"]) == (3, 3, 3)
    public = [s for s in fleet_run.of_type(SUBNET) if "public" in s.name]
    assert len(public) == 2 and len({s.inputs["availabilityZone"] for s in public}) == 2
    assert {s.urn for s in public} <= group.property_dependencies["vpcZoneIdentifiers"]
    private = {s.inputs["cidrBlock"] for s in fleet_run.of_type(SUBNET) if "private" in s.name}
    assert not private & {s.inputs["cidrBlock"] for s in public}


def test_group_uses_elb_health_checks_with_a_grace_period_covering_a_first_boot(fleet_run: ProgramRun) -> None:
    group = fleet_run.one(GROUP).inputs
    assert group["healthCheckType"] == "ELB"
    # A first boot installs MLflow and may wait for RDS, created in parallel (up to the configure step's wait).
    assert group["healthCheckGracePeriod"] >= 20 * 60
    assert group["waitForElbCapacity"] == 3
    target_group = fleet_run.one(TARGET_GROUP).urn
    assert target_group in fleet_run.one(GROUP).property_dependencies["targetGroupArns"]


def test_a_launch_template_change_rolls_through_a_refresh_that_keeps_full_capacity(fleet_run: ProgramRun) -> None:
    group = fleet_run.one(GROUP)
    refresh = group.inputs["instanceRefresh"]
    assert refresh["strategy"] == "Rolling"
    preferences = refresh["preferences"]
    assert preferences["minHealthyPercentage"] == 100  # nothing is terminated before its replacement is healthy
    assert preferences["maxHealthyPercentage"] == 200  # ...so the new host is launched first
    assert preferences["autoRollback"] is True
    template = fleet_run.one(TEMPLATE)
    assert group.inputs["launchTemplate"] == {"id": "lt-0123456789abcdef0", "version": "1"}
    assert template.urn in group.property_dependencies["launchTemplate"]
    assert template.inputs["updateDefaultVersion"] is True


def test_a_host_found_unhealthy_is_also_replaced_new_host_first(fleet_run: ProgramRun) -> None:
    policy = fleet_run.one(GROUP).inputs["instanceMaintenancePolicy"]
    assert policy == {"minHealthyPercentage": 100, "maxHealthyPercentage": 200}


def test_target_group_checks_health_on_port_80_and_drains_for_a_justified_delay(fleet_run: ProgramRun) -> None:
    target = fleet_run.one(TARGET_GROUP).inputs
    assert (target["port"], target["protocol"], target["targetType"]) == (80, "HTTP", "instance")
    assert target["healthCheck"]["path"] == "/health" and target["healthCheck"]["matcher"] == "200"
    assert 30 <= target["deregistrationDelay"] <= 300
    assert target["deregistrationDelay"] == load_balancer.DEREGISTRATION_DELAY_SECONDS


def test_load_balancer_is_internet_facing_in_both_public_subnets_and_outlasts_long_transfers(
    fleet_run: ProgramRun,
) -> None:
    alb = fleet_run.one(ALB)
    assert alb.inputs["loadBalancerType"] == "application" and alb.inputs["internal"] is False
    public = {s.urn for s in fleet_run.of_type(SUBNET) if "public" in s.name}
    assert public <= alb.property_dependencies["subnets"]
    # As long as nginx waits for MLflow (proxy_read_timeout), which answers an upload once it is in S3.
    assert alb.inputs["idleTimeout"] == 3600
    assert alb.inputs["dropInvalidHeaderFields"] is True


def test_https_listener_uses_a_validated_acm_certificate_and_a_tls12_policy(fleet_run: ProgramRun) -> None:
    listeners = {listener.inputs["port"]: listener for listener in fleet_run.of_type(LISTENER)}
    assert set(listeners) == {80, 443}
    https = listeners[443]
    assert https.inputs["protocol"] == "HTTPS"
    assert https.inputs["sslPolicy"].startswith("ELBSecurityPolicy-TLS13-1-2")
    validation = fleet_run.one("aws:acm/certificateValidation:CertificateValidation")
    assert validation.urn in https.property_dependencies["certificateArn"]
    certificate = fleet_run.one("aws:acm/certificate:Certificate").inputs
    assert certificate["domainName"] == "mlflow.example.com" and certificate["validationMethod"] == "DNS"
    (forward,) = https.inputs["defaultActions"]
    assert forward["type"] == "forward"
    assert fleet_run.one(TARGET_GROUP).urn in https.property_dependencies["defaultActions"]


def test_port_80_only_redirects_to_https(fleet_run: ProgramRun) -> None:
    (http,) = [listener for listener in fleet_run.of_type(LISTENER) if listener.inputs["port"] == 80]
    (action,) = http.inputs["defaultActions"]
    assert action["type"] == "redirect"
    assert action["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}


def test_certificate_is_validated_through_the_zone_and_the_domain_aliases_the_load_balancer(
    fleet_run: ProgramRun,
) -> None:
    records = {record.name.rsplit("-", 1)[-1]: record for record in fleet_run.of_type(RECORD)}
    validation = next(r for r in fleet_run.of_type(RECORD) if "validation" in r.name).inputs
    assert validation["zoneId"] == "Z0123456789ABC" and validation["type"] == "CNAME"
    alias = records["alias"].inputs
    assert (alias["name"], alias["type"], alias["zoneId"]) == ("mlflow.example.com", "A", "Z0123456789ABC")
    (target,) = alias["aliases"]
    assert target["name"].endswith(".elb.amazonaws.com") and target["evaluateTargetHealth"] is True
    assert "ttl" not in alias and "records" not in alias


# --- the security group graph --------------------------------------------------------------------


def test_security_groups_form_the_chain_internet_alb_hosts_database(fleet_run: ProgramRun) -> None:
    stack = fleet_run.stack
    alb_in = {(r.inputs["fromPort"], source(fleet_run, r)) for r in rules_of(fleet_run, INGRESS, "-alb")}
    assert alb_in == {(80, "0.0.0.0/0"), (443, "0.0.0.0/0")}
    alb_out = {(r.inputs["fromPort"], source(fleet_run, r)) for r in rules_of(fleet_run, EGRESS, "-alb")}
    assert alb_out == {(80, f"{stack}-web")}
    hosts_in = {(r.inputs["fromPort"], r.inputs["toPort"], source(fleet_run, r))
                for r in rules_of(fleet_run, INGRESS, "-web")}
    assert hosts_in == {(80, 80, f"{stack}-alb")}
    db_in = {(r.inputs["fromPort"], source(fleet_run, r)) for r in rules_of(fleet_run, INGRESS, "-db")}
    assert db_in == {(5432, f"{stack}-web")}
    alb = fleet_run.one(ALB)
    assert group_urn(fleet_run, "-alb") in alb.property_dependencies["securityGroups"]
    template = fleet_run.one(TEMPLATE)
    assert group_urn(fleet_run, "-web") in template.property_dependencies["networkInterfaces"]


def test_restricted_allowed_cidrs_reach_only_the_load_balancer() -> None:
    run = run_program("dev", {**FLEET, "allowedCidrs": ["198.51.100.0/24"]})
    assert {(r.inputs["fromPort"], r.inputs["cidrIpv4"]) for r in rules_of(run, INGRESS, "-alb")} == {
        (80, "198.51.100.0/24"), (443, "198.51.100.0/24")}
    assert not [r for r in rules_of(run, INGRESS, "-web") if r.inputs.get("cidrIpv4")]


# --- the hosts the template launches -------------------------------------------------------------


def fleet_user_data(run: ProgramRun) -> str:
    return gzip.decompress(base64.b64decode(run.one(TEMPLATE).inputs["userData"])).decode()


def test_launch_template_carries_the_user_data_rendered_for_the_load_balancer(fleet_run: ProgramRun) -> None:
    cfg = config.load_config({**FLEET}, project="mlflow-aws", stack=fleet_run.stack, region="eu-west-1")
    bucket = fleet_run.outputs[Outputs.ARTIFACT_BUCKET]
    expected = host_settings_for(cfg, artifact_bucket=bucket,
                                 host_files_bucket=fleet_run.outputs[Outputs.HOST_FILES_BUCKET], public_ip="")
    assert expected.behind_load_balancer and expected.load_balancer_cidr == "10.20.0.0/16"
    assert fleet_user_data(fleet_run) == userdata.render(expected)
    assert "certbot" not in fleet_user_data(fleet_run)


def test_launch_template_requires_imdsv2_encrypts_gp3_and_uses_the_instance_profile(fleet_run: ProgramRun) -> None:
    template = fleet_run.one(TEMPLATE)
    metadata = template.inputs["metadataOptions"]
    assert metadata["httpTokens"] == "required" and metadata["httpPutResponseHopLimit"] == 1
    (disk,) = template.inputs["blockDeviceMappings"]
    assert disk["ebs"]["volumeType"] == "gp3" and disk["ebs"]["encrypted"] == "true"
    assert disk["ebs"]["volumeSize"] >= 30
    profile = fleet_run.one("aws:iam/instanceProfile:InstanceProfile").urn
    assert profile in template.property_dependencies["iamInstanceProfile"]
    (interface,) = template.inputs["networkInterfaces"]
    assert interface["associatePublicIpAddress"] == "true"  # outbound to PyPI/SSM/S3, no NAT gateway


def test_launched_hosts_and_volumes_carry_the_stack_tags(fleet_run: ProgramRun) -> None:
    specifications = fleet_run.one(TEMPLATE).inputs["tagSpecifications"]
    assert {s["resourceType"] for s in specifications} == {"instance", "volume"}
    for specification in specifications:
        assert specification["tags"]["Stack"] == fleet_run.stack and specification["tags"]["ManagedBy"] == "pulumi"


def test_fleet_hosts_get_no_route53_rights_since_they_run_no_certbot(fleet_run: ProgramRun) -> None:
    policy: Any = fleet_run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"]
    document = json.loads(policy)
    assert not [s for s in document["Statement"] if any("route53" in a for a in s["Action"])]


def test_fleet_does_not_wait_for_the_database(dev_fleet: ProgramRun) -> None:
    assert not dev_fleet.depends_on(dev_fleet.one(GROUP), dev_fleet.one("aws:rds/instance:Instance"))


def test_no_generated_secret_reaches_the_launch_template(dev_fleet: ProgramRun) -> None:
    user_data = fleet_user_data(dev_fleet)
    assert dev_fleet.generated_secrets
    for secret in dev_fleet.generated_secrets:
        assert secret not in user_data


def test_refresh_settings_are_the_components_constants(dev_fleet: ProgramRun) -> None:
    preferences = dev_fleet.one(GROUP).inputs["instanceRefresh"]["preferences"]
    assert preferences["minHealthyPercentage"] == fleet.MIN_HEALTHY_PERCENTAGE
    assert preferences["instanceWarmup"] == str(fleet.INSTANCE_WARMUP_SECONDS)
    assert dev_fleet.one(GROUP).inputs["healthCheckGracePeriod"] == fleet.FIRST_BOOT_GRACE_SECONDS


# --- the domain's record across fleet runs and between the two shapes ---------------------------

OWN_BALANCER = "dev-alb-0a1b2c3d-1234567890.eu-west-1.elb.amazonaws.com"


def test_a_fleets_next_up_adopts_its_own_alias_record() -> None:
    account = Account(stack_load_balancer_dns_names=[OWN_BALANCER],
                      records=[Record("mlflow.example.com", "A", [], alias=f"dualstack.{OWN_BALANCER}")])
    run = run_program("dev", FLEET, account)
    alias = next(r for r in run.of_type(RECORD) if r.name == load_balancer.alias_record_name("dev"))
    assert alias.inputs["name"] == "mlflow.example.com" and alias.inputs["aliases"]
    lookup = next(i for i in run.invokes if i.token == "aws:resourcegroupstaggingapi/getResources:getResources")
    assert {"key": "Name", "values": ["dev-alb"]} in lookup.args["tagFilters"]
    assert {"key": "Stack", "values": ["dev"]} in lookup.args["tagFilters"]


def test_an_alias_of_another_load_balancer_is_refused_naming_its_target() -> None:
    account = Account(stack_load_balancer_dns_names=[OWN_BALANCER],
                      records=[Record("mlflow.example.com", "A", [], alias="other-lb-1.eu-west-1.elb.amazonaws.com")])
    with pytest.raises(ProgramFailed) as failure:
        run_program("dev", FLEET, account)
    assert "an alias of other-lb-1.eu-west-1.elb.amazonaws.com" in str(failure.value)
    assert "pulumi config rm hostedZoneId" in str(failure.value)


def test_going_from_one_host_to_a_fleet_and_back_updates_the_one_record_of_the_name() -> None:
    single = run_program("dev", {"domain": FLEET["domain"], "hostedZoneId": FLEET["hostedZoneId"]})
    fleet_record = next(r for r in run_program("dev", FLEET).of_type(RECORD) if r.inputs.get("type") == "A")
    single_record = single.one(RECORD)
    # Each shape's record names the other's URN as an alias, so Pulumi updates the record instead of
    # creating a second one of the same name (which Route 53 refuses) and deleting the first.
    assert load_balancer.single_host_record_urn("dev", "mlflow-aws", "dev") == single_record.urn
    assert address.fleet_record_urn("dev", "mlflow-aws", "dev") == fleet_record.urn
