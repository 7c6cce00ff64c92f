"""HostFleet: `hosts` identical MLflow hosts in an Auto Scaling group, behind the LoadBalancer.

Each host boots from a launch template that carries the single host's user data rendered for "behind a
load balancer" (userdata: nginx on 80 for the load balancer only, no certbot), with the single host's
IMDSv2-only metadata, encrypted gp3 root volume and instance profile. The group spreads the hosts over
the public subnets (two AZs), keeps min = max = desired = hosts, replaces a host the load balancer finds
unhealthy, and rolls every launch template change (user data: a new MLflow release; instance type;
Ubuntu image) through an instance refresh that launches each new host before it terminates an old one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

import userdata
from components.host import ROOT_VOLUME_GB
from components.host_files import upload_host_files
from components.ubuntu_image import ROOT_DEVICE_NAME, ubuntu_ami_id
from instance_types import InstanceType
from userdata.settings import HostSettings

# A first boot installs MLflow (a few minutes) and may wait for RDS, created in parallel on the first
# `pulumi up` (design decision 2: up to ~20 minutes for Multi-AZ): the load balancer's verdict counts
# only after this long. Later failures are acted on at once.
FIRST_BOOT_GRACE_SECONDS = 1800
# `pulumi up` waits this long for the group's hosts to pass the load balancer's health check.
CAPACITY_TIMEOUT = "35m"
# An instance refresh counts a new host as ready this long after it is healthy: its first requests
# warm MLflow's imports.
INSTANCE_WARMUP_SECONDS = 60
# Full capacity throughout: a replacement is launched (up to 2x the hosts) and healthy before an old
# host is drained and terminated.
MIN_HEALTHY_PERCENTAGE = 100
MAX_HEALTHY_PERCENTAGE = 200


@dataclass
class HostFleetArgs:
    hosts: int
    instance_type: InstanceType
    subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Input[str]
    instance_profile_name: pulumi.Input[str]
    target_group_arn: pulumi.Input[str]
    settings: pulumi.Output[HostSettings]
    # The provider's default tags do not reach what the group launches: the template tags it.
    tags: dict[str, str]


class HostFleet(pulumi.ComponentResource):
    group_name: pulumi.Output[str]
    launch_template_id: pulumi.Output[str]
    user_data: pulumi.Output[str]

    def __init__(self, name: str, args: HostFleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:compute:HostFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOptions(parent=self)

        # The same bootstrap as the single host's: the hosts fetch their files from this object at first boot.
        host_files = upload_host_files(name, args.settings, self)
        template = aws.ec2.LaunchTemplate(
            f"{name}-launch-template",
            description="MLflow tracking host behind the load balancer",
            image_id=ubuntu_ami_id(args.instance_type.architecture, invoke),
            instance_type=args.instance_type.name,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(name=args.instance_profile_name),
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
            ),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=ROOT_DEVICE_NAME,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_type="gp3",
                    volume_size=ROOT_VOLUME_GB,
                    encrypted="true",
                    delete_on_termination="true",
                ),
            )],
            # No NAT gateway: each host reaches PyPI, SSM and S3 with a public address of its own, which
            # the hosts' security group keeps closed to everyone but the load balancer.
            network_interfaces=[aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                device_index=0,
                associate_public_ip_address="true",
                delete_on_termination="true",
                security_groups=[args.security_group_id],
            )],
            # The rendered document (the bootstrap, the host files' key and sha256), gzipped.
            user_data=args.settings.apply(userdata.ec2_user_data_base64),
            update_default_version=True,
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags={**args.tags, "Name": name})
                for kind in ("instance", "volume")
            ],
            # A version naming an object that does not exist yet would boot hosts that cannot get their files.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[host_files]),
        )
        group = aws.autoscaling.Group(
            f"{name}-hosts",
            min_size=args.hosts,
            max_size=args.hosts,
            desired_capacity=args.hosts,
            vpc_zone_identifiers=args.subnet_ids,
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            target_group_arns=[args.target_group_arn],
            health_check_type="ELB",
            health_check_grace_period=FIRST_BOOT_GRACE_SECONDS,
            wait_for_elb_capacity=args.hosts,
            wait_for_capacity_timeout=CAPACITY_TIMEOUT,
            # The same rule for every other replacement (a host found unhealthy, a rebalance across AZs):
            # the new host first, so the group never runs below `hosts`.
            instance_maintenance_policy=aws.autoscaling.GroupInstanceMaintenancePolicyArgs(
                min_healthy_percentage=MIN_HEALTHY_PERCENTAGE, max_healthy_percentage=MAX_HEALTHY_PERCENTAGE
            ),
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=MIN_HEALTHY_PERCENTAGE,
                    max_healthy_percentage=MAX_HEALTHY_PERCENTAGE,
                    instance_warmup=str(INSTANCE_WARMUP_SECONDS),
                    # A release whose hosts never become healthy is rolled back to the last template.
                    auto_rollback=True,
                ),
            ),
            tags=[aws.autoscaling.GroupTagArgs(key="Name", value=name, propagate_at_launch=True)],
            opts=child,
        )

        self.group_name = group.name
        self.launch_template_id = template.id
        self.user_data = args.settings.apply(userdata.render)
        self.register_outputs({"group_name": self.group_name, "launch_template_id": self.launch_template_id})
