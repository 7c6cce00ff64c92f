"""What AWS and the server say about the deployed resources: the only part of `verify` that does I/O.

A setting that does not exist is None (a check then fails it); a call that fails for another reason
(access denied, resource gone) is `Unreadable`, which fails every check that needed it, with the reason.
"""

from __future__ import annotations

import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import FilterTypeDef

HTTP_TIMEOUT_SECONDS = 10
BOTO_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})
# Error codes AWS returns when a bucket setting was simply never configured.
NOT_CONFIGURED = frozenset(
    {"NoSuchPublicAccessBlockConfiguration", "ServerSideEncryptionConfigurationNotFoundError", "NoSuchBucketPolicy"}
)

T = TypeVar("T")


@dataclass(frozen=True)
class Unreadable:
    reason: str


@dataclass(frozen=True)
class Health:
    status: int | None
    body: str
    error: str | None


@dataclass(frozen=True)
class ServedCertificate:
    """The leaf certificate the server presents, and why it is not trusted (None: it is)."""

    der: bytes
    verify_error: str | None


@dataclass(frozen=True)
class Names:
    """The resources to inspect, from the stack's outputs."""

    region: str
    bucket: str
    db_instance_id: str
    instance_id: str
    web_security_group_id: str
    db_security_group_id: str
    public_ip: str
    tracking_uri: str


@dataclass(frozen=True)
class Facts:
    names: Names
    public_access_block: dict[str, Any] | Unreadable | None
    versioning: dict[str, Any] | Unreadable
    encryption: dict[str, Any] | Unreadable | None
    policy: str | Unreadable | None
    db: dict[str, Any] | Unreadable
    # The group named in the outputs and every group actually attached (a hand-added one counts too).
    host_security_groups: list[dict[str, Any]] | Unreadable
    db_security_groups: list[dict[str, Any]] | Unreadable
    instance: dict[str, Any] | Unreadable
    addresses: list[dict[str, Any]] | Unreadable
    health: Health
    # Every managed prefix list those groups' rules name -> its CIDRs, or why they could not be read.
    prefix_lists: dict[str, list[str] | str]
    certificate: ServedCertificate | Unreadable | None  # None: the tracking URI is plain http


class CredentialsMissing(RuntimeError):
    pass


def _fetch(call: Callable[[], T]) -> T | Unreadable:
    try:
        return call()
    except NoCredentialsError as error:
        raise CredentialsMissing(str(error)) from error
    except ClientError as error:
        details = error.response.get("Error", {})
        return Unreadable(f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": "))
    except BotoCoreError as error:
        return Unreadable(str(error))
    except (LookupError, TypeError) as error:  # an answer without the expected element
        return Unreadable(f"unexpected answer: {error!r}")


def _optional(call: Callable[[], T]) -> T | Unreadable | None:
    def none_when_not_configured() -> T | None:
        try:
            return call()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in NOT_CONFIGURED:
                return None
            raise

    return _fetch(none_when_not_configured)


def fetch_health(tracking_uri: str) -> Health:
    url = tracking_uri.rstrip("/") + "/health"
    if not url.startswith(("http://", "https://")):
        return Health(None, "", f"tracking URI {tracking_uri!r} is not an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return Health(response.status, response.read(256).decode("utf-8", "replace"), None)
    except urllib.error.HTTPError as error:
        return Health(error.code, error.read(256).decode("utf-8", "replace"), None)
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, ssl.SSLError):
            return Health(None, "", f"TLS failed for {url}: {reason}")
        return Health(None, "", f"cannot reach {url}: {reason}")
    except (TimeoutError, OSError) as error:
        return Health(None, "", f"cannot reach {url}: {error}")


def fetch_served_certificate(tracking_uri: str) -> ServedCertificate | Unreadable | None:
    """What the tracking URI's TLS endpoint presents, verified against the trust a client would use
    (MLFLOW_TRACKING_SERVER_CERT_PATH if set, else the system's); the name is checked by the check."""
    parts = urlsplit(tracking_uri)
    if parts.scheme != "https" or not parts.hostname:
        return None
    address = (parts.hostname, parts.port or 443)

    def served(context: ssl.SSLContext) -> bytes:
        with (socket.create_connection(address, timeout=HTTP_TIMEOUT_SECONDS) as raw,
              context.wrap_socket(raw, server_hostname=parts.hostname) as connection):
            der = connection.getpeercert(binary_form=True)
        if not der:
            raise ssl.SSLError("the server presented no certificate")
        return der

    trusted = ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    trusted.check_hostname = False
    try:
        try:
            return ServedCertificate(served(trusted), None)
        except ssl.SSLCertVerificationError as error:
            anything = ssl.create_default_context()
            anything.check_hostname = False
            anything.verify_mode = ssl.CERT_NONE
            return ServedCertificate(served(anything), str(error.verify_message or error))
    except (OSError, ssl.SSLError) as error:
        return Unreadable(f"cannot read the certificate at {address[0]}:{address[1]}: {error}")


