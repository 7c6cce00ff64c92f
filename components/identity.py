"""HostIdentity: the instance role and profile of the MLflow host, least privilege.

The inline policy reaches only the artifact bucket and its objects, reads the host's files (their bucket's
objects under userdata.bundle.KEY_PREFIX, nothing else there), reads only the stack's SSM
parameters (and the history of the admin's name alone, so a renamed admin can be demoted) and reads and
writes exactly two of them when TLS is on, the host's saved ACME account and certificate
(naming.HOST_WRITTEN_PARAMETERS). AWS's `AmazonSSMManagedEC2InstanceDefaultPolicy` lets the SSM agent
serve Session Manager (no SSH needed) and run the restart on an admin change, and reads no parameter.
With a Route 53 zone, the host may also change records in that zone, for certbot's DNS-01 challenge.
The two parameters the host writes are created here, holding naming.UNSAVED_STATE until the host saves
(their value is then the host's, never reset by `pulumi up`), so that `pulumi destroy` removes them and
the private key in them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

import naming
from components.ordering import ready_after
from config import StackConfig
from userdata.bundle import KEY_PREFIX

# The SSM agent's rights, for Session Manager (shells, port forwarding) and the admin-restart association
# (components/server_restart.py): AWS's policy for Default Host Management Configuration, which is
# AmazonSSMManagedInstanceCore without ssm:GetParameter and ssm:GetParameters on "*" (AWS managed policy
# reference, AmazonSSMManagedEC2InstanceDefaultPolicy v2, 2024-07-16; moto bundles the same document).
# With Core, a host could read every SecureString of every stack in the account and region. The agent
# reads parameters only to resolve `{{ssm:NAME}}` references in a document's parameters
# (amazon-ssm-agent, agent/parameterstore/parameterstore.go: Resolve returns early when there are none),
# which the restart command never carries (tests/unit/test_host_role_reach.py holds both).
SSM_MANAGED_POLICY = "AmazonSSMManagedEC2InstanceDefaultPolicy"
BUCKET_ACTIONS = ["s3:ListBucket"]
OBJECT_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
# The bootstrap (host_programs/bootstrap.py) reads the host's files, one object, at first boot.
HOST_FILES_ACTIONS = ["s3:GetObject"]
# What each action is for: the host's calls, host_programs/aws_calls.py (tests/unit/test_host_policy.py
# holds this policy to them: every call allowed, no action unused).
# The configure step reads the stack's parameters in one call.
PARAMETER_ACTIONS = ["ssm:GetParameters"]
# The configure step reads the admin name's earlier values: the admins a rename left behind.
HISTORY_ACTIONS = ["ssm:GetParameterHistory"]
# The certificate state: restored from, and saved to, its two parameters.
CERTIFICATE_STATE_ACTIONS = ["ssm:GetParameter", "ssm:PutParameter"]
# certbot-dns-route53 lists zones and polls changes (neither can be scoped to a zone).
ROUTE53_READ_ACTIONS = ["route53:ListHostedZones", "route53:GetChange"]
ROUTE53_WRITE_ACTIONS = ["route53:ChangeResourceRecordSets"]


@dataclass
class HostIdentityArgs:
    region: str
    ssm_prefix: str
    bucket_arn: pulumi.Input[str]
    host_files_bucket_arn: pulumi.Input[str]
    hosted_zone_id: str = ""
    saves_certificate: bool = True  # tls: letsencrypt; the host keeps its certificate in SSM


def assume_role_policy() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    )


def parameters_arn(partition: str, region: str, account_id: str, ssm_prefix: str) -> str:
    return f"arn:{partition}:ssm:{region}:{account_id}:parameter{ssm_prefix}/*"


def parameter_arn(partition: str, region: str, account_id: str, ssm_prefix: str, parameter: naming.SsmParameter) -> str:
    return f"arn:{partition}:ssm:{region}:{account_id}:parameter{naming.parameter_name(ssm_prefix, parameter)}"


def written_parameter_arns(partition: str, region: str, account_id: str, ssm_prefix: str) -> list[str]:
    return [
        f"arn:{partition}:ssm:{region}:{account_id}:parameter{naming.parameter_name(ssm_prefix, parameter)}"
        for parameter in naming.HOST_WRITTEN_PARAMETERS
    ]



def host_identity_args(cfg: StackConfig, bucket_arn: pulumi.Input[str], host_files_bucket_arn: pulumi.Input[str],
                       ) -> HostIdentityArgs:
    """What the role of this stack's hosts must allow."""
    return HostIdentityArgs(
        region=cfg.region,
        ssm_prefix=cfg.ssm_prefix,
        bucket_arn=bucket_arn,
        host_files_bucket_arn=host_files_bucket_arn,
        # Fleet hosts run no certbot (the load balancer's certificate is ACM's): no Route 53 rights.
        hosted_zone_id="" if cfg.fleet else cfg.hosted_zone_id,
        saves_certificate=cfg.tls == "letsencrypt" and not cfg.fleet,
    )


