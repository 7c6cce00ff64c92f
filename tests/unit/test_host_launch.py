"""The single host's launch and health gate (components/host_launch.py), its provider against moto.

moto plays the account: a launch template, the database in RDS, the Elastic IP on the old host. A thread
plays the new host, tagging its own instance healthy the way the host's report does, or staying silent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami

import naming
from components import host_launch
from components.host_launch import (
    Healthy,
    HostLaunchProvider,
    HostNeverReported,
    Observation,
    Stopped,
    TimedOut,
    await_report,
)

REGION = "eu-west-1"
STACK_TAGS = {"Project": "mlflow-aws", "Stack": "dev"}
DATABASE = "mlflow-aws-dev"
IMAGE = "ami-0noble0amd64"
FAST_POLL = 0.1


@dataclass
class Account:
    ec2: Any
    launch_template_id: str
    allocation_id: str
    public_ip: str
    old_host: str

    def props(self, **overrides: Any) -> dict[str, Any]:
        return {
            "region": REGION, "profile": "", "launch_template_id": self.launch_template_id,
            "launch_template_version": "1", "allocation_id": self.allocation_id, "database_identifier": DATABASE,
            "stack_tags": STACK_TAGS, "timeout_seconds": 60.0, "poll_seconds": FAST_POLL, **overrides,
        }

    def instances(self, *states: str) -> dict[str, dict[str, str]]:
        """instance id -> its tags, for this stack's instances in `states` (default: any)."""
        filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in STACK_TAGS.items()]
        if states:
            filters.append({"Name": "instance-state-name", "Values": list(states)})
        reservations = self.ec2.describe_instances(Filters=filters)["Reservations"]
        return {i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
                for r in reservations for i in r["Instances"]}

    def address_holder(self) -> str | None:
        (address,) = self.ec2.describe_addresses(AllocationIds=[self.allocation_id])["Addresses"]
        holder: str | None = address.get("InstanceId")
        return holder


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
        backend.amis[IMAGE] = Ami(backend, IMAGE, name="ubuntu-noble-24.04-amd64-server-20261120",
                                  architecture="x86_64", creation_date=datetime(2026, 11, 20, tzinfo=timezone.utc))
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.0.0/18")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="dev-web", Description="hosts", VpcId=vpc)["GroupId"]
        host_tags: list[Any] = [{"Key": key, "Value": value}
                                for key, value in {**STACK_TAGS, naming.HOST_TAG: "dev"}.items()]
        template = ec2.create_launch_template(LaunchTemplateName="dev-launch-template", LaunchTemplateData={
            "ImageId": IMAGE, "InstanceType": "t3.small",
            "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [group],
                                   "AssociatePublicIpAddress": True, "DeleteOnTermination": True}],
            "TagSpecifications": [{"ResourceType": "instance", "Tags": host_tags}],
        })["LaunchTemplate"]["LaunchTemplateId"]
        old = ec2.run_instances(LaunchTemplate={"LaunchTemplateId": template, "Version": "1"}, MinCount=1,
                                MaxCount=1)["Instances"][0]["InstanceId"]
        address = ec2.allocate_address(Domain="vpc")
        ec2.associate_address(AllocationId=address["AllocationId"], InstanceId=old)
        boto3.client("rds", region_name=REGION).create_db_instance(
            DBInstanceIdentifier=DATABASE, DBInstanceClass="db.t4g.micro", Engine="postgres",
            MasterUsername="mlflow", MasterUserPassword="not-a-real-password-1", AllocatedStorage=20,
        )
        yield Account(ec2, template, address["AllocationId"], address["PublicIp"], old)


def new_host(account: Account, act: Callable[[str], None], *, known: set[str]) -> threading.Thread:
    """A thread that waits for the launch's instance to exist, then `act`s on it, as the new host would."""
    def run() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            launched = set(account.instances("pending", "running")) - known
            if launched:
                act(launched.pop())
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def report_healthy(account: Account) -> Callable[[str], None]:
    def act(instance_id: str) -> None:
        time.sleep(0.3)  # the host boots for a while before it reports
        account.ec2.create_tags(Resources=[instance_id], Tags=[
            {"Key": naming.HEALTH_TAG, "Value": "healthy mlflow 3.17.2 https"}])
    return act


def test_create_launches_from_the_template_and_returns_once_the_host_reports_healthy(account: Account) -> None:
    before = set(account.instances())
    host = new_host(account, report_healthy(account), known=before)
    created = HostLaunchProvider().create(account.props())
    host.join(timeout=30)
    assert created.id not in before and created.outs is not None
    assert created.outs["instance_id"] == created.id and created.outs["report"] == "healthy mlflow 3.17.2 https"
    assert account.instances("running")[created.id][naming.HOST_TAG] == "dev", "launched from the template"
    # The provider moves nothing: the Elastic IP follows through the association, after this create returns.
    assert account.address_holder() == account.old_host


