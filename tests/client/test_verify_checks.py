"""The verify checks' judgement on answers moto cannot produce or that need finer cases than the full stack."""

from __future__ import annotations

import datetime
import ipaddress
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

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


# --- the served certificate --------------------------------------------------------------------

NOW = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.timezone.utc)


def certificate_der(*names: x509.GeneralName, hours_left: float) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([])
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(hours=160 - hours_left))
        .not_valid_after(NOW + datetime.timedelta(hours=hours_left))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


IP_SAN = x509.IPAddress(ipaddress.ip_address("203.0.113.10"))


def test_a_trusted_ip_certificate_for_the_tracking_uri_passes_with_days_left() -> None:
    outcome = checks.served_certificate(certificate_der(IP_SAN, hours_left=120), None, "https://203.0.113.10", NOW)
    assert outcome.passed
    assert outcome.detail == "covers 203.0.113.10, 5.0 days left, matches tracking_uri"


def test_a_certificate_for_another_address_fails_naming_both() -> None:
    outcome = checks.served_certificate(certificate_der(IP_SAN, hours_left=120), None, "https://198.51.100.7", NOW)
    assert not outcome.passed
    assert "covers 203.0.113.10" in outcome.detail and "not 198.51.100.7" in outcome.detail


def test_a_domain_certificate_matches_its_name_and_a_wildcard_one_label() -> None:
    exact = certificate_der(x509.DNSName("mlflow.example.com"), hours_left=1000)
    assert checks.served_certificate(exact, None, "https://MLflow.example.com/", NOW).passed
    wildcard = certificate_der(x509.DNSName("*.example.com"), hours_left=1000)
    assert checks.served_certificate(wildcard, None, "https://mlflow.example.com", NOW).passed
    assert not checks.served_certificate(wildcard, None, "https://a.mlflow.example.com", NOW).passed
    assert not checks.served_certificate(exact, None, "https://203.0.113.10", NOW).passed


def test_an_untrusted_certificate_fails_with_the_reason() -> None:
    outcome = checks.served_certificate(certificate_der(IP_SAN, hours_left=120), "self-signed certificate",
                                        "https://203.0.113.10", NOW)
    assert not outcome.passed
    assert outcome.detail.startswith("not trusted (self-signed certificate); covers 203.0.113.10")


def test_a_certificate_with_less_than_a_day_left_fails_as_overdue_renewal() -> None:
    outcome = checks.served_certificate(certificate_der(IP_SAN, hours_left=20), None, "https://203.0.113.10", NOW)
    assert not outcome.passed
    assert "renewal is overdue" in outcome.detail and "mlflow-certificate-renewal" in outcome.detail


def test_an_expired_certificate_fails() -> None:
    outcome = checks.served_certificate(certificate_der(IP_SAN, hours_left=-2), None, "https://203.0.113.10", NOW)
    assert not outcome.passed
    assert "-0.1 days left" in outcome.detail


def test_a_certificate_without_names_fails() -> None:
    outcome = checks.served_certificate(certificate_der(hours_left=100), None, "https://203.0.113.10", NOW)
    assert not outcome.passed
    assert "names no host" in outcome.detail


def test_a_plain_http_tracking_uri_has_no_certificate_to_check() -> None:
    outcome = checks.served_certificate(None, None, "http://203.0.113.10", NOW)
    assert outcome.passed
    assert "tls off" in outcome.detail
