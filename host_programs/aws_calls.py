"""Every AWS call the host makes, in one list: who makes it, the API operation, the IAM actions AWS
authorizes it with, and the resources it reaches. Found by reading the host's code; never shipped to the
host (no program imports it).

The tests hold the instance role's policy to this list twice:
- tests/unit/test_host_policy.py evaluates the policy the program renders (components/identity.py) for
  every call here, for each kind of stack: AWS would allow each one. That covers calls the loopback and
  boot tests never make (Route 53's DNS-01) and services moto does not authorize faithfully.
- moto runs with authorization on (tests/support/moto_authorization.py): the host's processes sign with
  a moto role carrying that policy, and moto authorizes each call with the actions and resources given
  here; a call of the host role's that is not here is refused, so the loopback and boot tests fail until
  it is declared.

A new call: add a HostCall below (its `when` if only some stacks make it), then the statement that allows
it to components/identity.py; tests/unit/test_host_policy.py fails until both agree. Actions and
resources are AWS's, from the service's authorization reference, e.g. S3's "Required permissions for
Amazon S3 API operations" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html):
HeadObject needs s3:GetObject, ListObjectsV2 s3:ListBucket, the multipart upload's parts s3:PutObject,
DeleteObjects s3:DeleteObject on each key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import naming
from userdata.bundle import KEY_PREFIX
from userdata.settings import HostSettings

# Resource templates, formatted with the stack's facts (StackFacts): {partition}, {region}, {account},
# {bucket}, {host_files_bucket}, {ssm_prefix}, {hosted_zone_id}, {project}, {stack}.
ARTIFACT_BUCKET = "arn:{partition}:s3:::{bucket}"
# Any object of the bucket; this key is one MLflow writes (experiment, run, artifact path).
ARTIFACT_OBJECT = "arn:{partition}:s3:::{bucket}/1/0123456789abcdef0123456789abcdef/artifacts/model/model.pkl"
# The object of the host's files (userdata.bundle: host-files/<its sha256>.json).
HOST_FILES_OBJECT = ("arn:{partition}:s3:::{host_files_bucket}/" + KEY_PREFIX
                     + "e998e9faed7e25d2434399fc14ae63e8b80a5db9ee7c9565201e7190f45e78df.json")
HOSTED_ZONE = "arn:{partition}:route53:::hostedzone/{hosted_zone_id}"
ROUTE53_CHANGE = "arn:{partition}:route53:::change/C2682N5HXP0BZ4"
# The stack's RDS instance and a snapshot the configure step takes before a migration
# (host_programs/schema_upgrade.py: snapshot_identifier, under the prefix the policy allows).
DATABASE = "arn:{partition}:rds:{region}:{account}:db:{db_identifier}"
UPGRADE_SNAPSHOT = ("arn:{partition}:rds:{region}:{account}:snapshot:{db_identifier}-upgrade-"
                    "3-16-1-to-3-17-2-20261207t043000z")
# The host's own instance (the health report tags it; AWS checks it against ec2:SourceInstanceARN).
OWN_INSTANCE = "arn:{partition}:ec2:{region}:{account}:instance/{instance_id}"
# A fleet's target group (the admin restart takes its own host out and back).
TARGET_GROUP = "arn:{partition}:elasticloadbalancing:{region}:{account}:targetgroup/mlflow-aws-dev/0123456789abcdef"
ANY_RESOURCE = "*"  # an operation IAM authorizes without a resource (route53:ListHostedZones)


# The stack's namespace, the value of the condition key AWS sets on PutMetricData
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html).
STACK_NAMESPACE = naming.metrics_namespace("{project}", "{stack}")


def parameter(which: naming.SsmParameter) -> str:
    return "arn:{partition}:ssm:{region}:{account}:parameter{ssm_prefix}/" + which.suffix


def log_group(group: naming.LogGroup) -> str:
    """CreateLogStream is authorized on the group (the Service Authorization Reference for CloudWatch Logs)."""
    return "arn:{partition}:logs:{region}:{account}:log-group:" + naming.log_group_name("{project}", "{stack}", group)


def log_stream(group: naming.LogGroup) -> str:
    """PutLogEvents on a stream of the group; the agent names streams by instance (userdata/monitoring.py)."""
    return log_group(group) + ":log-stream:i-0123456789abcdef0"


@dataclass(frozen=True)
class StackFacts:
    """What the resource templates are formatted with for one stack."""

    partition: str
    region: str
    account: str
    bucket: str
    host_files_bucket: str
    ssm_prefix: str
    project: str
    stack: str
    hosted_zone_id: str = ""
    db_identifier: str = "mlflow-aws-dev"
    instance_id: str = "i-0123456789abcdef0"

    def arn(self, template: str) -> str:
        """A template (a resource, or a condition key's value) with this stack's facts."""
        return template.format(partition=self.partition, region=self.region, account=self.account,
                               bucket=self.bucket, host_files_bucket=self.host_files_bucket,
                               ssm_prefix=self.ssm_prefix, hosted_zone_id=self.hosted_zone_id,
                               project=self.project, stack=self.stack, db_identifier=self.db_identifier,
                               instance_id=self.instance_id)

    def context(self, call: HostCall) -> dict[str, str]:
        """The call's condition keys with their values for this stack."""
        return {key: self.arn(value) for key, value in call.context}


def always(settings: HostSettings) -> bool:
    return True


def with_certificate_state(settings: HostSettings) -> bool:
    """A host that orders its own certificate keeps it in SSM (tls: letsencrypt, not behind a load balancer)."""
    return settings.tls == "letsencrypt"


def single_host(settings: HostSettings) -> bool:
    """The single host reports its health to the deployer (a fleet's hosts report to the load balancer)."""
    return not settings.behind_load_balancer


def behind_load_balancer(settings: HostSettings) -> bool:
    return settings.behind_load_balancer


def with_dns_challenge(settings: HostSettings) -> bool:
    """certbot proves the name through the stack's Route 53 zone (hostedZoneId set)."""
    return settings.acme_dns_route53


def with_monitoring(settings: HostSettings) -> bool:
    """The CloudWatch agent ships the host's logs and metrics (`monitoring`, on by default)."""
    return settings.monitoring


def with_certificate_report(settings: HostSettings) -> bool:
    """With monitoring, a host that orders its own certificate reports its days left (and logs its units)."""
    return settings.monitoring and with_certificate_state(settings)


@dataclass(frozen=True)
class HostCall:
    caller: str  # what on the host makes it, and where
    operation: str  # "<service>:<Operation>", the operation as botocore names it
    actions: tuple[str, ...]  # the IAM actions AWS authorizes it with
    resources: tuple[str, ...]  # templates of the resources it reaches (each needs every action)
    when: Callable[[HostSettings], bool] = always
    # Condition keys AWS sets on the request that the policy tests: (key, template of its value).
    context: tuple[tuple[str, str], ...] = ()

    @property
    def service(self) -> str:
        return self.operation.split(":", 1)[0]


BOOTSTRAP = "mlflow-host-files, the user data's bootstrap (host_programs/bootstrap.py, signed by hand)"
CONFIGURE = "mlflow-configure (host_programs/configure.py)"
SERVER = "mlflow server, the artifact proxy (mlflow/store/artifact/s3_artifact_repo.py)"
PRESIGNED = "a client, with a URL the mlflow server presigns (s3_artifact_repo.py: get_download_presigned_url, " \
            "create_presigned_upload_url, create_multipart_upload)"
CERTIFICATE_STATE = "mlflow-certificate-state (host_programs/certificate_state.py)"
CERTBOT_DNS = "certbot --dns-route53 (certbot_dns_route53/_internal/dns_route53.py)"
# aws/amazon-cloudwatch-agent v1.300071.0: plugins/outputs/cloudwatchlogs/internal/pusher/target.go and
# sender.go (CreateLogStream for a new stream, then PutLogEvents; CreateLogGroup only for a missing group,
# which the stack creates first), plugins/outputs/cloudwatch (PutMetricData).
CLOUDWATCH_AGENT = "amazon-cloudwatch-agent (userdata/monitoring.py)"
CERTIFICATE_REPORT = "mlflow-certificate-state report (host_programs/certificate_state.py)"

HOST_LOGS = (naming.SERVER_LOG, naming.NGINX_LOG, naming.ACCESS_LOG)  # every monitored host's; not the certificate's
HEALTH_REPORT = "mlflow-health-report (host_programs/health_report.py)"
ADMIN_RESTART = "mlflow-admin-restart (host_programs/admin_restart.py)"

SAVED_STATE = tuple(parameter(which) for which in naming.HOST_WRITTEN_PARAMETERS)

HOST_CALLS: tuple[HostCall, ...] = (
    HostCall(BOOTSTRAP, "s3:GetObject", ("s3:GetObject",), (HOST_FILES_OBJECT,)),
    # The identity provider's client secret only with auth oidc: one call reads every parameter of the step.
    HostCall(CONFIGURE, "ssm:GetParameters", ("ssm:GetParameters",),
             tuple(parameter(which) for which in (*naming.HOST_PARAMETERS, *naming.OIDC_HOST_PARAMETERS))),
    HostCall(CONFIGURE, "ssm:GetParameterHistory", ("ssm:GetParameterHistory",),
             (parameter(naming.ADMIN_USERNAME),)),
    HostCall(SERVER, "s3:PutObject", ("s3:PutObject",), (ARTIFACT_OBJECT,)),
    HostCall(SERVER, "s3:CreateMultipartUpload", ("s3:PutObject",), (ARTIFACT_OBJECT,)),
    HostCall(SERVER, "s3:UploadPart", ("s3:PutObject",), (ARTIFACT_OBJECT,)),
    HostCall(SERVER, "s3:CompleteMultipartUpload", ("s3:PutObject",), (ARTIFACT_OBJECT,)),
    HostCall(SERVER, "s3:AbortMultipartUpload", ("s3:AbortMultipartUpload",), (ARTIFACT_OBJECT,)),
    HostCall(SERVER, "s3:HeadObject", ("s3:GetObject",), (ARTIFACT_OBJECT,)),
    HostCall(SERVER, "s3:GetObject", ("s3:GetObject",), (ARTIFACT_OBJECT,)),
    HostCall(SERVER, "s3:ListObjectsV2", ("s3:ListBucket",), (ARTIFACT_BUCKET,)),
    HostCall(SERVER, "s3:DeleteObjects", ("s3:DeleteObject",), (ARTIFACT_OBJECT,)),
    HostCall(PRESIGNED, "s3:GetObject", ("s3:GetObject",), (ARTIFACT_OBJECT,)),
    HostCall(PRESIGNED, "s3:PutObject", ("s3:PutObject",), (ARTIFACT_OBJECT,)),
    HostCall(PRESIGNED, "s3:UploadPart", ("s3:PutObject",), (ARTIFACT_OBJECT,)),
    HostCall(CERTIFICATE_STATE, "ssm:GetParameter", ("ssm:GetParameter",), SAVED_STATE, with_certificate_state),
    HostCall(CERTIFICATE_STATE, "ssm:PutParameter", ("ssm:PutParameter",), SAVED_STATE, with_certificate_state),
    # CreateDBSnapshot is authorized on the instance and on the new snapshot (RDS's Service Authorization
    # Reference); the instance's copy_tags_to_snapshot adds its tags with rds:AddTagsToResource.
    HostCall(CONFIGURE, "rds:CreateDBSnapshot", ("rds:CreateDBSnapshot", "rds:AddTagsToResource"),
             (DATABASE, UPGRADE_SNAPSHOT)),
    HostCall(CONFIGURE, "rds:DescribeDBSnapshots", ("rds:DescribeDBSnapshots",), (UPGRADE_SNAPSHOT,)),
    # Signed with the instance's own role session: AWS sets ec2:SourceInstanceARN to that instance.
    HostCall(HEALTH_REPORT, "ec2:CreateTags", ("ec2:CreateTags",), (OWN_INSTANCE,), single_host,
             (("aws:ARN", OWN_INSTANCE), ("ec2:SourceInstanceARN", OWN_INSTANCE), ("aws:TagKeys", naming.HEALTH_TAG))),
    HostCall(ADMIN_RESTART, "autoscaling:DescribeAutoScalingInstances", ("autoscaling:DescribeAutoScalingInstances",),
             (ANY_RESOURCE,), behind_load_balancer),
    HostCall(ADMIN_RESTART, "autoscaling:DescribeAutoScalingGroups", ("autoscaling:DescribeAutoScalingGroups",),
             (ANY_RESOURCE,), behind_load_balancer),
    HostCall(ADMIN_RESTART, "elbv2:DeregisterTargets", ("elasticloadbalancing:DeregisterTargets",),
             (TARGET_GROUP,), behind_load_balancer),
    HostCall(ADMIN_RESTART, "elbv2:RegisterTargets", ("elasticloadbalancing:RegisterTargets",),
             (TARGET_GROUP,), behind_load_balancer),
    HostCall(ADMIN_RESTART, "elbv2:DescribeTargetHealth", ("elasticloadbalancing:DescribeTargetHealth",),
             (ANY_RESOURCE,), behind_load_balancer),
    HostCall(CERTBOT_DNS, "route53:ListHostedZones", ("route53:ListHostedZones",), (ANY_RESOURCE,),
             with_dns_challenge),
    HostCall(CERTBOT_DNS, "route53:ChangeResourceRecordSets", ("route53:ChangeResourceRecordSets",),
             (HOSTED_ZONE,), with_dns_challenge),
    HostCall(CERTBOT_DNS, "route53:GetChange", ("route53:GetChange",), (ROUTE53_CHANGE,), with_dns_challenge),
    HostCall(CLOUDWATCH_AGENT, "logs:CreateLogStream", ("logs:CreateLogStream",),
             tuple(log_group(group) for group in HOST_LOGS), with_monitoring),
    HostCall(CLOUDWATCH_AGENT, "logs:PutLogEvents", ("logs:PutLogEvents",),
             tuple(log_stream(group) for group in HOST_LOGS), with_monitoring),
    HostCall(CLOUDWATCH_AGENT, "logs:CreateLogStream", ("logs:CreateLogStream",),
             (log_group(naming.CERTIFICATE_LOG),), with_certificate_report),
    HostCall(CLOUDWATCH_AGENT, "logs:PutLogEvents", ("logs:PutLogEvents",),
             (log_stream(naming.CERTIFICATE_LOG),), with_certificate_report),
    HostCall(CLOUDWATCH_AGENT, "cloudwatch:PutMetricData", ("cloudwatch:PutMetricData",), (ANY_RESOURCE,),
             with_monitoring, context=(("cloudwatch:namespace", STACK_NAMESPACE),)),
    HostCall(CERTIFICATE_REPORT, "cloudwatch:PutMetricData", ("cloudwatch:PutMetricData",), (ANY_RESOURCE,),
             with_certificate_report, context=(("cloudwatch:namespace", STACK_NAMESPACE),)),
)


def actions_for(operation: str) -> tuple[str, ...] | None:
    """The IAM actions the list gives `operation` ("s3:HeadObject"), None when the host never calls it."""
    found = {call.actions for call in HOST_CALLS if call.operation == operation}
    if len(found) > 1:
        raise ValueError(f"{operation} is declared with different actions: {sorted(found)}")
    return found.pop() if found else None
