"""HostLaunch: one MLflow host, launched from the stack's launch template, that exists for Pulumi only once
it has reported healthy.

The single host's blue/green step. A change that needs a new host (a release, an instance type, an image,
any user data) gives the launch template a new version, and Pulumi replaces this resource: it creates the
new one first (no delete_before_replace), and its create launches an instance beside the old one, then waits
(bounded: hostReadyTimeoutMinutes) for the host's own report, the HEALTH_TAG it writes on its instance once
/health answers 200 through its nginx with its certificate in place. Only then does the create return, the
Elastic IP's association (which takes this resource's instance id) moves to the new host, and at the end of
the update Pulumi deletes the old resource, which terminates the old host.

Why the wait is inside the create, and not in a separate "gate" resource after an aws.ec2.Instance: the
moment a replacement's create succeeds, Pulumi's engine marks the old resource pending deletion
(pkg/resource/deploy/step.go, CreateStep.Apply: `if s.replacing && s.pendingDelete { s.old.Delete = true }`),
and the next deployment deletes every pending deletion before anything else (deployment_executor.go,
retirePendingDeletes: "completing deletion from previous update"). With the wait in a later resource, a new
host that never reported would leave the old, serving host marked for deletion, and the next `pulumi up`
would terminate it first. A create that raises records nothing (the old host stays the stack's host, not
pending deletion), and the next `pulumi up` simply tries again.

A launch that fails keeps its instance running, tagged LAUNCH_TAG=failed, so its journal can be read; the
next create (or this resource's delete, on `pulumi destroy`) terminates it. The wait's clock starts once RDS
has the database (a first deploy creates both at once, and Multi-AZ creation alone can take 20 minutes): the
host does not wait for the database to boot (DESIGN decision 2), only to report healthy.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import boto3
import pulumi
from botocore.exceptions import ClientError
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

import naming

# A change of any of these needs a new host; anything else (the wait's bounds) is recorded in place.
LAUNCH_INPUTS = ("launch_template_id", "launch_template_version", "region")
# How often the deployer asks EC2 for the new host's report: the gap between the report and the Elastic IP's
# move is at most this (plus the association's own second or two).
POLL_SECONDS = 3.0
# A first deploy waits for RDS to create the database before the timeout's clock starts; at most this long.
DATABASE_CREATION_ALLOWANCE_SECONDS = 3600.0
TERMINATE_TIMEOUT_SECONDS = 900.0
STOPPED_STATES = ("shutting-down", "terminated", "stopping", "stopped")
LIVE_STATES = ("pending", "running", "stopping", "stopped")
JOURNAL_UNITS = ("mlflow", "nginx", "mlflow-certificate", "mlflow-health-report")


class HostNeverReported(RuntimeError):
    """The new host did not report healthy: `pulumi up` fails with this message, the old host serving."""


@dataclasses.dataclass(frozen=True)
class Healthy:
    report: str


@dataclasses.dataclass(frozen=True)
class Stopped:
    state: str
    reason: str


@dataclasses.dataclass(frozen=True)
class TimedOut:
    waited_seconds: float
    database_ready: bool


Outcome = Healthy | Stopped | TimedOut


@dataclasses.dataclass(frozen=True)
class Observation:
    state: str
    reason: str
    report: str  # the HEALTH_TAG's value, "" until the host writes it


def await_report(
    observe: Callable[[], Observation], database_ready: Callable[[], bool], *, timeout_seconds: float,
    poll_seconds: float, now: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Poll the host until it reports healthy, stops, or `timeout_seconds` pass after the database is ready
    (at most DATABASE_CREATION_ALLOWANCE_SECONDS more while RDS still creates it)."""
    started = now()
    clock_start: float | None = None
    while True:
        seen = observe()
        if seen.report.startswith(naming.HEALTHY):
            return Healthy(seen.report)
        if seen.state in STOPPED_STATES:
            return Stopped(seen.state, seen.reason)
        current = now()
        if clock_start is None and database_ready():
            clock_start = current
        if clock_start is not None and current - clock_start >= timeout_seconds:
            return TimedOut(current - clock_start, database_ready=True)
        if current - started >= timeout_seconds + DATABASE_CREATION_ALLOWANCE_SECONDS:
            return TimedOut(current - started, database_ready=clock_start is not None)
        sleep(poll_seconds)


