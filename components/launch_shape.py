"""LaunchShape: what every MLflow host of a stack is launched as, in either shape, written once.

One launch template: the recorded Ubuntu 24.04 image for the instance type's CPU architecture
(components/recorded_image.py), the instance type, the instance profile, IMDSv2 only, an encrypted gp3 root
volume, the user data, and one network interface with a public address of its own (egress for apt, PyPI,
SSM and S3 while the host boots; the single host's Elastic IP replaces it once the host serves, and a
fleet's hosts keep theirs, closed by their security group to all but the load balancer). Instances and
volumes carry the stack's tags (the provider's default tags do not reach what EC2 launches from a
template), the Name, and naming.HOST_TAG, which the admin-restart association targets in both shapes.

The single host (components/host.py) launches from it through HostLaunch; the fleet's Auto Scaling group
(components/fleet.py) through its instance refresh. Both take the template's latest version, so any change
to the shape is a new version and a new host, launched before the old one goes.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

import naming
from components.host_files import upload_host_files
from components.ordering import ready_after
from components.recorded_image import ROOT_DEVICE_NAME, RecordedImage
from instance_types import InstanceType
from userdata import ec2_user_data_base64
from userdata.settings import HostSettings

COMPONENT_TYPE = "mlflow-aws:compute:LaunchShape"
# Ubuntu, the MLflow venv (~1.5 GB) and the server's temporary directory, where MLflow spools every
# artifact passing through it (an upload whole before it goes to S3, a download whole before it is
# sent): ~25 GB free for artifacts in flight.
ROOT_VOLUME_GB = 30
# The fleet's template lived under HostFleet before the two shapes shared it: an existing fleet keeps it.
FORMER_FLEET_PARENT = "mlflow-aws:compute:HostFleet"


@dataclass
class LaunchShapeArgs:
    instance_type: InstanceType
    region: str
    instance_profile_name: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    # The user data's (a bootstrap) and the host's files' (one S3 object it fetches: DESIGN decision 16).
    settings: pulumi.Output[HostSettings]
    tags: dict[str, str]  # the stack's: Project, Stack, ManagedBy
    subnet_id: pulumi.Input[str] | None = None  # the single host's; a fleet's group picks its subnets itself
    ssh_key_name: str = ""
    image_refresh: str = ""  # config imageRefresh: a new value looks the image up again
    profile: str = ""  # the deployer's aws:profile, for the image lookup


def host_tags(name: str, stack_tags: dict[str, str]) -> dict[str, str]:
    return {**stack_tags, "Name": name, naming.HOST_TAG: name}


class LaunchShape(pulumi.ComponentResource):
    image_id: pulumi.Output[str]
    launch_template_id: pulumi.Output[str]
    launch_template_version: pulumi.Output[str]

    def __init__(self, name: str, args: LaunchShapeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)

        # The object the bootstrap fetches, named by its sha256 (kept after a change, for a rollback).
        host_files = upload_host_files(name, args.settings, self)
        image = RecordedImage(
            f"{name}-image", architecture=args.instance_type.architecture, region=args.region,
            refresh=args.image_refresh, profile=args.profile, opts=pulumi.ResourceOptions(parent=self),
        )
        template_name = f"{name}-launch-template"
        former_urn = (f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{FORMER_FLEET_PARENT}"
                      f"$aws:ec2/launchTemplate:LaunchTemplate::{template_name}")
        template = aws.ec2.LaunchTemplate(
            template_name,
            description="MLflow tracking host",
            image_id=image.image_id,
            instance_type=args.instance_type.name,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(name=args.instance_profile_name),
            key_name=args.ssh_key_name or None,
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
            # No NAT gateway: the host reaches PyPI, SSM and S3 with a public address of its own. Associating
            # the Elastic IP with the single host releases this address (EC2 gives the instance's primary
            # interface one public address at a time), so it costs nothing once the host serves.
            network_interfaces=[aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                device_index=0,
                subnet_id=args.subnet_id,
                associate_public_ip_address="true",
                delete_on_termination="true",
                security_groups=[args.security_group_id],
            )],
            # The rendered document (the bootstrap, the host files' key and sha256), gzipped; a version naming
            # an object that does not exist yet would boot hosts that cannot get their files.
            user_data=ready_after(args.settings.apply(ec2_user_data_base64), host_files),
            update_default_version=True,
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=host_tags(name, args.tags))
                for kind in ("instance", "volume")
            ],
            opts=pulumi.ResourceOptions(parent=self, aliases=[former_urn]),
        )

        self.image_id = image.image_id
        self.launch_template_id = template.id
        self.launch_template_version = template.latest_version.apply(str)
        self.register_outputs({"image_id": self.image_id, "launch_template_id": self.launch_template_id})
