"""HostSettings: every plain value the host's user data is rendered from.

Only names, never secrets: this whole object ends up in clear in the EC2 user data. Secrets reach
the host through SSM parameters under `ssm_prefix`, read at boot through the instance role.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"

AuthMode = Literal["basic", "oidc"]
AUTH_MODES: tuple[AuthMode, ...] = ("basic", "oidc")


@dataclass(frozen=True)
class OidcSettings:
    """How the server signs people in through the company's identity provider (auth: oidc), for the
    mlflow-oidc-auth plugin. No secret: the client secret reaches the host through SSM."""

    issuer: str  # "https://login.example.com/tenant": its /.well-known/openid-configuration is read
    client_id: str
    admin_group: str  # members are MLflow admins
    allowed_groups: tuple[str, ...]  # members may sign in (admins always may)
    groups_claim: str = "groups"  # the ID token claim that lists a user's groups
    scopes: str = "openid email profile"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"


@dataclass(frozen=True)
class HostSettings:
    project: str
    stack: str
    region: str
    ssm_prefix: str  # "/mlflow-aws/dev": the host reads naming.HOST_PARAMETERS below it
    artifact_bucket: str
    host_files_bucket: str  # where the program uploads the host's files (userdata.bundle)
    public_hostname: str  # the domain, or the Elastic IP itself (no domain)
    public_ip: str
    mlflow_version: str  # exact, e.g. "3.17.2"
    instance_memory_mib: int  # sizes the MLflow workers so the instance never swaps
    tls: Literal["letsencrypt", "off"]
    acme_email: str = ""  # "" registers without an email
    acme_dns_route53: bool = False  # True when hostedZoneId is set: DNS-01 instead of HTTP-01
    acme_directory: str = LETSENCRYPT_DIRECTORY  # tests point this at pebble
    job_runner: bool = False  # MLflow's background job runner (GenAI scorers); off saves memory
    # Behind a load balancer (hosts >= 2) when set: the VPC's range, the only peers whose X-Forwarded-*
    # headers nginx believes. The load balancer terminates TLS (ACM), so tls is "off" on the host.
    load_balancer_cidr: str = ""

    @property
    def behind_load_balancer(self) -> bool:
        return bool(self.load_balancer_cidr)
    default_permission: str = "READ"  # basic-auth's default_permission: READ or NO_PERMISSIONS
    # The stack's RDS instance: the configure step snapshots it before a release migrates a schema.
    db_identifier: str = ""
    extra_allowed_origins: tuple[str, ...] = ()  # "https://localhost:8443": more origins the UI may write from
    # The CloudWatch agent and nginx's JSON access log (userdata.monitoring).
    monitoring: bool = False
    auth: AuthMode = "basic"  # basic: MLflow's basic-auth; oidc: mlflow-oidc-auth with `oidc`
    oidc: OidcSettings | None = None  # set exactly when auth is "oidc"

    @property
    def tracking_uri(self) -> str:
        scheme = "http" if self.tls == "off" and not self.behind_load_balancer else "https"
        return f"{scheme}://{self.public_hostname}"

    @property
    def hostname_is_ip(self) -> bool:
        """True for the default: the server is reached, and certified, by its IP address."""
        try:
            ipaddress.ip_address(self.public_hostname)
        except ValueError:
            return False
        return True
