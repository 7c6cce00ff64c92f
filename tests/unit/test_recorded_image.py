"""The recorded image's provider against moto: one lookup at create, a new one only when asked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami

from components.recorded_image import CANONICAL_OWNER_ID, NoImageFound, RecordedImageProvider, ubuntu_image_name

REGION = "eu-west-1"


@pytest.fixture
def catalogue(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Canonical's images in moto: two releases per architecture, and one of another series."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
        images = {
            "amd64-old": ("ubuntu-noble-24.04-amd64-server-20261001", "x86_64", datetime(2026, 10, 1)),
            "amd64-new": ("ubuntu-noble-24.04-amd64-server-20261120", "x86_64", datetime(2026, 11, 20)),
            "arm64-new": ("ubuntu-noble-24.04-arm64-server-20261120", "arm64", datetime(2026, 11, 20)),
            "jammy": ("ubuntu-jammy-22.04-amd64-server-20261201", "x86_64", datetime(2026, 12, 1)),
        }
        ids = {}
        for key, (name, architecture, created) in images.items():
            image_id = f"ami-{abs(hash(key)) % 16**12:012x}"
            backend.amis[image_id] = Ami(
                backend, image_id, name=f"ubuntu/images/hvm-ssd-gp3/{name}", owner_id=CANONICAL_OWNER_ID,
                architecture=architecture, virtualization_type="hvm",
                creation_date=created.replace(tzinfo=timezone.utc),
            )
            ids[key] = image_id
        yield ids


def props(architecture: str = "amd64", refresh: str = "") -> dict[str, str]:
    return {"architecture": architecture, "owner": CANONICAL_OWNER_ID, "name_pattern": ubuntu_image_name(architecture),  # type: ignore[arg-type]
            "region": REGION, "refresh": refresh, "profile": ""}


def test_create_records_the_newest_noble_image_of_the_architecture(catalogue: dict[str, str]) -> None:
    assert RecordedImageProvider().create(props("amd64")).id == catalogue["amd64-new"]
    assert RecordedImageProvider().create(props("arm64")).id == catalogue["arm64-new"]


def test_a_newer_image_published_later_changes_nothing_on_the_next_up(catalogue: dict[str, str]) -> None:
    recorded = RecordedImageProvider().create(props())
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
    backend.amis["ami-0fresh"] = Ami(
        backend, "ami-0fresh", name="ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261215",
        owner_id=CANONICAL_OWNER_ID, architecture="x86_64", virtualization_type="hvm",
        creation_date=datetime(2026, 12, 15, tzinfo=timezone.utc),
    )
    diff = RecordedImageProvider().diff(recorded.id, recorded.outs or {}, props())
    assert not diff.changes and diff.replaces == []


def test_another_architecture_looks_again(catalogue: dict[str, str]) -> None:
    recorded = RecordedImageProvider().create(props("amd64"))
    diff = RecordedImageProvider().diff(recorded.id, recorded.outs or {}, props("arm64"))
    assert diff.replaces == ["architecture", "name_pattern"] and diff.delete_before_replace is False


def test_a_new_image_refresh_value_looks_again_and_finds_the_newest(catalogue: dict[str, str]) -> None:
    recorded = RecordedImageProvider().create(props())
    diff = RecordedImageProvider().diff(recorded.id, recorded.outs or {}, props(refresh="2027-01-15"))
    assert diff.replaces == ["refresh"]


def test_another_deployer_profile_is_recorded_without_a_lookup(catalogue: dict[str, str]) -> None:
    recorded = RecordedImageProvider().create(props())
    diff = RecordedImageProvider().diff(recorded.id, recorded.outs or {}, {**props(), "profile": "ops"})
    assert diff.changes and diff.replaces == []


def test_a_region_without_the_image_is_named_in_the_error(catalogue: dict[str, str]) -> None:
    with pytest.raises(NoImageFound, match=r"no arm64 image named .*noble.* from owner 099720109477"):
        RecordedImageProvider().create({**props("arm64"), "name_pattern": "ubuntu/images/*noble-99*"})


def test_the_lookup_asks_ec2_with_the_deployers_region(catalogue: dict[str, str]) -> None:
    other = boto3.client("ec2", region_name="us-east-1")
    assert not other.describe_images(Owners=[CANONICAL_OWNER_ID], Filters=[
        {"Name": "name", "Values": [ubuntu_image_name("amd64")]}])["Images"]
    assert RecordedImageProvider().create(props()).outs["region"] == REGION  # type: ignore[index]
