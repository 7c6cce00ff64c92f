"""TrackingHost: the single Ubuntu 24.04 LTS EC2 host that runs nginx and the MLflow server.

Blue/green: the host is a HostLaunch (components/host_launch.py) from the stack's LaunchShape, so a change
that needs a new host launches it beside the old one, with a public address of its own for its first boot,
and `pulumi up` waits (bounded) for its health report. Only then is the Elastic IP associated with it:
the association takes the new host's instance id, and every argument of aws_eip_association forces a new
association (terraform-provider-aws internal/service/ec2/eip_association.go: no Update), so Pulumi creates
the new association first (AssociateAddress moves the address; `allow_reassociation`, which the pulumi-aws
docs give as defaulting to true, is set explicitly) and deletes the superseded one at the end of the update,
which is harmless: its id no longer exists, and the provider's delete ignores InvalidAssociationID.NotFound
(resourceEIPAssociationDelete). The old host is deleted last (Pulumi's create-before-delete). A host that
never reports fails the update and leaves the address where it was.

Two CloudWatch alarms heal the host: recover on a failed system status check, reboot on a failed instance
status check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.host_launch import HostLaunch
from components.launch_shape import LaunchShape

STATUS_CHECK_PERIOD_SECONDS = 60
SYSTEM_CHECK_EVALUATION_PERIODS = 2
INSTANCE_CHECK_EVALUATION_PERIODS = 3


@dataclass
class TrackingHostArgs:
    region: str
    shape: LaunchShape
    eip_allocation_id: pulumi.Input[str]
    database_identifier: str  # RDS's identifier: the health wait's clock starts once RDS has created it
    stack_tags: dict[str, str]  # Project and Stack: how a failed launch of this stack is found again
    ready_timeout_seconds: float
    profile: str = ""  # the deployer's aws:profile, for the launch and the wait
    # SNS topics (components/alerts.py) told when a recovery or reboot starts, and when the check passes again.
    notify: list[pulumi.Input[str]] = field(default_factory=list)


class TrackingHost(pulumi.ComponentResource):
    instance_id: pulumi.Output[str]
    association_id: pulumi.Output[str]

    def __init__(self, name: str, args: TrackingHostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:compute:TrackingHost", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)
        partition = aws.get_partition(opts=invoke).partition

        host = HostLaunch(
            f"{name}-host",
            region=args.region,
            profile=args.profile,
            launch_template_id=args.shape.launch_template_id,
            launch_template_version=args.shape.launch_template_version,
            allocation_id=args.eip_allocation_id,
            database_identifier=args.database_identifier,
            stack_tags={key: args.stack_tags[key] for key in ("Project", "Stack")},
            timeout_seconds=args.ready_timeout_seconds,
            opts=child,
        )
        association = aws.ec2.EipAssociation(
            f"{name}-eip-association",
            allocation_id=args.eip_allocation_id,
            instance_id=host.instance_id,
            allow_reassociation=True,
            opts=child,
        )

        # EC2's own actions: recover moves the instance to healthy hardware (same interface, address and volume).
        automate = f"arn:{partition}:automate:{args.region}:ec2"
        for action, metric, periods, why in (
            ("recover", "StatusCheckFailed_System", SYSTEM_CHECK_EVALUATION_PERIODS,
             "Recover the MLflow host when its system status check fails (hardware, network)"),
            ("reboot", "StatusCheckFailed_Instance", INSTANCE_CHECK_EVALUATION_PERIODS,
             "Reboot the MLflow host when its instance status check fails (kernel, memory)"),
        ):
            aws.cloudwatch.MetricAlarm(
                f"{name}-{action}",
                alarm_description=why,
                namespace="AWS/EC2",
                metric_name=metric,
                dimensions={"InstanceId": host.instance_id},
                statistic="Maximum",
                period=STATUS_CHECK_PERIOD_SECONDS,
                evaluation_periods=periods,
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                # A stopped instance reports no status checks, and must be neither recovered nor rebooted.
                treat_missing_data="missing",
                alarm_actions=[f"{automate}:{action}", *args.notify],
                ok_actions=args.notify or None,
                opts=child,
            )

        self.instance_id = host.instance_id
        self.association_id = association.id
        self.register_outputs({"instance_id": self.instance_id})
