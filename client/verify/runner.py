"""`mlflow-aws verify`: run every check over the collected facts and print them as a table."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

from naming import Outputs

from .. import outputs
from . import checks
from .facts import CredentialsMissing, Facts, Names, Unreadable, collect

T = TypeVar("T")

REQUIRED_OUTPUTS = (
    Outputs.ARTIFACT_BUCKET,
    Outputs.DB_INSTANCE_ID,
    Outputs.INSTANCE_ID,
    Outputs.WEB_SECURITY_GROUP_ID,
    Outputs.DB_SECURITY_GROUP_ID,
    Outputs.PUBLIC_IP,
    Outputs.TRACKING_URI,
    Outputs.REGION,
)


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Facts], checks.Outcome]


@dataclass(frozen=True)
class Result:
    name: str
    outcome: checks.Outcome


def _readable(value: T | Unreadable, check: Callable[[T], checks.Outcome]) -> checks.Outcome:
    if isinstance(value, Unreadable):
        return checks.failed(f"cannot read: {value.reason}")
    return check(value)


def _bucket_arn(facts: Facts) -> str:
    region = facts.names.region
    partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    return f"arn:{partition}:s3:::{facts.names.bucket}"


CHECKS: tuple[Check, ...] = (
    Check("bucket: public access blocked", lambda f: _readable(f.public_access_block, checks.public_access_blocked)),
    Check("bucket: versioning", lambda f: _readable(f.versioning, checks.versioning_enabled)),
    Check("bucket: default encryption", lambda f: _readable(f.encryption, checks.encrypted_by_default)),
    Check(
        "bucket: TLS-only policy",
        lambda f: _readable(f.policy, lambda policy: checks.tls_only_policy(policy, _bucket_arn(f))),
    ),
    Check("database: not public", lambda f: _readable(f.db, checks.db_not_public)),
    Check("database: encrypted", lambda f: _readable(f.db, checks.db_encrypted)),
    Check("database: backups", lambda f: _readable(f.db, checks.db_backups)),
    Check("host security groups: no 22/5000/5432 from world",
          lambda f: _readable(f.host_security_groups, lambda g: checks.all_closed_to_world(g, f.prefix_lists))),
    Check("db security groups: no 22/5000/5432 from world",
          lambda f: _readable(f.db_security_groups, lambda g: checks.all_closed_to_world(g, f.prefix_lists))),
    Check("instance: IMDSv2 required", lambda f: _readable(f.instance, checks.imds_v2_required)),
    Check("instance: instance profile", lambda f: _readable(f.instance, checks.has_instance_profile)),
    Check(
        "instance: Elastic IP attached",
        lambda f: _readable(
            f.addresses,
            lambda addresses: checks.elastic_ip_attached(addresses, f.names.public_ip, f.names.instance_id),
        ),
    ),
    Check(
        "server: /health over the tracking URI",
        lambda f: checks.health_ok(f.health.status, f.health.body, f.health.error),
    ),
    Check(
        "server: TLS certificate",
        lambda f: _readable(f.certificate, lambda served: checks.served_certificate(
            served.der if served else None, served.verify_error if served else None, f.names.tracking_uri,
            datetime.datetime.now(datetime.timezone.utc),
        )),
    ),
)


def run_checks(facts: Facts) -> list[Result]:
    return [Result(check.name, check.run(facts)) for check in CHECKS]


def print_table(results: list[Result], stream: TextIO) -> None:
    width = max(len(result.name) for result in results)
    print(f"{'CHECK':<{width}}  RESULT  DETAIL", file=stream)
    for result in results:
        verdict = "pass" if result.outcome.passed else "FAIL"
        print(f"{result.name:<{width}}  {verdict:<6}  {result.outcome.detail}", file=stream)
    failures = sum(not result.outcome.passed for result in results)
    print(f"{len(results)} checks: {len(results) - failures} passed, {failures} failed", file=stream)


def names_from(stack_outputs: Mapping[str, Any], region: str | None) -> Names:
    if Outputs.AUTOSCALING_GROUP_NAME in stack_outputs and Outputs.INSTANCE_ID not in stack_outputs:
        raise outputs.OutputsError(
            "this stack is a fleet (hosts >= 2, Auto Scaling group "
            f"{stack_outputs[Outputs.AUTOSCALING_GROUP_NAME]}); verify checks a single host and does not "
            "check a fleet yet"
        )
    values = outputs.require(stack_outputs, REQUIRED_OUTPUTS)
    return Names(
        region=region or values[Outputs.REGION],
        bucket=values[Outputs.ARTIFACT_BUCKET],
        db_instance_id=values[Outputs.DB_INSTANCE_ID],
        instance_id=values[Outputs.INSTANCE_ID],
        web_security_group_id=values[Outputs.WEB_SECURITY_GROUP_ID],
        db_security_group_id=values[Outputs.DB_SECURITY_GROUP_ID],
        public_ip=values[Outputs.PUBLIC_IP],
        tracking_uri=values[Outputs.TRACKING_URI],
    )


def main(stack_outputs: Mapping[str, Any], region: str | None) -> int:
    try:
        names = names_from(stack_outputs, region)
    except outputs.OutputsError as error:
        print(f"mlflow-aws: error: {error}", file=sys.stderr)
        return 2
    try:
        facts = collect(names)
    except CredentialsMissing:
        print(
            "mlflow-aws: error: no AWS credentials found; verify reads the account with boto3: "
            "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            file=sys.stderr,
        )
        return 2
    results = run_checks(facts)
    print_table(results, sys.stdout)
    return 0 if all(result.outcome.passed for result in results) else 1
