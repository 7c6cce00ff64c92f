"""The AWS clients the host programs share: the instance role's credentials (botocore's default chain,
the instance metadata service on EC2), each call bounded in time and retried a little by botocore."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


def ssm_client(region: str) -> SSMClient:
    import boto3
    from botocore.config import Config

    return boto3.client("ssm", region_name=region, config=Config(
        connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}))
