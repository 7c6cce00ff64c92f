from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


def ssm_client(region: str) -> SSMClient:
    import boto3
    from botocore.config import Config

    return boto3.client("ssm", region_name=region, config=Config(
        connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}))
