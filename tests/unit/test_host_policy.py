"""The instance role's policy, as the program renders it (components/identity.py), against every AWS call the
host makes (host_programs/aws_calls.py), for each kind of stack: AWS would allow each call the stack's hosts
make and no call they never make (tests/support/iam_policy.py evaluates). The same policy is enforced by
moto in the loopback and boot tests (tests/support/moto_authorization.py); this covers the calls those
never make."""

from __future__ import annotations

import json
from typing import Any

import pytest

import userdata
from components.identity import host_identity_args, host_policy
from config import StackConfig, load_config
from host_programs.aws_calls import HOST_CALLS, HostCall, StackFacts
from host_settings import host_settings_for
from tests.support import host_role
from tests.support.iam_policy import Outcome, evaluate
from userdata.bundle import KEY_PREFIX
from userdata.settings import HostSettings

PARTITION, REGION, ACCOUNT = "aws", "eu-west-1", "111122223333"
BUCKET = "mlflow-aws-dev-artifacts-0123abcd"
HOST_FILES_BUCKET = "mlflow-aws-dev-host-files-0123abcd"
ZONE = "Z0123456789ABCDEFGHIJ"
STACKS: dict[str, dict[str, Any]] = {
    "dev": {},
    "prod": {"protectData": True, "dbMultiAz": True},
    "fleet": {"hosts": 3, "domain": "mlflow.example.com", "hostedZoneId": ZONE},
    "tls-off": {"tls": "off"},
    "dns-01": {"domain": "mlflow.example.com", "hostedZoneId": ZONE},
}


def stack(name: str) -> tuple[StackConfig, HostSettings, dict[str, Any]]:
    """(config, host settings, the role policy the program renders) of one kind of stack."""
    cfg = load_config(STACKS[name], project="mlflow-aws", stack=name, region=REGION)
    settings = host_settings_for(cfg, artifact_bucket=BUCKET, host_files_bucket=HOST_FILES_BUCKET,
                                 public_ip="203.0.113.10")
    bucket_arn, host_files_arn = f"arn:{PARTITION}:s3:::{BUCKET}", f"arn:{PARTITION}:s3:::{HOST_FILES_BUCKET}"
    policy = host_policy(host_identity_args(cfg, bucket_arn, host_files_arn), bucket_arn=bucket_arn,
                         host_files_bucket_arn=host_files_arn, partition=PARTITION, account_id=ACCOUNT)
    return cfg, settings, json.loads(policy)


def facts(cfg: StackConfig) -> StackFacts:
    return StackFacts(partition=PARTITION, region=REGION, account=ACCOUNT, bucket=BUCKET,
                      host_files_bucket=HOST_FILES_BUCKET,
                      ssm_prefix=cfg.ssm_prefix, hosted_zone_id=cfg.hosted_zone_id)


def refusals(policy: dict[str, Any], calls: list[HostCall], stack_facts: StackFacts) -> list[str]:
    """Each (call, action, resource) the policy does not allow."""
    return [f"{call.caller}: {call.operation} needs {action} on {stack_facts.arn(resource)}: {outcome.value}"
            for call in calls for action in call.actions for resource in call.resources
            if (outcome := evaluate(policy, action, stack_facts.arn(resource))) is not Outcome.ALLOWED]


@pytest.mark.parametrize("name", sorted(STACKS))
def test_the_role_allows_every_call_the_stacks_hosts_make(name):
    cfg, settings, policy = stack(name)
    made = [call for call in HOST_CALLS if call.when(settings)]
    assert made
    assert refusals(policy, made, facts(cfg)) == []


@pytest.mark.parametrize("name", sorted(STACKS))
def test_the_role_allows_no_call_the_stacks_hosts_never_make(name):
    cfg, settings, policy = stack(name)
    never = [call for call in HOST_CALLS if not call.when(settings)]
    allowed = [(call.operation, action) for call in never for action in call.actions for resource in call.resources
               if evaluate(policy, action, facts(cfg).arn(resource)) is Outcome.ALLOWED]
    assert allowed == []


