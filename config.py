"""The stack's configuration: every key read once, typed, validated, frozen.

`load_config(raw)` takes the raw values as Pulumi hands them to a program (strings, JSON for lists)
or as YAML gives them (native lists, bools, ints) and returns a `StackConfig`, or raises one
`ConfigError` that lists every problem at once, each naming the key, the value given and what is
accepted. Nothing here creates a resource, so a bad config stops `pulumi up` before anything exists.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml

import instance_types
from userdata import pins, sizing
from userdata.settings import AUTH_MODES, AuthMode, OidcSettings

PROJECT = "mlflow-aws"

TlsMode = Literal["letsencrypt", "off"]
TLS_MODES: tuple[TlsMode, ...] = ("letsencrypt", "off")

# RDS PostgreSQL majors AWS offers for new instances (13 reached end of standard support in 2026).
SUPPORTED_POSTGRES_MAJORS = ("14", "15", "16", "17", "18")
# --allowed-hosts / --cors-allowed-origins (the security middleware) arrived in MLflow 3.5.0.
MIN_MLFLOW_VERSION = (3, 5, 0)
MIN_STORAGE_GB, MAX_STORAGE_GB = 20, 65536
# The VPC is cut into four equal subnets (public, two private, one spare) and AWS subnets are /28 at least.
MIN_VPC_PREFIX, MAX_VPC_PREFIX = 16, 24
# hosts: 1 is the single host; from 2 on, a fleet behind a load balancer (components/fleet.py). The
# ceiling keeps a typo (20 for 2) from launching a bill; more hosts share one RDS instance anyway.
FLEET_MIN_HOSTS, MAX_HOSTS = 2, 10
# MLflow's job runner with at least one worker, measured (bench/memory.py --job-runner, bench/RESULTS.md).
JOB_RUNNER_MIN_MEMORY_MIB = sizing.JOB_RUNNER_MIN_INSTANCE_MIB
_JOB_RUNNER_SMALLEST = instance_types.smallest_with(JOB_RUNNER_MIN_MEMORY_MIB)
# MLflow basic-auth's default_permission values this stack offers (all of MLflow's would be accepted,
# but EDIT or MANAGE as a default would let every user change or delete everyone's work).
DEFAULT_PERMISSIONS = ("READ", "NO_PERMISSIONS")
# The retention periods CloudWatch Logs accepts (PutRetentionPolicy's retentionInDays; 0, "never
# expire", is left out on purpose: logs kept forever are billed forever).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)
# How long `pulumi up` waits for a new single host to report healthy (components/host_launch.py): a first
# boot installs MLflow in 3-5 minutes, and a release that migrates a schema snapshots the database first.
MIN_READY_TIMEOUT_MINUTES, MAX_READY_TIMEOUT_MINUTES = 5, 180
_IMAGE_REFRESH = re.compile(r"^[A-Za-z0-9._-]{0,64}$")
# Keys whose value is a secret: set with `pulumi config set --secret`, read by the program as a secret
# Output (never into StackConfig), refused when stored in clear.
SECRET_KEYS = ("oidcClientSecret",)
_SECRET_PLACEHOLDER = "(secret)"


@dataclass(frozen=True)
class ConfigKey:
    name: str
    type: Literal["string", "integer", "boolean", "array"]
    default: Any
    description: str


# The single list of keys. Pulumi.yaml declares the same keys (a test keeps the two equal) and the
# README's configuration table is generated from Pulumi.yaml.
CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("instanceType", "string", "t3.small",
              "EC2 instance type of the tracking host (at least 1 GiB of memory)."),
    ConfigKey("mlflowVersion", "string", "3.17.2",
              "Exact MLflow version installed on the host (3.5.0 or newer)."),
    ConfigKey("allowedCidrs", "array", ["0.0.0.0/0"],
              "IPv4 CIDRs allowed to reach the server on ports 80 and 443."),
    ConfigKey("sshCidrs", "array", [],
              "IPv4 CIDRs allowed to SSH (port 22). Empty: no SSH, use SSM Session Manager."),
    ConfigKey("sshKeyName", "string", "",
              "Existing EC2 key pair for SSH; requires sshCidrs."),
    ConfigKey("vpcCidr", "string", "10.20.0.0/16",
              "Private IPv4 range of the VPC, /16 to /24."),
    ConfigKey("dbInstanceClass", "string", "db.t4g.micro",
              "RDS instance class of the PostgreSQL backend store."),
    ConfigKey("dbEngineVersion", "string", "17",
              "PostgreSQL major version, 14 to 18, which takes AWS's minor upgrades; major.minor pins one."),
    ConfigKey("dbAllocatedStorageGb", "integer", 20,
              "RDS storage in GiB (20 to 65536); it grows automatically up to 5x, at most 65536."),
    ConfigKey("dbMultiAz", "boolean", False,
              "Run RDS in two availability zones with automatic failover."),
    ConfigKey("protectData", "boolean", False,
              "Keep data on destroy: RDS deletion protection, final snapshot, 7-day backups, bucket kept."),
    ConfigKey("domain", "string", "",
              "Public hostname of the server. Empty: the Elastic IP itself, with a short-lived IP certificate."),
    ConfigKey("hostedZoneId", "string", "",
              "Route 53 zone of domain: creates the A record and uses DNS-01 for the certificate."),
    ConfigKey("acmeEmail", "string", "",
              "Contact email for the Let's Encrypt account (optional)."),
    ConfigKey("tls", "string", "letsencrypt",
              "letsencrypt: HTTPS with a Let's Encrypt certificate. off: plain HTTP on port 80."),
    ConfigKey("adminUsername", "string", "admin",
              "MLflow basic-auth administrator; the password is generated and exported as a secret."),
    ConfigKey("clientAccess", "boolean", False,
              "Create a read-only IAM user for clients that read the artifact bucket directly."),
    ConfigKey("hosts", "integer", 1,
              "1: one host with an Elastic IP. 2 to 10: a fleet behind a load balancer (needs domain, hostedZoneId)."),
    ConfigKey("jobRunner", "boolean", False,
              "Run MLflow's job runner for GenAI jobs started from the UI (judges, evaluations, issue "
              f"detection, online scoring); needs {_JOB_RUNNER_SMALLEST.memory_mib // 1024} GiB of memory "
              f"({_JOB_RUNNER_SMALLEST.name}) or more."),
    ConfigKey("defaultPermission", "string", "READ",
              "What users may do with experiments and models others created: READ, or NO_PERMISSIONS "
              "(private unless granted)."),
    ConfigKey("extraAllowedOrigins", "array", [],
              "More browser origins (scheme://host[:port]) the UI may write from, e.g. a reverse proxy's "
              "https://mlflow.corp.example; localhost origins are always accepted."),
    ConfigKey("monitoring", "boolean", True,
              "Logs and metrics in CloudWatch, a health check of /health from outside and one dashboard "
              "(about $6 a month for dev, see README Cost); false: none of it."),
    ConfigKey("alertEmail", "string", "",
              "Email address that alarms notify (server unreachable, 5xx answers, memory, disk, database); "
              "needs monitoring. Empty: no alarms."),
    ConfigKey("logRetentionDays", "integer", 30,
              "Days CloudWatch Logs keeps the hosts' logs: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365 "
              "or one of CloudWatch's longer periods (400 to 3653)."),
    ConfigKey("hostReadyTimeoutMinutes", "integer", 20,
              "How long pulumi up waits for a new single host to report healthy before it fails, leaving "
              "the old host serving (5 to 180)."),
    ConfigKey("imageRefresh", "string", "",
              "Any new value (a date, say) moves the hosts to the newest Ubuntu 24.04 image on the next "
              "pulumi up; until then the image recorded at the first deploy stays."),
    ConfigKey("auth", "string", "basic",
              "basic: MLflow's users and passwords (mlflow-aws users). oidc: sign in with the company's "
              "identity provider (the oidc* keys)."),
    ConfigKey("oidcIssuer", "string", "",
              "With auth oidc: the identity provider's issuer URL (https); the server reads its "
              "/.well-known/openid-configuration."),
    ConfigKey("oidcClientId", "string", "",
              "With auth oidc: the client ID this server is registered under at the identity provider."),
    ConfigKey("oidcClientSecret", "string", "",
              "With auth oidc: the client's secret; set it with pulumi config set --secret. It reaches the host "
              "only through an SSM SecureString."),
    ConfigKey("oidcAdminGroup", "string", "",
              "With auth oidc: the identity provider group whose members are MLflow administrators."),
    ConfigKey("oidcAllowedGroups", "array", [],
              "With auth oidc: groups whose members may sign in (members of oidcAdminGroup always may)."),
    ConfigKey("oidcGroupsClaim", "string", "groups",
              "With auth oidc: the ID token claim listing the user's groups (cognito:groups for Amazon Cognito)."),
    ConfigKey("oidcScopes", "string", "openid email profile",
              "With auth oidc: the scopes the server asks for, space-separated; openid is required."),
)
CONFIG_KEY_NAMES = tuple(key.name for key in CONFIG_KEYS)


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    region: str
    instance_type: instance_types.InstanceType
    mlflow_version: str
    allowed_cidrs: tuple[str, ...]
    ssh_cidrs: tuple[str, ...]
    ssh_key_name: str
    vpc_cidr: str
    db_instance_class: str
    db_engine_version: str
    db_allocated_storage_gb: int
    db_multi_az: bool
    protect_data: bool
    domain: str
    hosted_zone_id: str
    acme_email: str
    tls: TlsMode
    admin_username: str
    client_access: bool
    hosts: int = 1

    @property
    def fleet(self) -> bool:
        """Whether the hosts run behind a load balancer (hosts >= 2) instead of one Elastic IP."""
        return self.hosts >= FLEET_MIN_HOSTS
    job_runner: bool = False
    default_permission: str = "READ"
    extra_allowed_origins: tuple[str, ...] = ()
    monitoring: bool = True
    alert_email: str = ""
    log_retention_days: int = 30
    host_ready_timeout_minutes: int = 20
    image_refresh: str = ""
    auth: AuthMode = "basic"
    oidc: OidcSettings | None = None  # exactly when auth is "oidc"; its client secret is not here

    @property
    def ssm_prefix(self) -> str:
        return f"/{self.project}/{self.stack}"

    @property
    def ssh_enabled(self) -> bool:
        return bool(self.ssh_cidrs)


class ConfigError(ValueError):
    """Every problem found in a stack's configuration, one per line."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"stack {stack!r} has {len(problems)} configuration problem(s); nothing was created:\n{lines}"
        )