def host_policy(args: HostIdentityArgs, *, bucket_arn: str, host_files_bucket_arn: str, partition: str,
                account_id: str) -> str:
    """The inline policy of the hosts' role, as the RolePolicy carries it (the tests sign with a role that
    carries exactly this: tests/support/host_role.py)."""
    return host_policy_document(
        bucket_arn=bucket_arn,
        host_files_arn=f"{host_files_bucket_arn}/{KEY_PREFIX}*",
        parameters_arn=parameters_arn(partition, args.region, account_id, args.ssm_prefix),
        admin_name_arn=parameter_arn(partition, args.region, account_id, args.ssm_prefix, naming.ADMIN_USERNAME),
        partition=partition,
        hosted_zone_id=args.hosted_zone_id,
        written_parameter_arns=(
            written_parameter_arns(partition, args.region, account_id, args.ssm_prefix)
            if args.saves_certificate else None
        ),
    )


def host_policy_document(
    *, bucket_arn: str, host_files_arn: str, parameters_arn: str, admin_name_arn: str, partition: str,
    hosted_zone_id: str = "", written_parameter_arns: list[str] | None = None,
) -> str:
    statements: list[dict[str, Any]] = [
        {"Sid": "ListArtifactBucket", "Effect": "Allow", "Action": BUCKET_ACTIONS, "Resource": bucket_arn},
        {"Sid": "ReadWriteArtifacts", "Effect": "Allow", "Action": OBJECT_ACTIONS, "Resource": f"{bucket_arn}/*"},
        {"Sid": "ReadHostFiles", "Effect": "Allow", "Action": HOST_FILES_ACTIONS, "Resource": host_files_arn},
        {"Sid": "ReadStackParameters", "Effect": "Allow", "Action": PARAMETER_ACTIONS, "Resource": parameters_arn},
        {"Sid": "ReadAdminNameHistory", "Effect": "Allow", "Action": HISTORY_ACTIONS, "Resource": admin_name_arn},
    ]
    if written_parameter_arns:
        statements.append({
            "Sid": "CertificateState", "Effect": "Allow", "Action": CERTIFICATE_STATE_ACTIONS,
            "Resource": written_parameter_arns,
        })
    if hosted_zone_id:
        statements += [
            {"Sid": "Route53Lookups", "Effect": "Allow", "Action": ROUTE53_READ_ACTIONS, "Resource": "*"},
            {
                "Sid": "Route53ChallengeRecords",
                "Effect": "Allow",
                "Action": ROUTE53_WRITE_ACTIONS,
                "Resource": f"arn:{partition}:route53:::hostedzone/{hosted_zone_id}",
            },
        ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class HostIdentity(pulumi.ComponentResource):
    role_name: pulumi.Output[str]
    instance_profile_name: pulumi.Output[str]

    def __init__(self, name: str, args: HostIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:identity:HostIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)

        account_id = aws.get_caller_identity(opts=invoke).account_id
        partition = aws.get_partition(opts=invoke).partition

        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=assume_role_policy(),
            description="MLflow tracking host: artifact bucket, stack parameters, Session Manager",
            opts=child,
        )
        inline_policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.all(args.bucket_arn, args.host_files_bucket_arn).apply(
                lambda arns: host_policy(args, bucket_arn=arns[0], host_files_bucket_arn=arns[1], partition=partition,
                                         account_id=account_id)
            ),
            opts=child,
        )
        # Named for what it is for, not for the policy: a new name is a new resource, which Pulumi creates
        # before it deletes the old attachment (AmazonSSMManagedInstanceCore, on stacks deployed before),
        # so the agent keeps its rights throughout the update.
        ssm_agent = aws.iam.RolePolicyAttachment(
            f"{name}-ssm-agent",
            role=role.name,
            policy_arn=f"arn:{partition}:iam::aws:policy/{SSM_MANAGED_POLICY}",
            opts=child,
        )
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, opts=child)
        saved_state = [
            aws.ssm.Parameter(
                f"{name}-{parameter.suffix.replace('/', '-')}",
                name=naming.parameter_name(args.ssm_prefix, parameter),
                type="SecureString",
                value=naming.UNSAVED_STATE,
                description=f"Written by the MLflow host: its saved {parameter.suffix}",
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["value", "tier"]),
            )
            for parameter in (naming.HOST_WRITTEN_PARAMETERS if args.saves_certificate else ())
        ]

        self.role_name = role.name
        # A host launched with the profile has its permissions from the first boot: the configure step
        # and the SSM agent then start without a round of AccessDenied retries.
        self.instance_profile_name = ready_after(profile.name, inline_policy, ssm_agent, *saved_state)
        self.register_outputs({"role_name": self.role_name, "instance_profile_name": self.instance_profile_name})
