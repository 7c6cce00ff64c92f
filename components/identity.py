"""HostIdentity: the instance role and profile of the MLflow host, least privilege.

The inline policy reaches only the artifact bucket and its objects, reads the host's files (their bucket's
objects under userdata.bundle.KEY_PREFIX, nothing else there), reads only the stack's SSM
parameters (and the history of the admin's name alone, so a renamed admin can be demoted) and reads and
writes exactly two of them when TLS is on, the host's saved ACME account and certificate
(naming.HOST_WRITTEN_PARAMETERS). AWS's `AmazonSSMManagedEC2InstanceDefaultPolicy` lets the SSM agent
serve Session Manager (no SSH needed) and run the restart on an admin change, and reads no parameter.
With a Route 53 zone, the host may also change records in that zone, for certbot's DNS-01 challenge. The
single host may tag its own instance, and only with its health report (naming.HEALTH_TAG), which the
deployer waits for; every host may snapshot the stack's database, under the upgrade prefix only, before a
release migrates a schema. With monitoring, it may write to exactly the stack's log groups and put
metrics only in the stack's namespace. The two parameters the host writes are created here, holding
naming.UNSAVED_STATE until the host saves (their value is then the host's, never reset by `pulumi up`), so
that `pulumi destroy` removes them and the private key in them. They stay while the stack is a fleet (whose
hosts neither read nor write them), so a fleet going back to one host restores the certificate it had
instead of ordering one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

import naming
from components.naming_rules import database_identifier
from components.ordering import ready_after
from config import StackConfig
from host_programs import schema_upgrade
from userdata import monitoring
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
# What the CloudWatch agent calls to ship a log (aws/amazon-cloudwatch-agent v1.300071.0,
# plugins/outputs/cloudwatchlogs/internal/pusher/target.go and sender.go): PutLogEvents, and
# CreateLogStream for each new stream. It calls CreateLogGroup only for a missing group, and
# DescribeLogGroups and PutRetentionPolicy only with `retention_in_days`, which its configuration leaves
# out: the stack creates the groups with their retention, so neither is granted.
LOG_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]
METRIC_ACTIONS = ["cloudwatch:PutMetricData"]
# The health report tags the host's own instance (host_programs/health_report.py), and no other: the tagged
# instance's ARN (aws:ARN, the request's resource) must be the ARN of the instance whose role credentials
# sign the request (ec2:SourceInstanceARN, present only then, used as a policy variable); IAM refuses a
# bare variable as the Resource, which must be an ARN. The tag's key can only be the health report's.
HEALTH_REPORT_ACTIONS = ["ec2:CreateTags"]
OWN_INSTANCE = {"StringEquals": {"aws:ARN": "${ec2:SourceInstanceARN}"},
                "ForAllValues:StringEquals": {"aws:TagKeys": [naming.HEALTH_TAG]}}
# Before a release migrates a schema, the configure step snapshots the stack's database and waits for the
# snapshot (host_programs/schema_upgrade.py). CreateDBSnapshot is authorized against both the instance and
# the new snapshot, and copies the instance's tags to it (copy_tags_to_snapshot); the snapshot's name must
# start with schema_upgrade.snapshot_prefix.
SNAPSHOT_CREATE_ACTIONS = ["rds:CreateDBSnapshot", "rds:AddTagsToResource"]
SNAPSHOT_READ_ACTIONS = ["rds:DescribeDBSnapshots"]


@dataclass
class HostIdentityArgs:
    region: str
    ssm_prefix: str
    bucket_arn: pulumi.Input[str]
    host_files_bucket_arn: pulumi.Input[str]
    hosted_zone_id: str = ""
    keeps_certificate: bool = True  # tls: letsencrypt; the stack keeps the certificate's state in SSM
    saves_certificate: bool = True  # ...and the host reads and writes it (the single host; a fleet's is ACM's)
    reports_health: bool = True  # the single host tags itself healthy for the deployer's HostLaunch
    database_identifier: str = ""  # the stack's RDS instance: the host may snapshot it before a migration
    # With monitoring: the log groups the host's agent writes and the one namespace its metrics go to.
    log_group_names: tuple[str, ...] = ()
    metrics_namespace: str = ""
    # Not compared: resources, which the instance profile waits for (the groups exist before an agent writes).
    log_groups_ready: tuple[pulumi.CustomResource, ...] = field(default=(), compare=False)


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


def log_group_arns(partition: str, region: str, account_id: str, names: tuple[str, ...]) -> list[str]:
    """Each group (CreateLogStream is authorized against it) and everything below it, `<group>:*`: its
    streams (`:log-stream:<name>`, for PutLogEvents), and the `:*` form IAM matches some calls against."""
    groups = [f"arn:{partition}:logs:{region}:{account_id}:log-group:{name}" for name in names]
    return [arn for group in groups for arn in (group, f"{group}:*")]

def database_arn(partition: str, region: str, account_id: str, identifier: str) -> str:
    return f"arn:{partition}:rds:{region}:{account_id}:db:{identifier}"


def snapshots_arn(partition: str, region: str, account_id: str, identifier: str) -> str:
    return f"arn:{partition}:rds:{region}:{account_id}:snapshot:{schema_upgrade.snapshot_prefix(identifier)}*"


def host_identity_args(
    cfg: StackConfig, bucket_arn: pulumi.Input[str], host_files_bucket_arn: pulumi.Input[str],
    log_groups: Sequence[pulumi.CustomResource] = (),
) -> HostIdentityArgs:
    """What the role of this stack's hosts must allow; `log_groups`: the groups' resources, which the
    instance profile waits for (components/host_logs.py)."""
    certificate_on_host = monitoring.runs_certbot(tls=cfg.tls, behind_load_balancer=cfg.fleet)
    return HostIdentityArgs(
        region=cfg.region,
        ssm_prefix=cfg.ssm_prefix,
        bucket_arn=bucket_arn,
        host_files_bucket_arn=host_files_bucket_arn,
        # Fleet hosts run no certbot (the load balancer's certificate is ACM's): no Route 53 rights.
        hosted_zone_id="" if cfg.fleet else cfg.hosted_zone_id,
        # The saved certificate outlives a spell as a fleet, whose hosts neither read nor write it.
        keeps_certificate=cfg.tls == "letsencrypt",
        saves_certificate=certificate_on_host,
        # The single host tells the deployer it serves; a fleet's hosts tell the load balancer.
        reports_health=not cfg.fleet,
        database_identifier=database_identifier(cfg.project, cfg.stack),
        log_group_names=tuple(
            naming.log_group_name(cfg.project, cfg.stack, group)
            for group in monitoring.log_groups(certificate=certificate_on_host)
        ) if cfg.monitoring else (),
        metrics_namespace=naming.metrics_namespace(cfg.project, cfg.stack) if cfg.monitoring else "",
        log_groups_ready=tuple(log_groups),
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
        log_group_arns=log_group_arns(partition, args.region, account_id, args.log_group_names),
        metrics_namespace=args.metrics_namespace,
        instances_arn=f"arn:{partition}:ec2:{args.region}:{account_id}:instance/*" if args.reports_health else "",
        database_arn=database_arn(partition, args.region, account_id, args.database_identifier)
        if args.database_identifier else "",
        snapshots_arn=snapshots_arn(partition, args.region, account_id, args.database_identifier)
        if args.database_identifier else "",
    )


def host_policy_document(
    *, bucket_arn: str, host_files_arn: str, parameters_arn: str, admin_name_arn: str, partition: str,
    hosted_zone_id: str = "", written_parameter_arns: list[str] | None = None,
    log_group_arns: list[str] | None = None, metrics_namespace: str = "", instances_arn: str = "",
    database_arn: str = "", snapshots_arn: str = "",
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
    if log_group_arns:
        statements.append({"Sid": "ShipLogs", "Effect": "Allow", "Action": LOG_ACTIONS, "Resource": log_group_arns})
    if metrics_namespace:
        # PutMetricData has no resource to scope: the namespace condition key is how IAM narrows it.
        statements.append({
            "Sid": "PublishStackMetrics", "Effect": "Allow", "Action": METRIC_ACTIONS, "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": metrics_namespace}},
        })
    if instances_arn:
        statements.append({
            "Sid": "ReportOwnHealth", "Effect": "Allow", "Action": HEALTH_REPORT_ACTIONS, "Resource": instances_arn,
            "Condition": OWN_INSTANCE,
        })
    if database_arn:
        statements += [
            {"Sid": "SnapshotOwnDatabase", "Effect": "Allow", "Action": SNAPSHOT_CREATE_ACTIONS,
             "Resource": [database_arn, snapshots_arn]},
            {"Sid": "WatchOwnSnapshots", "Effect": "Allow", "Action": SNAPSHOT_READ_ACTIONS, "Resource": snapshots_arn},
        ]
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
            for parameter in (naming.HOST_WRITTEN_PARAMETERS if args.keeps_certificate else ())
        ]

        self.role_name = role.name
        # A host launched with the profile has its permissions from the first boot: the configure step
        # and the SSM agent then start without a round of AccessDenied retries.
        self.instance_profile_name = ready_after(
            profile.name, inline_policy, ssm_agent, *saved_state, *args.log_groups_ready
        )
        self.register_outputs({"role_name": self.role_name, "instance_profile_name": self.instance_profile_name})
