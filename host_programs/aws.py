"""The AWS clients the host programs share: the instance role's credentials (botocore's default chain,
the instance metadata service on EC2), each call bounded in time and retried a little by botocore."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_ssm import SSMClient


def _client(service: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(service, region_name=region, config=Config(  # type: ignore[call-overload]
        connect_timeout=5, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}))


def ssm_client(region: str) -> SSMClient:
    client: SSMClient = _client("ssm", region)
    return client


def cloudwatch_client(region: str) -> CloudWatchClient:
    client: CloudWatchClient = _client("cloudwatch", region)
    return client


def ec2_client(region: str) -> EC2Client:
    client: EC2Client = _client("ec2", region)
    return client


def rds_client(region: str) -> RDSClient:
    client: RDSClient = _client("rds", region)
    return client


def client(service: str, region: str) -> Any:
    """Any other service's client (autoscaling, elbv2: the admin restart behind the load balancer)."""
    return _client(service, region)