def _set_hint(key: str, example: str) -> str:
    return f"fix: pulumi config set {key} {example}"


class _Reader:
    """Turns raw values into typed ones, collecting a problem per bad key instead of stopping."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.problems: list[str] = []
        self._defaults = {key.name: key.default for key in CONFIG_KEYS}

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def _value(self, key: str) -> Any:
        value = self.raw.get(key)
        return self._defaults[key] if value is None else value

    def string(self, key: str) -> str:
        value = self._value(key)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problem(f"{key}: expected a string, got {type(value).__name__} {value!r}")
            return str(self._defaults[key])
        return str(value).strip()

    def boolean(self, key: str) -> bool:
        value = self._value(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        self.problem(f"{key}: expected true or false, got {value!r}; {_set_hint(key, 'true')}")
        return bool(self._defaults[key])

    def integer(self, key: str) -> int | None:
        value = self._value(key)
        if isinstance(value, bool):
            self.problem(f"{key}: expected a whole number, got the boolean {value!r}")
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
            return int(value)
        self.problem(f"{key}: expected a whole number, got {value!r}; {_set_hint(key, '20')}")
        return None

    def string_list(self, key: str) -> list[str] | None:
        value = self._value(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                self.problem(
                    f"{key}: expected a list of strings, got the plain string {value!r}; "
                    f"fix: pulumi config set --path '{key}[0]' {value.strip() or '<value>'}"
                )
                return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(
                f"{key}: expected a list of strings, got {type(value).__name__} {value!r}; "
                f"fix: pulumi config set --path '{key}[0]' <value>"
            )
            return None
        return [item.strip() for item in value]


_EXACT_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)((?:rc|\.post|\.dev)\d+)?$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_DB_CLASS = re.compile(r"^db\.[a-z0-9-]+\.[a-z0-9]+$")
_ENGINE_VERSION = re.compile(r"^(\d+)(\.\d+)?$")
_ADMIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{2,63}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
_ORIGIN = re.compile(r"^(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$")


def _ipv4_networks(reader: _Reader, key: str, values: list[str]) -> tuple[str, ...]:
    networks: list[str] = []
    for value in values:
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError as error:
            hint = ""
            with contextlib.suppress(ValueError):
                hint = f" (did you mean {ipaddress.ip_network(value, strict=False)}?)"
            reader.problem(f"{key}: {value!r} is not an IPv4 CIDR like 203.0.113.0/24{hint}: {error}")
            continue
        if network.version != 4:
            reader.problem(f"{key}: {value!r} is IPv6; the host has only an IPv4 address, use IPv4 CIDRs")
            continue
        networks.append(str(network))
    # A CIDR listed twice would be a duplicate security group rule, which AWS refuses.
    return tuple(dict.fromkeys(networks))


def normalise_domain(value: str) -> str:
    return value.strip().lower().rstrip(".")


def _check_domain(reader: _Reader, value: str) -> str:
    domain = normalise_domain(value)
    if not domain:
        return ""
    if "://" in domain or "/" in domain:
        reader.problem(f"domain: {value!r} looks like a URL; give the bare hostname, e.g. mlflow.example.com")
        return ""
    if ":" in domain:
        reader.problem(f"domain: {value!r} has a port; give the bare hostname, the server uses 80 and 443")
        return ""
    labels = domain.split(".")
    if (len(domain) > 253 or len(labels) < 2 or labels[-1].isdigit()
            or not all(_HOST_LABEL.match(label) for label in labels)):
        reader.problem(
            f"domain: {value!r} is not a hostname (letters, digits and hyphens in dot-separated labels, "
            "at least two labels, no spaces, not an IP address), e.g. mlflow.example.com"
        )
        return ""
    return domain


def _check_version(reader: _Reader, value: str) -> str:
    match = _EXACT_VERSION.match(value)
    if not match:
        reader.problem(
            f"mlflowVersion: {value!r} is not an exact version; give one release like 3.17.2 "
            "(no ranges, no 'latest', so every boot installs the same server)"
        )
        return value
    if tuple(int(part) for part in match.groups()[:3]) < MIN_MLFLOW_VERSION:
        minimum = ".".join(str(part) for part in MIN_MLFLOW_VERSION)
        reader.problem(
            f"mlflowVersion: {value} is older than {minimum}, the first release with the --allowed-hosts "
            "and CORS protection this server relies on"
        )
    return value


def _check_origins(reader: _Reader, values: list[str]) -> tuple[str, ...]:
    origins: list[str] = []
    for value in values:
        origin = value.lower().rstrip("/")
        match = _ORIGIN.match(origin)
        port = match.group(3) if match else None
        if not match or (port is not None and not 1 <= int(port) <= 65535):
            reader.problem(
                f"extraAllowedOrigins: {value!r} is not a browser origin; give scheme://host[:port] with no "
                "path, e.g. https://mlflow.corp.example:8443"
            )
            continue
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


def _check_vpc(reader: _Reader, value: str) -> str:
    networks = _ipv4_networks(reader, "vpcCidr", [value])
    if not networks:
        return value
    network = ipaddress.ip_network(networks[0])
    if not network.is_private:
        reader.problem(f"vpcCidr: {value} is not a private range; use 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
    if not MIN_VPC_PREFIX <= network.prefixlen <= MAX_VPC_PREFIX:
        reader.problem(
            f"vpcCidr: {value} is a /{network.prefixlen}; it must be /{MIN_VPC_PREFIX} to /{MAX_VPC_PREFIX} "
            "so that it holds one public and two private subnets of at least /26"
        )
    return networks[0]


def _check_hosts(
    reader: _Reader, *, domain: str, hosted_zone_id: str, tls: str, ssh_cidrs: tuple[str, ...]
) -> int | None:
    hosts = reader.integer("hosts")
    if hosts is None:
        return None
    if not 1 <= hosts <= MAX_HOSTS:
        reader.problem(f"hosts: {hosts} is outside 1 to {MAX_HOSTS}; fix: pulumi config set hosts 2")
        return None
    if hosts < FLEET_MIN_HOSTS:
        return hosts
    # The load balancer's certificate comes from ACM, validated by a record in the zone: no domain,
    # no certificate (ACM issues none for an IP address or a load balancer's own DNS name).
    for key, value, example in (("domain", domain, "mlflow.example.com"),
                                ("hostedZoneId", hosted_zone_id, "Z0123456789ABCDEFGHIJ")):
        if not value:
            reader.problem(
                f"{key}: required with hosts {hosts} (a fleet behind a load balancer, whose ACM certificate "
                f"is validated through the Route 53 zone of domain); {_set_hint(key, example)}, or set hosts 1"
            )
    if tls == "off":
        reader.problem(f"tls: off with hosts {hosts}; the load balancer always serves HTTPS with an ACM "
                       "certificate for domain; unset tls, or set hosts 1")
    if ssh_cidrs:
        reader.problem(f"sshCidrs: set with hosts {hosts}; fleet hosts admit only the load balancer, "
                       "reach them with SSM Session Manager; unset sshCidrs and sshKeyName, or set hosts 1")
    # MLflow's job runner keeps its queue per server: two hosts would each run every job.
    if _truthy(reader.raw.get("jobRunner")):
        reader.problem(
            f"jobRunner: true runs MLflow's job runner on every host, and hosts {hosts} would run each job "
            "more than once; set jobRunner false with a fleet, or set hosts 1"
        )
    return hosts


_GROUP = re.compile(r"^[^,\s](?:[^,]*[^,\s])?$")
_CLAIM = re.compile(r"^[^\s,]{1,255}$")
_SCOPE = re.compile(r"^[!#-\[\]-~]+$")  # RFC 6749 scope-token: visible ASCII but '"' and '\\'
_CLIENT_ID = re.compile(r"^\S{1,255}$")


def _check_issuer(reader: _Reader, value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if value.rstrip("/").endswith("/.well-known/openid-configuration"):
        reader.problem(f"oidcIssuer: {value!r} is the discovery document's URL; give the issuer itself, e.g. "
                       f"{value.rstrip('/')[: -len('/.well-known/openid-configuration')]}")
    elif parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
        reader.problem(
            f"oidcIssuer: {value!r} is not an https issuer URL like https://login.example.com/tenant (no query, "
            "no fragment); the server reads its discovery document over TLS, so http is not accepted"
        )
    return value


def _check_groups(reader: _Reader, key: str, values: list[str]) -> tuple[str, ...]:
    # The plugin reads its group settings as comma-separated lists, so a name with a comma cannot be said.
    for value in values:
        if not _GROUP.match(value):
            reader.problem(f"{key}: {value!r} is not a group name the server can match: it must be non-empty, "
                           "without a comma or surrounding spaces")
    return tuple(dict.fromkeys(values))


def _check_oidc(reader: _Reader, *, secret_set: bool, tls: str, fleet: bool, mlflow_version: str) -> OidcSettings:
    """The oidc* keys, required with auth oidc (and then checked); with auth basic they are ignored."""
    issuer = reader.string("oidcIssuer")
    client_id = reader.string("oidcClientId")
    admin_group = reader.string("oidcAdminGroup")
    allowed = reader.string_list("oidcAllowedGroups")
    groups_claim = reader.string("oidcGroupsClaim")
    scopes = " ".join(reader.string("oidcScopes").split())
    examples = {"oidcIssuer": "https://login.example.com/tenant", "oidcClientId": "0oa1b2c3d4",
                "oidcAdminGroup": "mlflow-admins"}
    for key, value in (("oidcIssuer", issuer), ("oidcClientId", client_id), ("oidcAdminGroup", admin_group)):
        if not value:
            reader.problem(f"{key}: required with auth oidc; {_set_hint(key, examples[key])}")
    if not secret_set:
        reader.problem("oidcClientSecret: required with auth oidc, as a secret; "
                       "fix: pulumi config set --secret oidcClientSecret <the client secret>")
    if allowed == []:
        reader.problem("oidcAllowedGroups: empty with auth oidc, so only admins could sign in; give the groups "
                       "whose members may: pulumi config set --path 'oidcAllowedGroups[0]' mlflow-users")
    if issuer:
        _check_issuer(reader, issuer)
    if client_id and not _CLIENT_ID.match(client_id):
        reader.problem(f"oidcClientId: {client_id!r} has a space; give the client ID exactly as the identity "
                       "provider shows it")
    if admin_group:
        _check_groups(reader, "oidcAdminGroup", [admin_group])
    allowed_groups = _check_groups(reader, "oidcAllowedGroups", allowed or [])
    if not _CLAIM.match(groups_claim):
        reader.problem(f"oidcGroupsClaim: {groups_claim!r} is not a claim name (no spaces or commas), e.g. groups "
                       "or cognito:groups")
    tokens = scopes.split()
    if "openid" not in tokens or not all(_SCOPE.match(token) for token in tokens):
        reader.problem(f"oidcScopes: {scopes!r} must be space-separated scopes including openid, e.g. "
                       "'openid email profile'")
    version = _EXACT_VERSION.match(mlflow_version)
    if version and not pins.OIDC_MIN_MLFLOW <= tuple(int(part) for part in version.groups()[:3]) < pins.OIDC_MAX_MLFLOW:
        reader.problem(
            f"auth: oidc with mlflowVersion {mlflow_version}; mlflow-oidc-auth {pins.MLFLOW_OIDC_AUTH_VERSION} needs "
            "MLflow 3.16.0 or newer, before 4; set mlflowVersion to such a release, or use auth basic"
        )
    # Jobs sign their AI gateway calls as the user with a per-start token that only basic-auth accepts
    # (mlflow/genai/scorers/job.py, mlflow/server/auth/__init__.py); mlflow-oidc-auth has no such path.
    if _truthy(reader.raw.get("jobRunner")):
        reader.problem("jobRunner: true with auth oidc; MLflow's jobs sign their AI gateway calls with a token only "
                       "its basic-auth accepts, so mlflow-oidc-auth would refuse every one; set jobRunner false, "
                       "or use auth basic")
    if tls == "off" and not fleet:
        reader.problem(
            "auth: oidc with tls off; identity providers accept an http:// redirect URI only for localhost, and "
            "the login's session cookie would cross plain HTTP; unset tls (letsencrypt), or use auth basic"
        )
    return OidcSettings(issuer=issuer, client_id=client_id, admin_group=admin_group,
                        allowed_groups=allowed_groups, groups_claim=groups_claim, scopes=scopes)


def _check_secret_keys(reader: _Reader, secret_keys: frozenset[str]) -> None:
    """A secret key set in clear text is refused: its value would sit readable in Pulumi.<stack>.yaml."""
    for key in SECRET_KEYS:
        value = reader.raw.get(key)
        if value not in (None, "") and key not in secret_keys:
            reader.problem(f"{key}: set in clear text, where anyone who reads the stack file reads it; "
                           f"fix: pulumi config set --secret {key} <value> (and rotate it at the identity provider)")


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def load_config(raw: Mapping[str, Any], *, project: str, stack: str, region: str | None,
                secret_keys: Collection[str] = ()) -> StackConfig:
    """Validate `raw` (key -> value; missing keys take their defaults) into a StackConfig. `secret_keys`:
    the keys of `raw` whose value was set as a secret (SECRET_KEYS' values never reach the StackConfig)."""
    reader = _Reader(raw)
    unknown = sorted(set(raw) - set(CONFIG_KEY_NAMES))
    for key in unknown:
        reader.problem(
            f"{key}: unknown key (set to {raw[key]!r}); accepted keys are {', '.join(CONFIG_KEY_NAMES)}"
        )

    if not region:
        reader.problem("aws:region: not set; fix: pulumi config set aws:region eu-west-1")
    elif not _REGION.match(region):
        reader.problem(f"aws:region: {region!r} is not an AWS region name like eu-west-1")

    instance_name = reader.string("instanceType")
    instance = instance_types.lookup(instance_name)
    if instance is None:
        reader.problem(
            f"instanceType: {instance_name!r} is not a known instance type; use a current general purpose "
            "type such as t3.small, t3.medium, t4g.small or m7i.large"
        )
    elif instance.memory_mib < instance_types.MIN_SERVER_MEMORY_MIB:
        reader.problem(
            f"instanceType: {instance_name} has {instance.memory_mib} MiB of memory; the server needs at least "
            f"{instance_types.MIN_SERVER_MEMORY_MIB} MiB (t3.micro or larger)"
        )

    mlflow_version = _check_version(reader, reader.string("mlflowVersion"))

    allowed_raw = reader.string_list("allowedCidrs")
    allowed = _ipv4_networks(reader, "allowedCidrs", allowed_raw) if allowed_raw is not None else ()
    if allowed_raw == []:
        reader.problem("allowedCidrs: empty, so nobody could reach the server; give at least one CIDR")
    ssh_raw = reader.string_list("sshCidrs")
    ssh = _ipv4_networks(reader, "sshCidrs", ssh_raw) if ssh_raw is not None else ()
    if any(ipaddress.ip_network(cidr).prefixlen == 0 for cidr in ssh):
        reader.problem("sshCidrs: 0.0.0.0/0 opens SSH to the whole internet; give your own range, or use SSM")
    ssh_key_name = reader.string("sshKeyName")
    if ssh_key_name and ssh_raw == []:
        reader.problem(f"sshKeyName: {ssh_key_name!r} is set without sshCidrs, so nobody could use it; "
                       "set sshCidrs too, or unset it")
    if ssh and not ssh_key_name:
        reader.problem(f"sshCidrs: {', '.join(ssh)} is set without sshKeyName, so port 22 would open with "
                       "no key on the host; set sshKeyName to an existing EC2 key pair, or unset sshCidrs")

    vpc_cidr = _check_vpc(reader, reader.string("vpcCidr"))

    db_class = reader.string("dbInstanceClass")
    if not _DB_CLASS.match(db_class):
        reader.problem(f"dbInstanceClass: {db_class!r} is not an RDS class like db.t4g.micro or db.m7g.large")
    engine_version = reader.string("dbEngineVersion")
    engine_match = _ENGINE_VERSION.match(engine_version)
    if not engine_match or engine_match.group(1) not in SUPPORTED_POSTGRES_MAJORS:
        reader.problem(
            f"dbEngineVersion: {engine_version!r} is not a supported PostgreSQL version; "
            f"accepted majors are {', '.join(SUPPORTED_POSTGRES_MAJORS)} (optionally with a minor, e.g. 17.6)"
        )
    storage = reader.integer("dbAllocatedStorageGb")
    if storage is not None and not MIN_STORAGE_GB <= storage <= MAX_STORAGE_GB:
        reader.problem(
            f"dbAllocatedStorageGb: {storage} is outside RDS's range for gp3 storage, "
            f"{MIN_STORAGE_GB} to {MAX_STORAGE_GB}"
        )

    domain = _check_domain(reader, reader.string("domain"))
    hosted_zone_id = reader.string("hostedZoneId")
    if hosted_zone_id and not _ZONE_ID.match(hosted_zone_id):
        reader.problem(f"hostedZoneId: {hosted_zone_id!r} is not a Route 53 zone id like Z0123456789ABCDEFGHIJ")
    if hosted_zone_id and not domain:
        reader.problem(f"hostedZoneId: {hosted_zone_id!r} is set without domain; "
                       "set domain to the name to create in that zone")

    acme_email = reader.string("acmeEmail")
    if acme_email and not _EMAIL.match(acme_email):
        reader.problem(f"acmeEmail: {acme_email!r} is not an email address like ops@example.com")

    tls = reader.string("tls")
    if tls not in TLS_MODES:
        reader.problem(f"tls: {tls!r} is not accepted; use one of {', '.join(TLS_MODES)}")
    world = "0.0.0.0/0" in allowed
    if tls == "letsencrypt" and allowed and not world and not hosted_zone_id:
        reader.problem(
            f"allowedCidrs: {', '.join(allowed)} is restricted, but tls is letsencrypt without hostedZoneId, "
            "and Let's Encrypt's HTTP-01 check must reach port 80 from the internet; "
            "set domain and hostedZoneId (DNS-01 through Route 53), or allow 0.0.0.0/0, or set tls off"
        )

    admin = reader.string("adminUsername")
    if not _ADMIN_NAME.match(admin):
        reader.problem(
            f"adminUsername: {admin!r} must be 3 to 64 characters, start with a letter, and use only "
            "letters, digits, '.', '_' and '-'"
        )

    db_multi_az = reader.boolean("dbMultiAz")
    protect_data = reader.boolean("protectData")
    client_access = reader.boolean("clientAccess")
    hosts = _check_hosts(reader, domain=domain, hosted_zone_id=hosted_zone_id, tls=tls, ssh_cidrs=ssh)
    job_runner = reader.boolean("jobRunner")
    if job_runner and instance is not None and instance.memory_mib < JOB_RUNNER_MIN_MEMORY_MIB:
        reader.problem(
            f"jobRunner: true needs at least {JOB_RUNNER_MIN_MEMORY_MIB} MiB of memory (MLflow's job runner "
            f"alone takes ~{sizing.JOB_RUNNER_MIB} MiB), but instanceType {instance.name} has "
            f"{instance.memory_mib} MiB; fix: pulumi config set instanceType "
            f"{instance_types.smallest_with(JOB_RUNNER_MIN_MEMORY_MIB, instance.name.split('.')[0]).name}, "
            "or set jobRunner false"
        )
    default_permission = reader.string("defaultPermission")
    if default_permission not in DEFAULT_PERMISSIONS:
        reader.problem(
            f"defaultPermission: {default_permission!r} is not accepted; use READ (everyone reads "
            "everything) or NO_PERMISSIONS (users see only what they created or were granted)"
        )
    origins_raw = reader.string_list("extraAllowedOrigins")
    extra_origins = _check_origins(reader, origins_raw) if origins_raw is not None else ()
    ready_timeout = reader.integer("hostReadyTimeoutMinutes")
    if ready_timeout is not None and not MIN_READY_TIMEOUT_MINUTES <= ready_timeout <= MAX_READY_TIMEOUT_MINUTES:
        reader.problem(
            f"hostReadyTimeoutMinutes: {ready_timeout} is outside {MIN_READY_TIMEOUT_MINUTES} to "
            f"{MAX_READY_TIMEOUT_MINUTES}; a first boot alone takes 3 to 5 minutes; "
            f"{_set_hint('hostReadyTimeoutMinutes', '20')}"
        )
        ready_timeout = None
    image_refresh = reader.string("imageRefresh")
    if not _IMAGE_REFRESH.match(image_refresh):
        reader.problem(
            f"imageRefresh: {image_refresh!r} is not a plain label (letters, digits, '.', '_' and '-', up to 64); "
            f"{_set_hint('imageRefresh', '2027-01-15')}"
        )

    monitoring = reader.boolean("monitoring")
    alert_email = reader.string("alertEmail")
    if alert_email and not _EMAIL.match(alert_email):
        reader.problem(f"alertEmail: {alert_email!r} is not an email address like oncall@example.com")
    elif alert_email and not monitoring:
        reader.problem(
            f"alertEmail: {alert_email!r} is set with monitoring false, and the alarms watch the metrics that "
            "monitoring collects; set monitoring true, or unset alertEmail"
        )
    retention = reader.integer("logRetentionDays")
    if retention is not None and retention not in LOG_RETENTION_DAYS:
        nearest = min(LOG_RETENTION_DAYS, key=lambda days: abs(days - retention))
        reader.problem(
            f"logRetentionDays: {retention} is not a period CloudWatch Logs keeps logs for; accepted are "
            f"{', '.join(str(days) for days in LOG_RETENTION_DAYS)}; {_set_hint('logRetentionDays', str(nearest))}"
        )
    _check_secret_keys(reader, frozenset(secret_keys))
    auth = reader.string("auth")
    oidc = None
    if auth not in AUTH_MODES:
        reader.problem(f"auth: {auth!r} is not accepted; use basic (MLflow's own users and passwords) or oidc "
                       "(the company's identity provider)")
    elif auth == "oidc":
        # Set in clear text is reported once, by _check_secret_keys.
        secret_set = reader.raw.get("oidcClientSecret") not in (None, "")
        oidc = _check_oidc(reader, secret_set=secret_set, tls=tls, mlflow_version=mlflow_version,
                           fleet=hosts is not None and hosts >= FLEET_MIN_HOSTS)

    if reader.problems:
        raise ConfigError(stack, reader.problems)
    assert instance is not None and storage is not None and region is not None
    return StackConfig(
        project=project,
        stack=stack,
        region=region,
        instance_type=instance,
        mlflow_version=mlflow_version,
        allowed_cidrs=allowed,
        ssh_cidrs=ssh,
        ssh_key_name=ssh_key_name,
        vpc_cidr=vpc_cidr,
        db_instance_class=db_class,
        db_engine_version=engine_version,
        db_allocated_storage_gb=storage,
        db_multi_az=db_multi_az,
        protect_data=protect_data,
        domain=domain,
        hosted_zone_id=hosted_zone_id,
        acme_email=acme_email,
        tls=tls,  # type: ignore[arg-type]  # checked against TLS_MODES above
        admin_username=admin,
        client_access=client_access,
        hosts=hosts if hosts is not None else 1,
        job_runner=job_runner,
        default_permission=default_permission,
        extra_allowed_origins=extra_origins,
        monitoring=monitoring,
        alert_email=alert_email,
        log_retention_days=retention if retention is not None else 30,
        host_ready_timeout_minutes=ready_timeout if ready_timeout is not None else 20,
        image_refresh=image_refresh,
        auth=auth,  # type: ignore[arg-type]  # checked against AUTH_MODES above
        oidc=oidc,
    )


def from_pulumi() -> StackConfig:
    """Read the running program's configuration (Pulumi hands every value over as a string)."""
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

    project_config = pulumi.Config()
    # Every key set in the project's namespace, so that a misspelt key is reported instead of ignored.
    namespace = f"{pulumi.get_project()}:"
    set_keys = {
        key[len(namespace):] for key in (*get_config_env(), *CONFIG.get()) if key.startswith(namespace)
    }
    raw: dict[str, Any] = {}
    secret_keys: list[str] = []
    for key in (*CONFIG_KEY_NAMES, *sorted(set_keys - set(CONFIG_KEY_NAMES))):
        value = project_config.get(key)
        if value is None:
            continue
        # A secret's value stays out of the StackConfig (the program reads it as a secret Output).
        raw[key] = _SECRET_PLACEHOLDER if key in SECRET_KEYS and value else value
        if is_config_secret(f"{namespace}{key}"):
            secret_keys.append(key)
    region = pulumi.Config("aws").get("region")
    return load_config(raw, project=pulumi.get_project(), stack=pulumi.get_stack(), region=region,
                       secret_keys=secret_keys)


class _PulumiYamlLoader(yaml.SafeLoader):
    """YAML 1.2 booleans, as the Pulumi CLI reads stack files: `tls: off` is the string "off", not false."""


_PulumiYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PulumiYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def from_stack_files(project_dir: str, stack: str) -> StackConfig:
    """Read Pulumi.<stack>.yaml the way the Pulumi CLI would, for tools that run without it."""
    import pathlib

    path = pathlib.Path(project_dir) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise ConfigError(stack, [f"{path.name}: no such file; create the stack with: pulumi stack init {stack}"])
    document = yaml.load(path.read_text(), Loader=_PulumiYamlLoader) or {}
    values: Mapping[str, Any] = document.get("config") or {}
    raw: dict[str, Any] = {}
    secret_keys: list[str] = []
    region: str | None = None
    for full_key, value in values.items():
        namespace, _, key = str(full_key).partition(":")
        if namespace == "aws" and key == "region":
            region = str(value)
        elif namespace == PROJECT:
            if isinstance(value, dict) and "secure" in value:
                if key not in SECRET_KEYS:
                    raise ConfigError(stack, [f"{key}: is a secret in {path.name}, but only "
                                              f"{', '.join(SECRET_KEYS)} is one; set it in clear text"])
                # Encrypted with the stack's passphrase: known to be set, never read here.
                raw[key] = _SECRET_PLACEHOLDER
                secret_keys.append(key)
                continue
            raw[key] = value
    return load_config(raw, project=PROJECT, stack=stack, region=region, secret_keys=secret_keys)

