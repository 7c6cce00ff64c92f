"""HostSettings: every plain value the host's user data is rendered from.

Only names, never secrets: this whole object ends up in clear in the EC2 user data. Secrets reach
the host through SSM parameters under `ssm_prefix`, read at boot through the instance role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True)
class HostSettings:
    project: str
    stack: str
    region: str
    ssm_prefix: str  # "/mlflow-aws/dev": the host reads naming.HOST_PARAMETERS below it
    artifact_bucket: str
    public_hostname: str  # the domain, or <a-b-c-d>.sslip.io
    public_ip: str
    mlflow_version: str  # exact, e.g. "3.17.2"
    instance_memory_mib: int  # sizes the MLflow workers so the instance never swaps
    tls: Literal["letsencrypt", "off"]
    acme_email: str = ""  # "" registers without an email
    acme_dns_route53: bool = False  # True when hostedZoneId is set: DNS-01 instead of HTTP-01
    acme_directory: str = LETSENCRYPT_DIRECTORY  # tests point this at pebble
    job_runner: bool = False  # MLflow's background job runner (GenAI scorers); off saves memory
    default_permission: str = "READ"  # basic-auth's default_permission: READ or NO_PERMISSIONS
    extra_allowed_origins: tuple[str, ...] = ()  # "https://localhost:8443": more origins the UI may write from

    @property
    def tracking_uri(self) -> str:
        scheme = "http" if self.tls == "off" else "https"
        return f"{scheme}://{self.public_hostname}"