def session(props: dict[str, Any]) -> boto3.session.Session:
    """The deployer's credentials, as the AWS provider finds them (the environment, or the stack's aws:profile)."""
    return boto3.session.Session(profile_name=props.get("profile") or None, region_name=str(props["region"]))


def observe_instance(ec2: Any, instance_id: str) -> Observation:
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as error:
        # A new instance can be unknown to DescribeInstances for a moment (EC2 is eventually consistent).
        if error.response.get("Error", {}).get("Code") == "InvalidInstanceID.NotFound":
            return Observation("pending", "", "")
        raise
    instance = reservations[0]["Instances"][0]
    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
    reason = str(instance.get("StateReason", {}).get("Message", "") or instance.get("StateTransitionReason", ""))
    return Observation(str(instance["State"]["Name"]), reason, tags.get(naming.HEALTH_TAG, ""))


def database_created(rds: Any, identifier: str) -> bool:
    """Whether RDS has finished creating the database (any state after "creating" counts)."""
    try:
        found = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "DBInstanceNotFound":
            return False
        raise
    return bool(found) and found[0].get("DBInstanceStatus") != "creating"


def address_holder(ec2: Any, allocation_id: str) -> str:
    """Who has the Elastic IP now, in words for the failure message."""
    if not allocation_id:
        return ""
    addresses = ec2.describe_addresses(AllocationIds=[allocation_id])["Addresses"]
    address = addresses[0] if addresses else {}
    ip = address.get("PublicIp", allocation_id)
    holder = address.get("InstanceId")
    if holder:
        return f"The Elastic IP {ip} did not move: the old host {holder} still serves."
    return f"The Elastic IP {ip} did not move; no host serves it yet (this is the stack's first host)."


def journal_commands(instance_id: str, region: str) -> str:
    units = " ".join(f"-u {unit}" for unit in JOURNAL_UNITS)
    return (
        f"aws ssm start-session --target {instance_id} --region {region}, then: sudo journalctl {units} "
        f"--no-pager; or without a shell: aws ssm send-command --region {region} --instance-ids {instance_id} "
        "--document-name AWS-RunShellScript --parameters "
        f"'commands=[\"journalctl {units} --no-pager -n 300\"]' --query Command.CommandId --output text, then "
        f"aws ssm get-command-invocation --region {region} --instance-id {instance_id} --command-id <that id>"
    )


def failure_message(outcome: Stopped | TimedOut, *, instance_id: str, region: str, timeout_seconds: float,
                    holder: str) -> str:
    if isinstance(outcome, Stopped):
        state = f"{outcome.state}: {outcome.reason}" if outcome.reason else outcome.state
        what = f"the new MLflow host {instance_id} stopped before it reported healthy (state {state})"
        why = ("Its console output may say why: aws ec2 get-console-output "
               f"--instance-id {instance_id} --region {region}")
    else:
        waited = (f"within {timeout_seconds / 60:.0f} minutes (hostReadyTimeoutMinutes)" if outcome.database_ready
                  else "while RDS was still creating the database")
        what = f"the new MLflow host {instance_id} did not report healthy {waited}"
        why = (f"It is kept running, tagged {naming.LAUNCH_TAG}={naming.FAILED_LAUNCH}, so you can read why: "
               + journal_commands(instance_id, region))
    return " ".join([
        f"{what}.", holder, f"{why}.",
        "Fix the cause (for example a release that does not install, or PyPI unreachable), then run pulumi up "
        "again: it terminates this host and launches a new one.",
    ])


