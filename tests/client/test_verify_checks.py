"""The verify checks' judgement on answers moto cannot produce or that need finer cases than the full stack."""

from __future__ import annotations

import json
from typing import Any

import pytest

from client.verify import checks

BUCKET_ARN = "arn:aws:s3:::mlflow-aws-dev-artifacts-1a2b3c4d"


def policy(**statement: Any) -> str:
    base = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [{**base, **statement}]})


@pytest.mark.parametrize(
    "document",
    [
        policy(),
        policy(Principal={"AWS": "*"}),
        policy(Action=["s3:*"]),
        policy(Action="*"),
        policy(Resource=["arn:aws:s3:::mlflow-aws-dev-artifacts-*"]),
        policy(Condition={"BoolIfExists": {"aws:SecureTransport": ["false"]}}),
        policy(Condition={"Bool": {"aws:SecureTransport": False}}),
        policy(Condition={"Bool": {"aws:securetransport": "false"}}),  # condition keys ignore case
    ],
)
def test_tls_only_policy_variants_that_deny_plain_http_pass(document: str) -> None:
    assert checks.tls_only_policy(document, BUCKET_ARN).passed


@pytest.mark.parametrize(
    "document",
    [
        policy(Effect="Allow"),
        policy(Principal={"AWS": "arn:aws:iam::123456789012:root"}),
        policy(Action=["s3:GetObject"]),
        policy(Resource=[f"{BUCKET_ARN}/*"]),
        policy(Condition={"Bool": {"aws:SecureTransport": "true"}}),
        policy(Condition={}),
        "not json",
    ],
)
def test_tls_only_policy_variants_that_let_plain_http_through_fail(document: str) -> None:
    assert not checks.tls_only_policy(document, BUCKET_ARN).passed


def rule(protocol: str, low: int | None, high: int | None, cidr: str) -> dict[str, Any]:
    permission: dict[str, Any] = {"IpProtocol": protocol, "IpRanges": [], "Ipv6Ranges": []}
    if low is not None:
        permission.update(FromPort=low, ToPort=high)
    key, entry = ("Ipv6Ranges", "CidrIpv6") if ":" in cidr else ("IpRanges", "CidrIp")
    permission[key].append({entry: cidr})
    return permission


@pytest.mark.parametrize(
    ("permission", "closed"),
    [
        (rule("tcp", 443, 443, "0.0.0.0/0"), True),
        (rule("tcp", 80, 80, "::/0"), True),
        (rule("tcp", 22, 22, "198.51.100.0/24"), True),
        (rule("udp", 5432, 5432, "0.0.0.0/0"), True),
        (rule("tcp", 5432, 5432, "0.0.0.0/0"), False),
        (rule("tcp", 1, 1024, "0.0.0.0/0"), False),  # a range that includes 22
        (rule("6", 4000, 6000, "0.0.0.0/0"), False),  # protocol number, range includes 5000 and 5432
        (rule("-1", None, None, "::/0"), False),
    ],
)
def test_security_group_judgement(permission: dict[str, Any], closed: bool) -> None:
    assert checks.closed_to_world({"GroupId": "sg-1", "IpPermissions": [permission]}).passed is closed


def test_instance_with_metadata_endpoint_disabled_needs_no_imdsv2() -> None:
    assert checks.imds_v2_required({"MetadataOptions": {"HttpEndpoint": "disabled", "HttpTokens": "optional"}}).passed


def test_health_needs_status_200_and_body_ok() -> None:
    assert checks.health_ok(200, "OK", None).passed
    assert not checks.health_ok(200, "<html>login</html>", None).passed
    assert not checks.health_ok(None, "", "cannot reach https://x: refused").passed


SSH_FROM_LIST = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "PrefixListIds": [{"PrefixListId": "pl-1"}]}


def test_a_prefix_list_with_the_whole_internet_opens_the_port() -> None:
    group = {"GroupId": "sg-1", "IpPermissions": [SSH_FROM_LIST]}
    outcome = checks.closed_to_world(group, {"pl-1": ["10.0.0.0/8", "::/0"]})
    assert not outcome.passed and outcome.detail == "sg-1 opens 22 from ::/0 (prefix list pl-1)"
    assert checks.closed_to_world(group, {"pl-1": ["10.0.0.0/8"]}).passed


def test_a_prefix_list_that_cannot_be_read_fails_with_the_reason() -> None:
    group = {"GroupId": "sg-1", "IpPermissions": [SSH_FROM_LIST]}
    outcome = checks.closed_to_world(group, {"pl-1": "AccessDenied: not allowed"})
    assert not outcome.passed
    assert outcome.detail == ("sg-1 admits a guarded port from prefix list pl-1 (AccessDenied: not allowed), "
                              "whose entries are unknown")
    assert not checks.closed_to_world(group).passed, "a list never read is unknown, not empty"


def test_an_unreadable_prefix_list_on_an_unguarded_port_does_not_matter() -> None:
    https = {**SSH_FROM_LIST, "FromPort": 443, "ToPort": 443}
    assert checks.closed_to_world({"GroupId": "sg-1", "IpPermissions": [https]}, {"pl-1": "gone"}).passed
