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
# {bucket}, {host_files_bucket}, {ssm_prefix}, {hosted_zone_id}.
ARTIFACT_BUCKET = "arn:{partition}:s3:::{bucket}"
# Any object of the bucket; this key is one MLflow writes (experiment, run, artifact path).
ARTIFACT_OBJECT = "arn:{partition}:s3:::{bucket}/1/0123456789abcdef0123456789abcdef/artifacts/model/model.pkl"
# The object of the host's files (userdata.bundle: host-files/<its sha256>.json).
HOST_FILES_OBJECT = ("arn:{partition}:s3:::{host_files_bucket}/" + KEY_PREFIX
                     + "e998e9faed7e25d2434399fc14ae63e8b80a5db9ee7c9565201e7190f45e78df.json")
HOSTED_ZONE = "arn:{partition}:route53:::hostedzone/{hosted_zone_id}"
ROUTE53_CHANGE = "arn:{partition}:route53:::change/C2682N5HXP0BZ4"
ANY_RESOURCE = "*"  # an operation IAM authorizes without a resource (route53:ListHostedZones)


def parameter(which: naming.SsmParameter) -> str:
    return "arn:{partition}:ssm:{region}:{account}:parameter{ssm_prefix}/" + which.suffix


@dataclass(frozen=True)
class StackFacts:
    """What the resource templates are formatted with for one stack."""

    partition: str
    region: str
    account: str
    bucket: str
    host_files_bucket: str
    ssm_prefix: str
    hosted_zone_id: str = ""

    def arn(self, template: str) -> str:
        return template.format(partition=self.partition, region=self.region, account=self.account,
                               bucket=self.bucket, host_files_bucket=self.host_files_bucket,
                               ssm_prefix=self.ssm_prefix, hosted_zone_id=self.hosted_zone_id)


def always(settings: HostSettings) -> bool:
    return True


def with_certificate_state(settings: HostSettings) -> bool:
    """A host that orders its own certificate keeps it in SSM (tls: letsencrypt, not behind a load balancer)."""
    return settings.tls == "letsencrypt"


def with_dns_challenge(settings: HostSettings) -> bool:
    """certbot proves the name through the stack's Route 53 zone (hostedZoneId set)."""
    return settings.acme_dns_route53


@dataclass(frozen=True)
class HostCall:
    caller: str  # what on the host makes it, and where
    operation: str  # "<service>:<Operation>", the operation as botocore names it
    actions: tuple[str, ...]  # the IAM actions AWS authorizes it with
    resources: tuple[str, ...]  # templates of the resources it reaches (each needs every action)
    when: Callable[[HostSettings], bool] = always

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
    HostCall(CERTBOT_DNS, "route53:ListHostedZones", ("route53:ListHostedZones",), (ANY_RESOURCE,),
             with_dns_challenge),
    HostCall(CERTBOT_DNS, "route53:ChangeResourceRecordSets", ("route53:ChangeResourceRecordSets",),
             (HOSTED_ZONE,), with_dns_challenge),
    HostCall(CERTBOT_DNS, "route53:GetChange", ("route53:GetChange",), (ROUTE53_CHANGE,), with_dns_challenge),
)


def actions_for(operation: str) -> tuple[str, ...] | None:
    """The IAM actions the list gives `operation` ("s3:HeadObject"), None when the host never calls it."""
    found = {call.actions for call in HOST_CALLS if call.operation == operation}
    if len(found) > 1:
        raise ValueError(f"{operation} is declared with different actions: {sorted(found)}")
    return found.pop() if found else None