def stack_filters(props: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{key}", "Values": [value]} for key, value in sorted(props["stack_tags"].items())]


def failed_launches(ec2: Any, props: dict[str, Any]) -> list[str]:
    """This stack's hosts whose launch failed, still there (kept for diagnosis)."""
    filters = [*stack_filters(props), {"Name": f"tag:{naming.LAUNCH_TAG}", "Values": [naming.FAILED_LAUNCH]},
               {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
    pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
    return [instance["InstanceId"] for page in pages for reservation in page["Reservations"]
            for instance in reservation["Instances"]]


def terminate(ec2: Any, instance_ids: list[str], *, wait: bool) -> None:
    if not instance_ids:
        return
    try:
        ec2.terminate_instances(InstanceIds=instance_ids)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
            raise
        return
    if wait:
        ec2.get_waiter("instance_terminated").wait(
            InstanceIds=instance_ids,
            WaiterConfig={"Delay": 5, "MaxAttempts": int(TERMINATE_TIMEOUT_SECONDS // 5)},
        )


def launch_outputs(props: dict[str, Any], instance: dict[str, Any], report: str) -> dict[str, Any]:
    launched: dict[str, Any] = {  # the ids and addresses EC2 gave the new host, and its report
        "instance_id": instance["InstanceId"],
        "private_ip": instance.get("PrivateIpAddress", ""),
        "availability_zone": instance.get("Placement", {}).get("AvailabilityZone", ""),
        "report": report,
    }
    return {**props, **launched}


class HostLaunchProvider(ResourceProvider):
    serialize_as_secret_always = False  # it captures no secret

    def create(self, props: dict[str, Any]) -> CreateResult:
        aws = session(props)
        ec2, rds = aws.client("ec2"), aws.client("rds")
        terminate(ec2, failed_launches(ec2, props), wait=False)
        instance = ec2.run_instances(
            LaunchTemplate={"LaunchTemplateId": str(props["launch_template_id"]),
                            "Version": str(props["launch_template_version"])},
            MinCount=1, MaxCount=1,
        )["Instances"][0]
        instance_id = str(instance["InstanceId"])
        pulumi.log.info(f"launched {instance_id}; waiting for it to report healthy")
        timeout = float(props["timeout_seconds"])
        outcome = await_report(
            lambda: observe_instance(ec2, instance_id),
            lambda: database_created(rds, str(props["database_identifier"])),
            timeout_seconds=timeout, poll_seconds=float(props["poll_seconds"]),
        )
        if not isinstance(outcome, Healthy):
            ec2.create_tags(Resources=[instance_id], Tags=[{"Key": naming.LAUNCH_TAG, "Value": naming.FAILED_LAUNCH}])
            raise HostNeverReported(failure_message(
                outcome, instance_id=instance_id, region=str(props["region"]), timeout_seconds=timeout,
                holder=address_holder(ec2, str(props.get("allocation_id") or "")),
            ))
        return CreateResult(instance_id, launch_outputs(props, dict(instance), outcome.report))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [key for key in LAUNCH_INPUTS if str(olds.get(key)) != str(news.get(key))]
        settled = ("timeout_seconds", "poll_seconds", "allocation_id", "database_identifier", "stack_tags", "profile")
        changes = bool(replaces) or any(olds.get(key) != news.get(key) for key in settled)
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        launched = ("instance_id", "private_ip", "availability_zone", "report")
        kept: dict[str, Any] = {key: olds[key] for key in launched if key in olds}
        return UpdateResult({**news, **kept})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        ec2 = session(props).client("ec2")
        terminate(ec2, list(dict.fromkeys([id_, *failed_launches(ec2, props)])), wait=True)


class HostLaunch(Resource, module="mlflow-aws", name="HostLaunch"):
    instance_id: pulumi.Output[str]
    private_ip: pulumi.Output[str]

    def __init__(
        self, name: str, *, region: str, launch_template_id: pulumi.Input[str],
        launch_template_version: pulumi.Input[str], allocation_id: pulumi.Input[str], database_identifier: str,
        stack_tags: dict[str, str], timeout_seconds: float, poll_seconds: float = POLL_SECONDS, profile: str = "",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "region": region, "profile": profile, "launch_template_id": launch_template_id,
            "launch_template_version": launch_template_version, "allocation_id": allocation_id,
            "database_identifier": database_identifier, "stack_tags": stack_tags,
            "timeout_seconds": timeout_seconds, "poll_seconds": poll_seconds,
            "instance_id": None, "private_ip": None, "availability_zone": None, "report": None,
        }
        super().__init__(HostLaunchProvider(), name, props, opts)
