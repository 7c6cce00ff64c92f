"""RecordedImage: the Ubuntu 24.04 LTS image the stack's hosts boot, looked up once and kept in state.

Canonical publishes a new image every few weeks. Looked up on every `pulumi up` (a data source), a new
image would change the launch template and replace a running server on an unrelated update, or roll a
fleet. This dynamic resource asks EC2 (with the deployer's credentials) for the newest image only when it
is created, and keeps the answer in the stack's state. It is created again, and so looks again, when the
CPU architecture changes (the image is per architecture: an x86 image does not boot a Graviton type) or
when the stack's `imageRefresh` value changes: that is how a user asks for a newer image.
"""

from __future__ import annotations

from typing import Any

import boto3
import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from instance_types import Architecture

CANONICAL_OWNER_ID = "099720109477"
UBUNTU_IMAGE_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{architecture}-server-*"
# Ubuntu's images boot from this device (the image's root_device_name).
ROOT_DEVICE_NAME = "/dev/sda1"
# EC2's name for each architecture, as DescribeImages filters it.
EC2_ARCHITECTURE = {"amd64": "x86_64", "arm64": "arm64"}
# A change of any of these looks the image up again; nothing else does.
LOOKUP_INPUTS = ("architecture", "owner", "name_pattern", "region", "refresh")


class NoImageFound(RuntimeError):
    pass


def ubuntu_image_name(architecture: Architecture) -> str:
    return UBUNTU_IMAGE_NAME.format(architecture=architecture)


def newest_image(ec2: Any, *, owner: str, name_pattern: str, architecture: Architecture) -> dict[str, Any]:
    """The most recently created available image of `owner` whose name matches, for `architecture`."""
    images = ec2.describe_images(
        Owners=[owner],
        Filters=[
            {"Name": "name", "Values": [name_pattern]},
            {"Name": "architecture", "Values": [EC2_ARCHITECTURE[architecture]]},
            {"Name": "virtualization-type", "Values": ["hvm"]},
            {"Name": "state", "Values": ["available"]},
        ],
    )["Images"]
    if not images:
        raise NoImageFound(
            f"no {architecture} image named {name_pattern} from owner {owner} in this region; "
            "check the region offers Ubuntu 24.04 LTS images"
        )
    newest: dict[str, Any] = max(images, key=lambda image: (str(image.get("CreationDate", "")), image["ImageId"]))
    return newest


def session(props: dict[str, Any]) -> boto3.session.Session:
    """The deployer's credentials, as the AWS provider finds them (the environment, or the stack's aws:profile)."""
    return boto3.session.Session(profile_name=props.get("profile") or None, region_name=str(props["region"]))


class RecordedImageProvider(ResourceProvider):
    serialize_as_secret_always = False  # it captures no secret

    def create(self, props: dict[str, Any]) -> CreateResult:
        image = newest_image(
            session(props).client("ec2"), owner=str(props["owner"]), name_pattern=str(props["name_pattern"]),
            architecture=props["architecture"],
        )
        outs = {**props, "image_id": image["ImageId"], "image_name": image.get("Name", ""),
                "created": image.get("CreationDate", "")}
        return CreateResult(image["ImageId"], outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [key for key in LOOKUP_INPUTS if olds.get(key) != news.get(key)]
        # The credentials' profile only says who asks: a new one looks nothing up again.
        changes = bool(replaces) or olds.get("profile") != news.get("profile")
        return DiffResult(changes=changes, replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult({**olds, "profile": news.get("profile", "")})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """A record: deleting it deletes nothing in AWS."""


class RecordedImage(Resource, module="mlflow-aws", name="RecordedImage"):
    image_id: pulumi.Output[str]
    image_name: pulumi.Output[str]

    def __init__(
        self, name: str, *, architecture: Architecture, region: str, refresh: str, profile: str = "",
        owner: str = CANONICAL_OWNER_ID, opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "architecture": architecture, "owner": owner, "name_pattern": ubuntu_image_name(architecture),
            "region": region, "refresh": refresh, "profile": profile, "image_id": None, "image_name": None,
        }
        super().__init__(RecordedImageProvider(), name, props, opts)