def attached_group_ids(resource: dict[str, Any] | Unreadable, named: str) -> list[str]:
    """`named` and the ids of the groups on an instance (all its interfaces) or a DB instance."""
    ids = [named]
    if not isinstance(resource, Unreadable):
        ids += [group["GroupId"] for group in resource.get("SecurityGroups", [])]
        for interface in resource.get("NetworkInterfaces", []):
            ids += [group["GroupId"] for group in interface.get("Groups", [])]
        ids += [group["VpcSecurityGroupId"] for group in resource.get("VpcSecurityGroups", [])]
    return list(dict.fromkeys(ids))


def referenced_prefix_lists(*group_sets: list[dict[str, Any]] | Unreadable) -> list[str]:
    ids = [
        str(entry.get("PrefixListId", ""))
        for groups in group_sets if not isinstance(groups, Unreadable)
        for group in groups
        for permission in group.get("IpPermissions", [])
        for entry in permission.get("PrefixListIds", [])
    ]
    return list(dict.fromkeys(ids))


def prefix_list_entries(ec2: Any, list_ids: list[str]) -> dict[str, list[str] | str]:
    resolved: dict[str, list[str] | str] = {}
    for list_id in list_ids:
        def entries(list_id: str = list_id) -> list[str]:
            pages = ec2.get_paginator("get_managed_prefix_list_entries").paginate(PrefixListId=list_id)
            return [str(entry["Cidr"]) for page in pages for entry in page.get("Entries", [])]

        found = _fetch(entries)
        resolved[list_id] = found.reason if isinstance(found, Unreadable) else found
    return resolved


def collect(names: Names, session: boto3.session.Session | None = None) -> Facts:
    """Ask AWS about each named resource; raises CredentialsMissing when boto3 finds no credentials."""
    session = session or boto3.session.Session(region_name=names.region)
    s3 = session.client("s3", config=BOTO_CONFIG)
    rds = session.client("rds", config=BOTO_CONFIG)
    ec2 = session.client("ec2", config=BOTO_CONFIG)
    bucket = names.bucket
    public_ip: list[FilterTypeDef] = [{"Name": "public-ip", "Values": [names.public_ip]}]

    def security_groups(group_ids: list[str]) -> list[dict[str, Any]] | Unreadable:
        return _fetch(
            lambda: [dict(group) for group in ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"]]
        )

    db = _fetch(lambda: dict(rds.describe_db_instances(DBInstanceIdentifier=names.db_instance_id)["DBInstances"][0]))
    instance = _fetch(
        lambda: dict(ec2.describe_instances(InstanceIds=[names.instance_id])["Reservations"][0]["Instances"][0])
    )
    host_groups = security_groups(attached_group_ids(instance, names.web_security_group_id))
    db_groups = security_groups(attached_group_ids(db, names.db_security_group_id))
    return Facts(
        names=names,
        public_access_block=_optional(
            lambda: dict(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"])
        ),
        versioning=_fetch(lambda: dict(s3.get_bucket_versioning(Bucket=bucket))),
        encryption=_optional(
            lambda: dict(s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"])
        ),
        policy=_optional(lambda: str(s3.get_bucket_policy(Bucket=bucket)["Policy"])),
        db=db,
        host_security_groups=host_groups,
        db_security_groups=db_groups,
        instance=instance,
        addresses=_fetch(lambda: [dict(entry) for entry in ec2.describe_addresses(Filters=public_ip)["Addresses"]]),
        health=fetch_health(names.tracking_uri),
        prefix_lists=prefix_list_entries(ec2, referenced_prefix_lists(host_groups, db_groups)),
        certificate=fetch_served_certificate(names.tracking_uri),
    )