def test_a_host_that_never_reports_fails_the_update_and_leaves_the_address_on_the_old_host(account: Account) -> None:
    before = set(account.instances())
    with pytest.raises(HostNeverReported) as failure:
        HostLaunchProvider().create(account.props(timeout_seconds=1.0))
    (new,) = set(account.instances()) - before
    message = str(failure.value)
    assert f"the new MLflow host {new} did not report healthy within 0 minutes (hostReadyTimeoutMinutes)" in message
    assert f"The Elastic IP {account.public_ip} did not move: the old host {account.old_host} still serves." in message
    assert f"aws ssm start-session --target {new} --region {REGION}" in message
    assert "journalctl -u mlflow -u nginx -u mlflow-certificate -u mlflow-health-report" in message
    assert f"aws ssm send-command --region {REGION} --instance-ids {new}" in message
    assert "run pulumi up again: it terminates this host and launches a new one" in message
    assert account.address_holder() == account.old_host
    # Kept for its journal, and marked so that the next launch (or destroy) cleans it up.
    assert account.instances("running")[new][naming.LAUNCH_TAG] == naming.FAILED_LAUNCH


def test_the_next_up_terminates_the_failed_host_and_launches_another(account: Account) -> None:
    before = set(account.instances())
    with pytest.raises(HostNeverReported):
        HostLaunchProvider().create(account.props(timeout_seconds=0.5))
    (failed,) = set(account.instances()) - before
    host = new_host(account, report_healthy(account), known=before | {failed})
    retried = HostLaunchProvider().create(account.props())
    host.join(timeout=30)
    assert retried.id != failed
    assert failed not in account.instances("pending", "running")
    assert set(account.instances("running")) == {account.old_host, retried.id}


def test_the_first_hosts_failure_says_no_host_serves_yet(account: Account) -> None:
    account.ec2.disassociate_address(AssociationId=account.ec2.describe_addresses(
        AllocationIds=[account.allocation_id])["Addresses"][0]["AssociationId"])
    with pytest.raises(HostNeverReported, match="did not move; no host serves it yet"):
        HostLaunchProvider().create(account.props(timeout_seconds=0.5))


def test_a_new_host_that_goes_away_fails_at_once_with_its_state(account: Account) -> None:
    before = set(account.instances())
    host = new_host(account, lambda instance: account.ec2.terminate_instances(InstanceIds=[instance]), known=before)
    started = time.monotonic()
    stopped = r"stopped before it reported healthy \(state (shutting-down|terminated)"
    with pytest.raises(HostNeverReported, match=stopped):
        HostLaunchProvider().create(account.props(timeout_seconds=600.0))
    host.join(timeout=30)
    assert time.monotonic() - started < 60, "a stopped host is not waited for until the timeout"


def test_delete_terminates_the_host_and_every_failed_launch_of_the_stack(account: Account) -> None:
    before = set(account.instances())
    with pytest.raises(HostNeverReported):
        HostLaunchProvider().create(account.props(timeout_seconds=0.5))
    HostLaunchProvider().delete(account.old_host, account.props())
    assert account.instances("pending", "running", "stopped") == {}
    assert set(account.instances("terminated")) >= before


def test_only_a_new_launch_template_version_replaces_the_host() -> None:
    provider = HostLaunchProvider()
    olds = {"launch_template_id": "lt-1", "launch_template_version": "3", "region": REGION, "timeout_seconds": 1200.0,
            "poll_seconds": 3.0, "instance_id": "i-1"}
    assert provider.diff("i-1", olds, {**olds, "launch_template_version": "4"}).replaces == ["launch_template_version"]
    longer = provider.diff("i-1", olds, {**olds, "timeout_seconds": 2700.0})
    assert longer.changes and longer.replaces == []
    same = provider.diff("i-1", olds, dict(olds))
    assert not same.changes and same.replaces == []
    assert provider.update("i-1", olds, {**olds, "timeout_seconds": 2700.0}).outs["instance_id"] == "i-1"  # type: ignore[index]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_timeout_counts_from_when_rds_has_created_the_database() -> None:
    clock = FakeClock()
    database_ready_at = 900.0
    outcome = await_report(
        lambda: Observation("running", "", ""), lambda: clock.now >= database_ready_at,
        timeout_seconds=1200.0, poll_seconds=10.0, now=lambda: clock.now, sleep=clock.sleep,
    )
    assert isinstance(outcome, TimedOut) and outcome.database_ready
    assert clock.now == pytest.approx(database_ready_at + 1200.0)


def test_a_database_never_created_still_ends_the_wait() -> None:
    clock = FakeClock()
    outcome = await_report(
        lambda: Observation("running", "", ""), lambda: False, timeout_seconds=1200.0, poll_seconds=10.0,
        now=lambda: clock.now, sleep=clock.sleep,
    )
    assert isinstance(outcome, TimedOut) and not outcome.database_ready
    assert clock.now == pytest.approx(1200.0 + host_launch.DATABASE_CREATION_ALLOWANCE_SECONDS)


def test_the_report_ends_the_wait_at_the_next_poll() -> None:
    clock = FakeClock()
    outcome = await_report(
        lambda: Observation("running", "", "healthy" if clock.now >= 95 else ""), lambda: True,
        timeout_seconds=1200.0, poll_seconds=3.0, now=lambda: clock.now, sleep=clock.sleep,
    )
    assert outcome == Healthy("healthy") and 95 <= clock.now < 98


def test_a_stopped_host_ends_the_wait_with_its_state() -> None:
    outcome = await_report(lambda: Observation("terminated", "Server.SpotInstanceTermination", ""), lambda: True,
                           timeout_seconds=1200.0, poll_seconds=3.0, sleep=lambda _: None)
    assert outcome == Stopped("terminated", "Server.SpotInstanceTermination")
