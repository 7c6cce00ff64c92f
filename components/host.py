"""TrackingHost: the Ubuntu 24.04 LTS EC2 instance that runs nginx and the MLflow server.

The Elastic IP is attached to the host's network interface before the instance exists, so the
first packet the host sends at boot already leaves from its public address (apt, PyPI, ACME all
work from the start) and the hostname in the user data is final. IMDSv2 only, encrypted gp3 root
volume, user data from `userdata.render` (a bootstrap that fetches the host's files, uploaded first:
components/host_files.py), and two CloudWatch alarms that heal the host: recover
on a failed system status check, reboot on a failed instance status check.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

import userdata
from components.host_files import upload_host_files
from instance_types import InstanceType
from userdata.settings import HostSettings

CANONICAL_OWNER_ID = "099720109477"
UBUNTU_AMI_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{architecture}-server-*"
# Ubuntu, the MLflow venv (~1.5 GB) and the server's temporary directory, where MLflow spools every
# artifact passing through it (an upload whole before it goes to S3, a download whole before it is
# sent): ~25 GB free for artifacts in flight.
ROOT_VOLUME_GB = 30
STATUS_CHECK_PERIOD_SECONDS = 60
SYSTEM_CHECK_EVALUATION_PERIODS = 2
INSTANCE_CHECK_EVALUATION_PERIODS = 3


@dataclass
class TrackingHostArgs:
    instance_type: InstanceType
    region: str
    subnet_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    instance_profile_name: pulumi.Input[str]
    eip_allocation_id: pulumi.Input[str]
    settings: pulumi.Output[HostSettings]
    ssh_key_name: str = ""


def ubuntu_ami_filter(architecture: str) -> str:
    return UBUNTU_AMI_NAME.format(architecture=architecture)


class TrackingHost(pulumi.ComponentResource):
    instance_id: pulumi.Output[str]
    user_data: pulumi.Output[str]

    def __init__(self, name: str, args: TrackingHostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:compute:TrackingHost", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)

        architecture = args.instance_type.architecture
        ami = aws.ec2.get_ami(
            most_recent=True,
            owners=[CANONICAL_OWNER_ID],
            filters=[
                aws.ec2.GetAmiFilterArgs(name="name", values=[ubuntu_ami_filter(architecture)]),
                aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
                aws.ec2.GetAmiFilterArgs(
                    name="architecture", values=["arm64" if architecture == "arm64" else "x86_64"]
                ),
            ],
            opts=invoke,
        )
        partition = aws.get_partition(opts=invoke).partition

        interface = aws.ec2.NetworkInterface(
            f"{name}-eni",
            subnet_id=args.subnet_id,
            security_groups=[args.security_group_id],
            description="MLflow host: carries the Elastic IP",
            opts=child,
        )
        association = aws.ec2.EipAssociation(
            f"{name}-eip-association",
            allocation_id=args.eip_allocation_id,
            network_interface_id=interface.id,
            opts=child,
        )
        user_data = args.settings.apply(userdata.render)
        host_files = upload_host_files(name, args.settings, self)
        instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=ami.id,
            instance_type=args.instance_type.name,
            iam_instance_profile=args.instance_profile_name,
            primary_network_interface=aws.ec2.InstancePrimaryNetworkInterfaceArgs(
                network_interface_id=interface.id
            ),
            key_name=args.ssh_key_name or None,
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
            ),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                volume_type="gp3",
                volume_size=ROOT_VOLUME_GB,
                encrypted=True,
                delete_on_termination=True,
            ),
            # The rendered document (the bootstrap, the host files' key and sha256), gzipped.
            user_data_base64=args.settings.apply(userdata.ec2_user_data_base64),
            user_data_replace_on_change=True,
            tags={"Name": f"{name}"},
            opts=pulumi.ResourceOptions(
                parent=self,
                # The bootstrap fetches the host's files at first boot: they are in S3 before it starts.
                depends_on=[association, host_files],
                # A newer Ubuntu image must not replace a running server on every `pulumi up`.
                ignore_changes=["ami"],
                # ...but the image is per CPU architecture: moving between Intel/AMD and Graviton
                # (t3.small -> t4g.small) needs a new host; in place, EC2 would stop it and fail to resize.
                replacement_trigger=architecture,
                # The network interface can belong to one instance at a time.
                delete_before_replace=True,
            ),
        )

        # EC2's own actions: recover moves the instance to healthy hardware (same ENI, EIP and volume).
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
                dimensions={"InstanceId": instance.id},
                statistic="Maximum",
                period=STATUS_CHECK_PERIOD_SECONDS,
                evaluation_periods=periods,
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                alarm_actions=[f"{automate}:{action}"],
                opts=child,
            )

        self.instance_id = instance.id
        self.user_data = user_data
        self.register_outputs({"instance_id": self.instance_id})
