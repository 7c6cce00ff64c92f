from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ssm import SSMClient


def _bounded() -> Config:
    from botocore.config import Config

    return Config(connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})


def ssm_client(region: str) -> SSMClient:
    import boto3

    return boto3.client("ssm", region_name=region, config=_bounded())


def cloudwatch_client(region: str) -> CloudWatchClient:
    import boto3

    return boto3.client("cloudwatch", region_name=region, config=_bounded())