def test_which_stacks_make_which_calls():
    made = {name: {call.operation for call in HOST_CALLS if call.when(stack(name)[1])} for name in STACKS}
    assert "ssm:PutParameter" in made["dev"] and "ssm:PutParameter" not in made["tls-off"]
    assert "ssm:PutParameter" not in made["fleet"]  # the load balancer's certificate is ACM's
    assert "route53:ChangeResourceRecordSets" in made["dns-01"] and "route53:ChangeResourceRecordSets" not in made[
        "fleet"]


@pytest.mark.parametrize("name", sorted(STACKS))
def test_every_action_the_role_is_given_is_one_the_hosts_use(name):
    _, settings, policy = stack(name)
    used = {action for call in HOST_CALLS if call.when(settings) for action in call.actions}
    granted = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert granted <= used


def test_the_role_reads_only_its_own_stacks_parameters_and_bucket():
    cfg, _, policy = stack("dev")
    other = f"arn:{PARTITION}:ssm:{REGION}:{ACCOUNT}:parameter/mlflow-aws/prod/db/password"
    assert evaluate(policy, "ssm:GetParameters", other) is Outcome.IMPLICITLY_DENIED
    assert evaluate(policy, "s3:GetObject", f"arn:{PARTITION}:s3:::mlflow-aws-prod-artifacts/1/a") is (
        Outcome.IMPLICITLY_DENIED)
    history_of_password = facts(cfg).arn("arn:{partition}:ssm:{region}:{account}:parameter{ssm_prefix}/db/password")
    assert evaluate(policy, "ssm:GetParameterHistory", history_of_password) is Outcome.IMPLICITLY_DENIED


def test_the_role_reads_the_host_files_under_their_prefix_and_nothing_else_of_their_bucket():
    _, settings, policy = stack("dev")
    bucket = f"arn:{PARTITION}:s3:::{HOST_FILES_BUCKET}"
    key = userdata.host_bundle(settings).key
    assert key.startswith(KEY_PREFIX)
    assert evaluate(policy, "s3:GetObject", f"{bucket}/{key}") is Outcome.ALLOWED
    assert evaluate(policy, "s3:GetObject", f"{bucket}/elsewhere/{key}") is Outcome.IMPLICITLY_DENIED
    assert evaluate(policy, "s3:PutObject", f"{bucket}/{key}") is Outcome.IMPLICITLY_DENIED
    assert evaluate(policy, "s3:ListBucket", bucket) is Outcome.IMPLICITLY_DENIED
    other_stack = f"arn:{PARTITION}:s3:::mlflow-aws-prod-host-files-0123abcd/{key}"
    assert evaluate(policy, "s3:GetObject", other_stack) is Outcome.IMPLICITLY_DENIED


def test_without_an_action_the_call_needing_it_is_refused():
    cfg, _, policy = stack("dev")
    (reading,) = [call for call in HOST_CALLS if call.operation == "ssm:GetParameters"]
    broken = host_role.without_action("ssm:GetParameters")(policy)
    assert len(refusals(broken, [reading], facts(cfg))) == len(reading.resources)
    assert refusals(policy, [reading], facts(cfg)) == []


@pytest.mark.parametrize("name", sorted(STACKS))
def test_the_tests_host_role_carries_the_policy_the_program_renders(name):
    cfg, settings, _ = stack(name)
    expected = host_identity_args(cfg, host_role.bucket_arn(settings), host_role.host_files_bucket_arn(settings))
    assert host_role.identity_args(settings, hosted_zone_id=cfg.hosted_zone_id) == expected


def test_each_operation_is_declared_with_one_set_of_actions():
    operations = {call.operation for call in HOST_CALLS}
    found = {operation: {call.actions for call in HOST_CALLS if call.operation == operation}
             for operation in operations}
    assert {operation: actions for operation, actions in found.items() if len(actions) > 1} == {}
