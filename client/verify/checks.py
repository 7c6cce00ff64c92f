"""Each check: a pure function from what AWS (or the server) answered to a pass/fail with the reason.

Inputs are the plain dicts boto3 returns (or None where the setting does not exist at all), so the
checks are tested without AWS and the runner alone talks to the network.
"""

from __future__ import annotations

import datetime
import fnmatch
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

# Ports that must never be open to the whole internet: SSH, MLflow's own port, PostgreSQL.
GUARDED_PORTS = (22, 5000, 5432)
PUBLIC_ACCESS_BLOCK_SETTINGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
ENCRYPTION_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")
TCP_PROTOCOLS = ("tcp", "6", "-1")
# The host renews a 160-hour certificate after about 80 hours: less than a day left means renewal
# has failed for two days.
MIN_CERTIFICATE_DAYS_LEFT = 1.0


@dataclass(frozen=True)
class Outcome:
    passed: bool
    detail: str


def passed(detail: str) -> Outcome:
    return Outcome(True, detail)


def failed(detail: str) -> Outcome:
    return Outcome(False, detail)


def public_access_blocked(configuration: Mapping[str, Any] | None) -> Outcome:
    if configuration is None:
        return failed("no public access block on the bucket")
    off = [name for name in PUBLIC_ACCESS_BLOCK_SETTINGS if configuration.get(name) is not True]
    if off:
        return failed(f"off: {', '.join(off)}")
    return passed("all four settings on")


def versioning_enabled(response: Mapping[str, Any]) -> Outcome:
    status = response.get("Status")
    if status == "Enabled":
        return passed("enabled")
    return failed(f"versioning is {status.lower() if isinstance(status, str) else 'never enabled'}")


def encrypted_by_default(configuration: Mapping[str, Any] | None) -> Outcome:
    if configuration is None:
        return failed("no default encryption configured")
    algorithms = [
        rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
        for rule in configuration.get("Rules", [])
    ]
    good = [algorithm for algorithm in algorithms if algorithm in ENCRYPTION_ALGORITHMS]
    if good:
        return passed(f"default encryption {good[0]}")
    return failed(f"no default encryption rule (found {algorithms or 'none'})")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _denies_plain_http(statement: Mapping[str, Any]) -> bool:
    condition = statement.get("Condition", {})
    for operator in ("Bool", "BoolIfExists"):
        # Condition keys are case-insensitive in IAM; operators are not.
        keys = {str(key).lower(): value for key, value in condition.get(operator, {}).items()}
        values = keys.get("aws:securetransport")
        if values is not None and any(str(value).lower() == "false" for value in _as_list(values)):
            return True
    return False


def _covers(patterns: Iterable[Any], target: str) -> bool:
    return any(isinstance(pattern, str) and fnmatch.fnmatchcase(target, pattern) for pattern in patterns)


def _everyone(principal: Any) -> bool:
    return principal == "*" or (isinstance(principal, Mapping) and "*" in _as_list(principal.get("AWS")))


def tls_only_policy(policy_text: str | None, bucket_arn: str) -> Outcome:
    if policy_text is None:
        return failed("no bucket policy, so plain-HTTP requests are not denied")
    try:
        policy = json.loads(policy_text)
    except json.JSONDecodeError:
        return failed("bucket policy is not valid JSON")
    for statement in _as_list(policy.get("Statement", [])):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Deny":
            continue
        actions = _as_list(statement.get("Action", []))
        resources = _as_list(statement.get("Resource", []))
        if (
            _everyone(statement.get("Principal"))
            and _denies_plain_http(statement)
            and _covers(actions, "s3:GetObject")
            and _covers(actions, "s3:PutObject")
            and _covers(resources, bucket_arn)
            and _covers(resources, f"{bucket_arn}/any/object")
        ):
            return passed(f"statement {statement.get('Sid', '(no Sid)')} denies aws:SecureTransport=false")
    return failed("no Deny statement for everyone on s3:* when aws:SecureTransport is false")


def db_not_public(db: Mapping[str, Any]) -> Outcome:
    if db.get("PubliclyAccessible") is False:
        return passed("PubliclyAccessible=false")
    return failed("PubliclyAccessible=true: the database has a public address")


def db_encrypted(db: Mapping[str, Any]) -> Outcome:
    if db.get("StorageEncrypted") is True:
        return passed("storage encrypted")
    return failed("storage is not encrypted")


def db_backups(db: Mapping[str, Any]) -> Outcome:
    days = db.get("BackupRetentionPeriod", 0)
    if isinstance(days, int) and days >= 1:
        return passed(f"automated backups kept {days} day(s)")
    return failed("automated backups are off (retention 0 days)")


# A managed prefix list's CIDRs, or why they could not be read.
PrefixLists = Mapping[str, Sequence[str] | str]


