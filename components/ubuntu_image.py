"""The Ubuntu 24.04 LTS image for a CPU architecture, as TrackingHost looks it up (its filter, its owner)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.host import CANONICAL_OWNER_ID, ubuntu_ami_filter

# Ubuntu's images boot from this device (the image's root_device_name).
ROOT_DEVICE_NAME = "/dev/sda1"


def ubuntu_ami_id(architecture: str, invoke: pulumi.InvokeOptions) -> str:
    return aws.ec2.get_ami(
        most_recent=True,
        owners=[CANONICAL_OWNER_ID],
        filters=[
            aws.ec2.GetAmiFilterArgs(name="name", values=[ubuntu_ami_filter(architecture)]),
            aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
            aws.ec2.GetAmiFilterArgs(name="architecture", values=["arm64" if architecture == "arm64" else "x86_64"]),
        ],
        opts=invoke,
    ).id
