"""Everything the host's instance role is given, as the program attaches it: its inline policies and the
AWS-managed ones, evaluated from their documents (moto bundles AWS's managed policies as AWS publishes
them). tests/unit/test_host_policy.py holds the inline policy to the host's own calls; this holds the
whole role to the stack's boundary: no policy lets a host read another stack's parameters, and the SSM
agent keeps what Session Manager and the admin-restart association need.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from moto.iam.aws_managed_policies import aws_managed_policies_data

from components.server_restart import RUN_SHELL_DOCUMENT
from tests.support.iam_policy import Outcome, evaluate
from tests.support.pulumi_program import ACCOUNT_ID, ProgramRun, run_program

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
PROFILE = "aws:iam/instanceProfile:InstanceProfile"
ASSOCIATION = "aws:ssm/association:Association"
REGION = "eu-west-1"  # Pulumi.dev.yaml's
AWS_MANAGED = "arn:aws:iam::aws:policy/"
MANAGED_DOCUMENTS: dict[str, Any] = json.loads(aws_managed_policies_data)

# Every IAM action that returns a parameter's value (Service Authorization Reference, AWS Systems Manager).
PARAMETER_READS = ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory")


def parameter_arn(name: str) -> str:
    return f"arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter{name}"


# Parameters of the same account and region that are not the dev stack's (/mlflow-aws/dev/...).
OTHERS_PARAMETERS = (
    parameter_arn("/mlflow-aws/prod/db/password"),  # another stack of this project
    parameter_arn("/mlflow-aws/prod"),  # its path, as GetParametersByPath is authorized against
    parameter_arn("/mlflow-aws/dev-sandbox/mlflow/admin-password"),  # a stack whose name begins with "dev"
    parameter_arn("/payments/prod/api-key"),  # another team's
)
OWN_PARAMETER = parameter_arn("/mlflow-aws/dev/db/password")

# What the SSM agent on the host calls: AmazonSSMManagedInstanceCore's actions, which the host was given
# for Session Manager and the admin restart, except its two parameter reads.
SSM_AGENT_ACTIONS = tuple(
    action
    for statement in MANAGED_DOCUMENTS["AmazonSSMManagedInstanceCore"]["Document"]["Statement"]
    for action in statement["Action"]
    if action not in PARAMETER_READS
)
INSTANCE = f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:instance/i-0123456789abcdef0"
# The agent resolves a document parameter's `{{ssm:NAME}}` with ssm:GetParameters, its only parameter read
# (amazon-ssm-agent, agent/parameterstore/parameterstore.go, getValidSSMParamRegexCompiler).
AGENT_PARAMETER_REFERENCE = re.compile(r"\{\{ *ssm:[/\w.-]+ *\}\}")


@pytest.fixture(scope="module")
def dev() -> ProgramRun:
    return run_program("dev")


@pytest.fixture(scope="module")
def fleet() -> ProgramRun:
    return run_program("dev", {"hosts": 3, "domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABC"})


def managed_document(policy_arn: str) -> dict[str, Any]:
    assert policy_arn.startswith(AWS_MANAGED), f"{policy_arn}: not an AWS-managed policy; evaluate its document"
    name = policy_arn.rsplit("/", 1)[-1]  # moto keys them by name; a path (service-role/) is not part of it
    assert name in MANAGED_DOCUMENTS, f"{name} is not among the AWS-managed policies moto bundles"
    document: dict[str, Any] = MANAGED_DOCUMENTS[name]["Document"]
    return document


def host_role_policies(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """Each policy the hosts' role carries (the role of the instance profile), by name or ARN."""
    (role_urn,) = run.one(PROFILE).property_dependencies["role"]
    role = run.by_urn(role_urn)
    assert role.type == ROLE
    assert "inlinePolicies" not in role.inputs and "managedPolicyArns" not in role.inputs
    policies = {policy.name: json.loads(policy.inputs["policy"]) for policy in run.of_type(ROLE_POLICY)
                if role_urn in policy.property_dependencies["role"]}
    policies |= {attachment.inputs["policyArn"]: managed_document(attachment.inputs["policyArn"])
                 for attachment in run.of_type(ATTACHMENT) if role_urn in attachment.property_dependencies["role"]}
    return policies


def role_document(run: ProgramRun) -> dict[str, Any]:
    """The role's policies as one document: IAM allows a request when any of them does and none denies."""
    statements: list[dict[str, Any]] = []
    for document in host_role_policies(run).values():
        listed = document["Statement"]
        statements += [listed] if isinstance(listed, dict) else listed
    return {"Version": "2012-10-17", "Statement": statements}


@pytest.mark.parametrize("shape", ["dev", "fleet"])
def test_no_policy_of_the_host_role_reads_another_stacks_parameters(shape, request):
    run: ProgramRun = request.getfixturevalue(shape)
    readable = [f"{name}: {action} on {resource}"
                for name, document in host_role_policies(run).items()
                for action in PARAMETER_READS for resource in OTHERS_PARAMETERS
                if evaluate(document, action, resource) is Outcome.ALLOWED]
    assert readable == []


def test_the_host_role_reads_its_own_stacks_parameters(dev):
    assert evaluate(role_document(dev), "ssm:GetParameters", OWN_PARAMETER) is Outcome.ALLOWED


def test_the_host_role_carries_the_ssm_agents_policy_without_parameter_reads(dev):
    managed = [name for name in host_role_policies(dev) if name.startswith(AWS_MANAGED)]
    assert managed == [f"{AWS_MANAGED}AmazonSSMManagedEC2InstanceDefaultPolicy"]


@pytest.mark.parametrize("shape", ["dev", "fleet"])
def test_the_ssm_agent_may_do_everything_it_did_but_read_parameters(shape, request):
    """Register the instance, open Session Manager's channels (shells, port forwarding), fetch and run the
    admin-restart association and report it."""
    document = role_document(request.getfixturevalue(shape))
    assert {"ssm:UpdateInstanceInformation", "ssmmessages:OpenDataChannel", "ssm:ListInstanceAssociations",
            "ssm:UpdateInstanceAssociationStatus", "ec2messages:GetMessages"} <= set(SSM_AGENT_ACTIONS)
    refused = [action for action in SSM_AGENT_ACTIONS if evaluate(document, action, INSTANCE) is not Outcome.ALLOWED]
    assert refused == []


def test_the_restart_association_gives_the_agent_no_parameter_to_resolve(dev):
    (association,) = dev.of_type(ASSOCIATION)
    assert association.inputs["name"] == RUN_SHELL_DOCUMENT
    parameters = json.dumps(association.inputs["parameters"])
    assert "mlflow.service" in parameters  # the command itself, not an empty stand-in
    assert AGENT_PARAMETER_REFERENCE.search(parameters) is None
    assert AGENT_PARAMETER_REFERENCE.search("echo {{ssm:/mlflow-aws/dev/mlflow/admin-username}}")
