"""The host's instance role in moto: the policy the program renders for the host (components/identity.py),
and the temporary credentials of a session of that role, which the instance metadata stand-in
(tests/support/imds.py) hands to the host's processes as EC2 would.

The role carries the inline policy alone: AmazonSSMManagedEC2InstanceDefaultPolicy, which the program also
attaches, is for the SSM agent, and no program of the host relies on it (host_programs/aws_calls.py), so
the tests prove the inline policy suffices (tests/unit/test_host_role_reach.py evaluates the managed one).
Its trust policy lets the tests' admin assume it, standing in for EC2: moto 5.2.6 cannot evaluate the
program's own trust policy (its _check_principal handles only AWS principals, and a Service principal
raises a TypeError).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.identity import HostIdentityArgs, host_policy
from userdata.settings import HostSettings

HOST_ROLE = "mlflow-aws-host"
PARTITION = "aws"
ACCOUNT_ID = "123456789012"  # moto's default account, where the admin and every resource live
# The longest session a role allows (MaxSessionDuration): the credentials outlive any test session.
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class RoleCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime.datetime


def identity_args(settings: HostSettings, *, hosted_zone_id: str = "") -> HostIdentityArgs:
    """The HostIdentityArgs the program gives the role of hosts rendered with `settings`
    (components.identity.host_identity_args from the stack's config; tests/unit/test_host_policy.py shows
    both agree): certificate state with tls on the host, Route 53 only with a DNS challenge."""
    return HostIdentityArgs(
        region=settings.region,
        ssm_prefix=settings.ssm_prefix,
        bucket_arn=bucket_arn(settings),
        host_files_bucket_arn=host_files_bucket_arn(settings),
        hosted_zone_id=hosted_zone_id if settings.acme_dns_route53 else "",
        saves_certificate=settings.tls == "letsencrypt",
    )


def bucket_arn(settings: HostSettings) -> str:
    return f"arn:{PARTITION}:s3:::{settings.artifact_bucket}"


def host_files_bucket_arn(settings: HostSettings) -> str:
    return f"arn:{PARTITION}:s3:::{settings.host_files_bucket}"


def rendered_policy(settings: HostSettings) -> dict[str, Any]:
    """The role policy the program renders for hosts with `settings`, as a document."""
    text = host_policy(identity_args(settings), bucket_arn=bucket_arn(settings),
                       host_files_bucket_arn=host_files_bucket_arn(settings), partition=PARTITION,
                       account_id=ACCOUNT_ID)
    document: dict[str, Any] = json.loads(text)
    return document


def without_action(action: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A change to a policy document: `action` taken out of every statement (a statement left with no
    action goes), as if the program had forgotten it."""
    def change(document: dict[str, Any]) -> dict[str, Any]:
        statements = []
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            kept = [name for name in actions if name != action]
            if kept:
                statements.append({**statement, "Action": kept})
        if statements == document["Statement"]:
            raise ValueError(f"the policy has no {action} to take out")
        return {**document, "Statement": statements}

    return change


def put_host_policy(iam: Any, policy: dict[str, Any]) -> None:
    """The role's inline policy, set or replaced (moto applies it from the next request on)."""
    iam.put_role_policy(RoleName=HOST_ROLE, PolicyName="host-policy", PolicyDocument=json.dumps(policy))


def create_host_role(iam: Any, sts: Any, admin_arn: str, policy: dict[str, Any]) -> RoleCredentials:
    """The role with `policy` inline, and a session of it (clients signed by the admin)."""
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=HOST_ROLE, AssumeRolePolicyDocument=json.dumps(trust),
                           MaxSessionDuration=SESSION_SECONDS,
                           Description="the MLflow host's instance role, as the program renders its policy")["Role"]
    put_host_policy(iam, policy)
    session = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="i-0123456789abcdef0",
                              DurationSeconds=SESSION_SECONDS)["Credentials"]
    return RoleCredentials(session["AccessKeyId"], session["SecretAccessKey"], session["SessionToken"],
                           session["Expiration"])