def _is_world(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def _world_ranges(permission: Mapping[str, Any], prefix_lists: PrefixLists) -> list[str]:
    """The whole-internet sources of a rule: its own ranges and those of the prefix lists it names."""
    ranges = [entry.get("CidrIp", "") for entry in permission.get("IpRanges", [])]
    ranges += [entry.get("CidrIpv6", "") for entry in permission.get("Ipv6Ranges", [])]
    world = [cidr for cidr in ranges if _is_world(cidr)]
    for list_id in prefix_list_ids(permission):
        entries = prefix_lists.get(list_id, ())
        if not isinstance(entries, str):
            world += [f"{cidr} (prefix list {list_id})" for cidr in entries if _is_world(cidr)]
    return world


def prefix_list_ids(permission: Mapping[str, Any]) -> list[str]:
    return [str(entry.get("PrefixListId", "")) for entry in permission.get("PrefixListIds", [])]


def _unresolved(permission: Mapping[str, Any], prefix_lists: PrefixLists) -> list[str]:
    """The prefix lists of a rule whose entries are unknown, each with the reason."""
    unknown = []
    for list_id in prefix_list_ids(permission):
        entries = prefix_lists.get(list_id, "not read")
        if isinstance(entries, str):
            unknown.append(f"prefix list {list_id} ({entries})")
    return unknown


def _ports(permission: Mapping[str, Any]) -> list[int]:
    protocol = str(permission.get("IpProtocol", ""))
    if protocol not in TCP_PROTOCOLS:
        return []
    if protocol == "-1":
        return list(GUARDED_PORTS)
    low, high = permission.get("FromPort", 0), permission.get("ToPort", 65535)
    return [port for port in GUARDED_PORTS if low <= port <= high]


def closed_to_world(group: Mapping[str, Any], prefix_lists: PrefixLists | None = None) -> Outcome:
    """No guarded port open to 0.0.0.0/0 or ::/0, directly or through a managed prefix list (whose
    entries `prefix_lists` holds, or the reason they could not be read: an unknown list fails)."""
    lists = prefix_lists or {}
    permissions = group.get("IpPermissions", [])
    exposures = sorted(
        f"{port} from {cidr}"
        for permission in permissions
        for cidr in _world_ranges(permission, lists)
        for port in _ports(permission)
    )
    unknown = sorted({
        source for permission in permissions if _ports(permission) for source in _unresolved(permission, lists)
    })
    group_id = group.get("GroupId", "group")
    if exposures:
        return failed(f"{group_id} opens {', '.join(exposures)}")
    if unknown:
        return failed(f"{group_id} admits a guarded port from {', '.join(unknown)}, whose entries are unknown")
    return _none_open([group])


def all_closed_to_world(groups: Sequence[Mapping[str, Any]], prefix_lists: PrefixLists | None = None) -> Outcome:
    opened = [outcome.detail for outcome in (closed_to_world(group, prefix_lists) for group in groups)
              if not outcome.passed]
    return failed("; ".join(opened)) if opened else _none_open(groups)


def _none_open(groups: Sequence[Mapping[str, Any]]) -> Outcome:
    ids = ", ".join(str(group.get("GroupId", "group")) for group in groups)
    ports = "/".join(str(port) for port in GUARDED_PORTS)
    return passed(f"{ids}: {ports} not open to 0.0.0.0/0 or ::/0")


def imds_v2_required(instance: Mapping[str, Any]) -> Outcome:
    options = instance.get("MetadataOptions", {})
    if options.get("HttpEndpoint") == "disabled":
        return passed("instance metadata endpoint disabled")
    if options.get("HttpTokens") == "required":
        return passed("HttpTokens=required")
    return failed(f"HttpTokens={options.get('HttpTokens', 'unknown')}: IMDSv1 is allowed")


def has_instance_profile(instance: Mapping[str, Any]) -> Outcome:
    profile = instance.get("IamInstanceProfile", {}).get("Arn")
    if profile:
        return passed(str(profile).rsplit("/", 1)[-1])
    return failed("no instance profile: the host cannot read its SSM parameters or the bucket")


def elastic_ip_attached(addresses: Sequence[Mapping[str, Any]], public_ip: str, instance_id: str) -> Outcome:
    address = next((entry for entry in addresses if entry.get("PublicIp") == public_ip), None)
    if address is None:
        return failed(f"{public_ip} is not an Elastic IP of this account and region")
    attached_to = address.get("InstanceId")
    if attached_to == instance_id:
        return passed(f"{public_ip} -> {instance_id}")
    return failed(f"{public_ip} is attached to {attached_to or 'nothing'}, not {instance_id}")


def health_ok(status: int | None, body: str, error: str | None) -> Outcome:
    if error is not None:
        return failed(error)
    if status == 200 and body.strip() == "OK":
        return passed("200 OK")
    return failed(f"HTTP {status}: {body.strip()[:60] or '(empty body)'}")


def _certificate_covers(names: x509.SubjectAlternativeName, host: str) -> bool:
    try:
        return ipaddress.ip_address(host) in names.get_values_for_type(x509.IPAddress)
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    for name in (value.lower() for value in names.get_values_for_type(x509.DNSName)):
        if name == host or (name.startswith("*.") and host.split(".", 1)[-1] == name[2:] and "." in host):
            return True
    return False


def served_certificate(der: bytes | None, verify_error: str | None, tracking_uri: str,
                       now: datetime.datetime) -> Outcome:
    """The certificate the tracking URI serves: trusted, for the URI's host, and not about to expire.
    `der` None: the URI is plain http (the stack chose tls off)."""
    if der is None:
        return passed(f"{tracking_uri} is plain http: no certificate (tls off)")
    certificate = x509.load_der_x509_certificate(der)
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return failed("the certificate names no host (no subject alternative names)")
    covered = [str(value) for value in names.get_values_for_type(x509.IPAddress)]
    covered += names.get_values_for_type(x509.DNSName)
    left = certificate.not_valid_after_utc - now
    days = left.total_seconds() / 86400
    summary = f"covers {', '.join(covered) or 'nothing'}, {days:.1f} days left"
    host = urlsplit(tracking_uri).hostname or ""
    if verify_error is not None:
        return failed(f"not trusted ({verify_error}); {summary}")
    if not _certificate_covers(names, host):
        return failed(f"{summary}: not {host}, the tracking_uri's host")
    if days < MIN_CERTIFICATE_DAYS_LEFT:
        return failed(f"{summary}: renewal is overdue (on the host: journalctl -u mlflow-certificate-renewal)")
    return passed(f"{summary}, matches tracking_uri")
