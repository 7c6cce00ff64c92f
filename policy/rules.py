"""The guardrails, as plain functions over resource properties as Pulumi hands them to a policy pack.

A resource check takes a type token and the resource's properties (camelCase names of the
pulumi-aws v7 schema) and returns one message per violation. A property that is absent or not known
yet (preview) is not flagged, except where the provider's default for it is itself insecure: an RDS
instance without `storageEncrypted` is unencrypted, one without `publiclyAccessible` is private.

The stack check pairs each S3 bucket with its companion resources (public access block, versioning,
default encryption), by the bucket's name or by the property dependency on the bucket's URN.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

Props = Mapping[str, Any]


class Unknown:
    """A value Pulumi does not know yet (during preview); never flagged."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Final = Unknown()

# The engine's wire markers for values not known until apply (pulumi_policy.proxy uses the same).
PULUMI_UNKNOWN_MARKERS: Final = frozenset(
    {
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string (and any value under mocks)
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
        "e48ece36-62e2-4504-bad9-02848725956a",  # archive
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
VERSIONING_V2 = "aws:s3/bucketVersioningV2:BucketVersioningV2"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
ENCRYPTION_V2 = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
RDS_INSTANCE = "aws:rds/instance:Instance"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EC2_INSTANCE = "aws:ec2/instance:Instance"
EBS_VOLUME = "aws:ebs/volume:Volume"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
USER_POLICY = "aws:iam/userPolicy:UserPolicy"
GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
MANAGED_POLICY = "aws:iam/policy:Policy"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
LB_LISTENER_TYPES = frozenset({"aws:lb/listener:Listener", "aws:alb/listener:Listener"})
LOAD_BALANCER_TYPES = frozenset({"aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer"})
EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
AUTOSCALING_GROUP = "aws:autoscaling/group:Group"

BUCKET_TYPES = frozenset({BUCKET, BUCKET_V2})
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
SSE_ALGORITHMS = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
WORLD_OPEN_PORTS = frozenset({80, 443})
PROTECTED_BACKUP_DAYS = 7
# AWS keeps one day of automated backups when CreateDBInstance does not say.
RDS_DEFAULT_BACKUP_DAYS = 1


def is_unknown(value: Any) -> bool:
    """Not known yet: Pulumi's marker, our sentinel, or a runtime object (mocks' `Unknown`)."""
    if isinstance(value, str):
        return value in PULUMI_UNKNOWN_MARKERS
    return value is UNKNOWN or not isinstance(value, (bool, int, float, list, tuple, dict, Mapping, type(None)))


def _bool(props: Props, key: str, default: bool) -> bool | None:
    """The property as a bool: `default` when absent, None when not known yet."""
    value = props.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or is_unknown(value) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and not is_unknown(value) else None


def _mapping(value: Any) -> Props | None:
    return value if isinstance(value, Mapping) else None


def _items(value: Any) -> list[Any]:
    """A list property as a list; one value counts as a list of one, absent or unknown as none."""
    if value is None or is_unknown(value):
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


# --- S3 ---------------------------------------------------------------------------------------------


def check_public_access_block(resource_type: str, props: Props) -> list[str]:
    """Every one of the four public access flags on; each defaults to off."""
    if resource_type != PUBLIC_ACCESS_BLOCK:
        return []
    off = [flag for flag in PUBLIC_ACCESS_FLAGS if _bool(props, flag, default=False) is False]
    if not off:
        return []
    return [f"public access block leaves {', '.join(off)} off; set all of {', '.join(PUBLIC_ACCESS_FLAGS)} to true"]


def check_bucket_versioning(resource_type: str, props: Props) -> list[str]:
    if resource_type not in (VERSIONING, VERSIONING_V2):
        return []
    configuration = _mapping(props.get("versioningConfiguration"))
    status = _text(configuration.get("status")) if configuration else None
    if status is None or status == "Enabled":
        return []
    return [f"bucket versioning status is {status!r}; set versioningConfiguration.status to 'Enabled'"]


def check_bucket_encryption(resource_type: str, props: Props) -> list[str]:
    if resource_type not in (ENCRYPTION, ENCRYPTION_V2):
        return []
    configured = props.get("rules")
    if configured is None or is_unknown(configured):
        return []
    algorithms = []
    for rule in _items(configured):
        by_default = (_mapping(rule) or {}).get("applyServerSideEncryptionByDefault")
        algorithm = (_mapping(by_default) or {}).get("sseAlgorithm")
        if is_unknown(rule) or is_unknown(by_default) or is_unknown(algorithm):
            return []
        if algorithm is not None:
            algorithms.append(algorithm)
    if any(algorithm in SSE_ALGORITHMS for algorithm in algorithms):
        return []
    return [
        f"default encryption has no applyServerSideEncryptionByDefault.sseAlgorithm of "
        f"{', '.join(sorted(SSE_ALGORITHMS))} (found {algorithms or 'none'})"
    ]


# --- RDS --------------------------------------------------------------------------------------------


def check_rds_instance(resource_type: str, props: Props) -> list[str]:
    """Private, encrypted, backed up."""
    if resource_type != RDS_INSTANCE:
        return []
    violations = []
    if _bool(props, "publiclyAccessible", default=False) is True:
        violations.append("publiclyAccessible is true; the database must be reachable only inside the VPC")
    if _bool(props, "storageEncrypted", default=False) is False:
        violations.append("storageEncrypted is not true (RDS storage is unencrypted by default); set it to true")
    days = _backup_days(props)
    if days is not None and days < 1:
        violations.append(f"backupRetentionPeriod is {days}, which turns automated backups off; keep 1 day or more")
    return violations


def _backup_days(props: Props) -> int | None:
    retention = props.get("backupRetentionPeriod")
    days = RDS_DEFAULT_BACKUP_DAYS if retention is None else _number(retention)
    return None if days is None else int(days)


# --- network ------------------------------------------------------------------------------------------


def _is_world(cidr: Any) -> bool:
    text = _text(cidr)
    if text is None:
        return False
    try:
        return ipaddress.ip_network(text.strip(), strict=False).prefixlen == 0
    except ValueError:
        return False


def _world_ingress_problem(source: str, protocol: Any, from_port: Any, to_port: Any) -> str | None:
    """Why ingress from `source` (the whole internet) is too wide, or None if it is 80 or 443 only."""
    proto = _text(protocol) if not isinstance(protocol, (int, float)) else str(int(protocol))
    if proto is None:
        return None
    proto = proto.lower()
    if proto in ("-1", "all"):
        return f"ingress from {source} on every protocol and port; only ports 80 and 443 may be open to the world"
    if proto not in ("tcp", "6", "udp", "17"):
        return f"ingress from {source} on protocol {proto}; only TCP/UDP ports 80 and 443 may be open to the world"
    low, high = _number(from_port), _number(to_port)
    if low is None or high is None:
        return None
    if low == high and int(low) in WORLD_OPEN_PORTS:
        return None
    ports = f"port {int(low)}" if low == high else f"ports {int(low)}-{int(high)}"
    return f"ingress from {source} on {proto} {ports}; only ports 80 and 443 may be open to the world"


def _world_sources(props: Props, ipv4_key: str, ipv6_key: str) -> list[str]:
    return [str(cidr) for key in (ipv4_key, ipv6_key) for cidr in _items(props.get(key)) if _is_world(cidr)]


def check_world_ingress(resource_type: str, props: Props) -> list[str]:
    """Nothing but 80/443 open to 0.0.0.0/0 or ::/0; rules that name a security group are fine."""
    entries: list[tuple[list[str], Any, Any, Any]] = []  # (world sources, protocol, from port, to port)
    if resource_type == SECURITY_GROUP:
        for rule in _items(props.get("ingress")):
            entry = _mapping(rule)
            if entry is not None:
                sources = _world_sources(entry, "cidrBlocks", "ipv6CidrBlocks")
                entries.append((sources, entry.get("protocol"), entry.get("fromPort"), entry.get("toPort")))
    elif resource_type == SECURITY_GROUP_RULE:
        if _text(props.get("type")) == "ingress":
            sources = _world_sources(props, "cidrBlocks", "ipv6CidrBlocks")
            entries.append((sources, props.get("protocol"), props.get("fromPort"), props.get("toPort")))
    elif resource_type == INGRESS_RULE:
        sources = _world_sources(props, "cidrIpv4", "cidrIpv6")
        entries.append((sources, props.get("ipProtocol"), props.get("fromPort"), props.get("toPort")))
    violations = []
    for sources, protocol, from_port, to_port in entries:
        for source in sources:
            problem = _world_ingress_problem(source, protocol, from_port, to_port)
            if problem:
                violations.append(problem)
    return violations


# --- EC2 ----------------------------------------------------------------------------------------------


def _unencrypted(device: Any) -> bool:
    entry = _mapping(device)
    return entry is not None and _bool(entry, "encrypted", default=False) is False


def check_ec2_instance(resource_type: str, props: Props) -> list[str]:
    """IMDSv2 only (tokens required, or the metadata endpoint off) and every EBS volume encrypted."""
    if resource_type == EBS_VOLUME:
        if _bool(props, "encrypted", default=False) is False:
            return ["EBS volume is not encrypted; set encrypted to true"]
        return []
    if resource_type == LAUNCH_TEMPLATE:
        return _launch_template_problems(props)
    if resource_type != EC2_INSTANCE:
        return []
    violations = _metadata_problems(props)
    root = props.get("rootBlockDevice")
    if not is_unknown(root) and (root is None or _unencrypted(root)):
        violations.append("rootBlockDevice is not encrypted (EBS defaults to unencrypted); set encrypted to true")
    for index, device in enumerate(_items(props.get("ebsBlockDevices"))):
        if _unencrypted(device):
            violations.append(f"ebsBlockDevices[{index}] is not encrypted; set encrypted to true")
    return violations


def _metadata_problems(props: Props) -> list[str]:
    violations = []
    metadata = props.get("metadataOptions")
    if not is_unknown(metadata):
        options = _mapping(metadata) or {}
        tokens, endpoint = options.get("httpTokens"), options.get("httpEndpoint")
        if not is_unknown(tokens) and not is_unknown(endpoint) and tokens != "required" and endpoint != "disabled":
            shown = repr(tokens) if tokens else "unset (AWS default: optional)"
            violations.append(
                f"metadataOptions.httpTokens is {shown}, so IMDSv1 is allowed; set httpTokens to 'required' (IMDSv2)"
            )
    return violations


def _launch_template_problems(props: Props) -> list[str]:
    """What the group launches: IMDSv2 only, and every EBS volume it maps encrypted (launch templates
    carry booleans as the strings "true"/"false"). A template that maps no volume keeps the image's
    root volume, unencrypted unless the account encrypts by default: it must map it."""
    violations = _metadata_problems(props)
    mappings = props.get("blockDeviceMappings")
    if is_unknown(mappings):
        return violations
    volumes = [(index, _mapping(entry)) for index, entry in enumerate(_items(mappings))]
    if not any(entry is not None and entry.get("ebs") is not None for _, entry in volumes):
        violations.append("blockDeviceMappings maps no EBS volume, so the root volume is the image's "
                          "(unencrypted); map the root device with ebs.encrypted 'true'")
    for index, entry in volumes:
        ebs = _mapping(entry.get("ebs")) if entry is not None else None
        if ebs is None:
            continue
        encrypted = ebs.get("encrypted")
        if not is_unknown(encrypted) and str(encrypted).lower() != "true":
            violations.append(f"blockDeviceMappings[{index}].ebs is not encrypted; set encrypted to 'true'")
    return violations


# --- load balancers -----------------------------------------------------------------------------------

# ELB security policies that offer TLS 1.2 and 1.3 or 1.3 alone, with forward-secret ciphers
# (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html).
CURRENT_TLS_POLICY = re.compile(r"^ELBSecurityPolicy-(TLS13-1-[23]|FS-1-2)-[A-Za-z0-9-]+$")


def check_load_balancer_listener(resource_type: str, props: Props) -> list[str]:
    """A listener serves HTTPS with a current TLS policy, or does nothing but redirect to HTTPS."""
    if resource_type not in LB_LISTENER_TYPES:
        return []
    protocol = props.get("protocol")
    if is_unknown(protocol):
        return []
    if str(protocol).upper() == "HTTPS":
        policy = props.get("sslPolicy")
        if is_unknown(policy):
            return []
        if not isinstance(policy, str) or not CURRENT_TLS_POLICY.match(policy):
            shown = repr(policy) if policy else "unset (AWS default: ELBSecurityPolicy-2016-08, TLS 1.0)"
            return [f"HTTPS listener's sslPolicy is {shown}; use a TLS 1.2+ policy such as "
                    "ELBSecurityPolicy-TLS13-1-2-2021-06"]
        return []
    if str(protocol).upper() != "HTTP":
        return []  # TCP/TLS/UDP belong to network load balancers, which this project does not create
    actions = props.get("defaultActions")
    if is_unknown(actions):
        return []
    for action in _items(actions):
        entry = _mapping(action)
        if entry is None or is_unknown(entry.get("type")):
            continue
        redirect = _mapping(entry.get("redirect")) or {}
        if entry.get("type") != "redirect" or str(redirect.get("protocol", "")).upper() != "HTTPS":
            return ["HTTP listener does not only redirect to HTTPS, so requests (and credentials) could "
                    "cross plain HTTP; make its default action a redirect with protocol HTTPS"]
    return []


# --- IAM ----------------------------------------------------------------------------------------------

_IAM_POLICY_TYPES = frozenset({ROLE_POLICY, USER_POLICY, GROUP_POLICY, MANAGED_POLICY})
_EVERY_BUCKET = re.compile(r"^arn:[^:]*:s3:::\*")


def _policy_documents(resource_type: str, props: Props) -> list[tuple[str, Any]]:
    if resource_type in _IAM_POLICY_TYPES:
        return [("policy", props.get("policy"))]
    if resource_type == ROLE:
        return [
            (f"inlinePolicies[{index}].policy", entry.get("policy"))
            for index, entry in enumerate(_items(props.get("inlinePolicies")))
            if isinstance(entry, Mapping)
        ]
    return []


def _statement_problems(where: str, statement: Props) -> list[str]:
    if statement.get("Effect", "Allow") != "Allow":
        return []
    label = f"{where} statement {statement['Sid']!r}" if isinstance(statement.get("Sid"), str) else f"{where} statement"
    actions = [str(action) for action in _items(statement.get("Action"))]
    problems = []
    if "*" in actions:
        problems.append(f"{label} allows every action ('*'), S3 included; name the S3 actions it needs")
    if any(action.lower() == "s3:*" for action in actions):
        problems.append(f"{label} allows every S3 action ('s3:*'); name the S3 actions it needs")
    if "NotAction" in statement:
        problems.append(f"{label} allows everything outside NotAction, S3 included; list Action instead")
    s3_actions = [action for action in actions if action == "*" or action.lower().startswith("s3:")]
    grants_s3 = bool(s3_actions) or "NotAction" in statement
    if grants_s3:
        resources = [str(resource) for resource in _items(statement.get("Resource"))]
        wide = [resource for resource in resources if resource == "*" or _EVERY_BUCKET.match(resource)]
        if wide:
            problems.append(f"{label} allows S3 actions on {', '.join(wide)}, every bucket; name the bucket's ARN")
        if "NotResource" in statement:
            problems.append(f"{label} allows S3 actions on everything outside NotResource; list Resource instead")
    return problems


# AWS-managed policies whose statements grant s3:* (or *) on every bucket: attaching one is the same
# grant as writing it inline.
WIDE_MANAGED_POLICIES: Final = frozenset({"AmazonS3FullAccess", "AdministratorAccess", "PowerUserAccess"})
POLICY_ATTACHMENTS: Final = frozenset({
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
})
_AWS_MANAGED_ARN = re.compile(r"^arn:aws[a-z-]*:iam::aws:policy/(?:.*/)?(?P<name>[^/]+)$")


def _wide_managed_policies(resource_type: str, props: Props) -> list[str]:
    if resource_type in POLICY_ATTACHMENTS:
        arns = _items(props.get("policyArn"))
    elif resource_type == ROLE:
        arns = _items(props.get("managedPolicyArns"))
    else:
        return []
    problems = []
    for arn in arns:
        match = _AWS_MANAGED_ARN.match(_text(arn) or "")
        if match and match.group("name") in WIDE_MANAGED_POLICIES:
            problems.append(
                f"attaches {match.group('name')}, which allows every S3 action on every bucket; "
                "grant the bucket's ARN in a policy of its own"
            )
    return problems


def check_iam_s3_wildcards(resource_type: str, props: Props) -> list[str]:
    """No IAM statement allows `*` / `s3:*` actions, or S3 actions on every bucket, inline or by attaching
    an AWS-managed policy that does."""
    violations = _wide_managed_policies(resource_type, props)
    for where, document in _policy_documents(resource_type, props):
        if document is None or is_unknown(document):
            continue
        parsed: Any = document
        if isinstance(document, str):
            try:
                parsed = json.loads(document)
            except json.JSONDecodeError:
                violations.append(f"{where} is not a JSON policy document, so it cannot be checked")
                continue
        if not isinstance(parsed, Mapping):
            violations.append(f"{where} is not a JSON policy document, so it cannot be checked")
            continue
        for statement in _items(parsed.get("Statement")):
            if isinstance(statement, Mapping):
                violations.extend(_statement_problems(where, statement))
    return violations


# --- data protection (stacks with protectData) ---------------------------------------------------------


# The program tags the database and the bucket of a stack with protectData (naming.DATA_PROTECTION_TAGS;
# the pack runs without the project's modules, a test keeps the two equal), so a plain
# `pulumi preview --policy-pack policy` holds them to it without any pack config.
DATA_PROTECTION_TAG: Final = ("DataProtection", "kept-on-destroy")


def declares_data_protection(props: Props) -> bool:
    tags = _mapping(props.get("tags"))
    key, value = DATA_PROTECTION_TAG
    return tags is not None and tags.get(key) == value


def check_data_protection(resource_type: str, props: Props, protect_data: bool) -> list[str]:
    """With protectData (the pack's config, or the resource's tag), `pulumi destroy` must leave the data:
    RDS protected and snapshotted, bucket kept."""
    if not (protect_data or declares_data_protection(props)):
        return []
    violations = []
    if resource_type == RDS_INSTANCE:
        if _bool(props, "deletionProtection", default=False) is False:
            violations.append("protectData: deletionProtection is not true; set it to true")
        skip = _bool(props, "skipFinalSnapshot", default=False)
        snapshot = props.get("finalSnapshotIdentifier")
        if skip is True:
            violations.append("protectData: skipFinalSnapshot is true; set it to false so destroy keeps a snapshot")
        elif skip is False and not is_unknown(snapshot) and not snapshot:
            violations.append("protectData: finalSnapshotIdentifier is not set; name the final snapshot")
        days = _backup_days(props)
        if days is not None and days < PROTECTED_BACKUP_DAYS:
            violations.append(
                f"protectData: backupRetentionPeriod is {days} day(s); keep at least {PROTECTED_BACKUP_DAYS}"
            )
    elif resource_type in BUCKET_TYPES and _bool(props, "forceDestroy", default=False) is True:
        violations.append("protectData: forceDestroy is true, so destroy would empty the bucket; set it to false")
    return violations


# --- the rule set -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceRule:
    name: str  # the policy's name in the pack (and its key in --policy-pack-config)
    description: str
    check: Callable[[str, Props], list[str]]


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule("s3-public-access-block", "S3 public access blocks turn on all four protections.",
                 check_public_access_block),
    ResourceRule("s3-versioning-enabled", "S3 bucket versioning is Enabled.", check_bucket_versioning),
    ResourceRule("s3-default-encryption", "S3 default encryption uses SSE-S3 or SSE-KMS.", check_bucket_encryption),
    ResourceRule("rds-private-encrypted-backed-up",
                 "RDS instances are not public, are encrypted and keep automated backups.", check_rds_instance),
    ResourceRule("no-world-ingress-but-web", "Only ports 80 and 443 accept traffic from the whole internet.",
                 check_world_ingress),
    ResourceRule("ec2-imdsv2-encrypted-volumes",
                 "EC2 instances and launch templates require IMDSv2 and encrypt every EBS volume.",
                 check_ec2_instance),
    ResourceRule("lb-listener-https", "Load balancer listeners serve HTTPS with a TLS 1.2+ policy, or redirect to it.",
                 check_load_balancer_listener),
    ResourceRule("iam-no-s3-wildcards", "IAM statements grant no '*' actions and no S3 access to every bucket.",
                 check_iam_s3_wildcards),
)
DATA_PROTECTION_RULE = "data-protection"
DATA_PROTECTION_DESCRIPTION = (
    "With protectData, RDS has deletion protection, a final snapshot and 7+ days of backups, and the bucket "
    "is not force-destroyed."
)
PROTECT_DATA_KEY = "protectData"


def validate_resource(resource_type: str, props: Props, *, protect_data: bool = False) -> list[str]:
    """Every resource rule's violations for one resource."""
    violations = [message for rule in RESOURCE_RULES for message in rule.check(resource_type, props)]
    return violations + check_data_protection(resource_type, props, protect_data)


# --- the stack rule: every bucket has its companions ------------------------------------------------------


@dataclass(frozen=True)
class StackResource:
    type: str
    props: Props
    urn: str
    # property name -> URNs of the resources that property's value came from (Pulumi's propertyDependencies)
    property_dependencies: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class StackViolation:
    urn: str
    message: str


BUCKET_COMPANIONS: tuple[tuple[str, frozenset[str]], ...] = (
    ("BucketPublicAccessBlock", frozenset({PUBLIC_ACCESS_BLOCK})),
    ("BucketVersioning", frozenset({VERSIONING, VERSIONING_V2})),
    ("BucketServerSideEncryptionConfiguration", frozenset({ENCRYPTION, ENCRYPTION_V2})),
)
BUCKET_COMPLETENESS_RULE = "s3-bucket-complete"
BUCKET_COMPLETENESS_DESCRIPTION = (
    "Every S3 bucket has a public access block, versioning and default encryption of its own."
)


def _may_belong_to(
    companion: StackResource, bucket: StackResource, bucket_name: str | None, bucket_urns: frozenset[str]
) -> bool:
    """Whether `companion` is, or might yet turn out to be, attached to `bucket`."""
    referenced = companion.property_dependencies.get("bucket", frozenset())
    if bucket.urn in referenced:
        return True
    if referenced & bucket_urns:  # it takes its bucket from another bucket resource
        return False
    target = companion.props.get("bucket")
    if target is None or is_unknown(target) or bucket_name is None:
        return True  # cannot tell which bucket it is for
    return bool(target == bucket_name)


def validate_stack(resources: Iterable[StackResource]) -> list[StackViolation]:
    """Each bucket's missing companions. A bucket whose pairing cannot be decided yet is not flagged."""
    stack: Sequence[StackResource] = list(resources)
    buckets = [resource for resource in stack if resource.type in BUCKET_TYPES]
    bucket_urns = frozenset(bucket.urn for bucket in buckets)
    violations = []
    for bucket in buckets:
        bucket_name = _text(bucket.props.get("bucket"))
        for needed, types in BUCKET_COMPANIONS:
            companions = [resource for resource in stack if resource.type in types]
            if not any(_may_belong_to(companion, bucket, bucket_name, bucket_urns) for companion in companions):
                label = bucket_name or bucket.urn.rsplit("::", 1)[-1]
                violations.append(StackViolation(bucket.urn, f"bucket {label} has no {needed} attached"))
    return violations


# --- the stack rule: the load balancer's and the hosts' security groups -----------------------------------

LOAD_BALANCER_GROUPS_RULE = "lb-security-groups"
LOAD_BALANCER_GROUPS_DESCRIPTION = (
    "A load balancer's security groups admit only ports 80 and 443; its hosts' groups admit only the "
    "load balancer's groups."
)


def _groups_of(resource: StackResource, keys: Iterable[str], groups: frozenset[str]) -> frozenset[str]:
    return frozenset(urn for key in keys for urn in resource.property_dependencies.get(key, frozenset())
                     if urn in groups)


def validate_load_balancer_groups(resources: Iterable[StackResource]) -> list[StackViolation]:
    """Security groups are matched to load balancers, launch templates and rules by property dependency
    (the URNs their values came from); a rule whose group cannot be told is not flagged."""
    stack: Sequence[StackResource] = list(resources)
    groups = frozenset(r.urn for r in stack if r.type == SECURITY_GROUP)
    balancers = [r for r in stack if r.type in LOAD_BALANCER_TYPES]
    if not balancers:
        return []
    balancer_groups = frozenset().union(*(_groups_of(r, ["securityGroups"], groups) for r in balancers))
    templates = [r for r in stack if r.type == LAUNCH_TEMPLATE]
    host_groups = frozenset().union(
        *(_groups_of(r, ["networkInterfaces", "vpcSecurityGroupIds"], groups) for r in templates)
    ) - balancer_groups
    violations = []
    for rule in (r for r in stack if r.type == INGRESS_RULE):
        for group in _groups_of(rule, ["securityGroupId"], groups):
            if group in balancer_groups:
                low, high = _number(rule.props.get("fromPort")), _number(rule.props.get("toPort"))
                if low is None or high is None:
                    continue
                if not (low == high and int(low) in WORLD_OPEN_PORTS):
                    ports = f"port {int(low)}" if low == high else f"ports {int(low)}-{int(high)}"
                    violations.append(StackViolation(rule.urn, f"the load balancer's security group admits "
                                                                f"{ports}; it may admit only 80 and 443"))
            elif group in host_groups:
                sources = _groups_of(rule, ["referencedSecurityGroupId"], groups)
                if rule.props.get("cidrIpv4") or rule.props.get("cidrIpv6") or rule.props.get("prefixListId") \
                        or (sources and not sources <= balancer_groups):
                    violations.append(StackViolation(rule.urn, "the hosts' security group admits a source other "
                                                                "than the load balancer's group; hosts behind a load "
                                                                "balancer admit only it"))
    return violations
