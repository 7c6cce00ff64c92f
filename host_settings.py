"""From the stack's config and the facts only known once AWS allocates them (two buckets' names, the
Elastic IP), to the host's settings.

`pulumi up` (through TrackingHost) and `mlflow-aws userdata` both call this, so the client prints
exactly the user data the program sends.
"""

from __future__ import annotations

import dataclasses

import naming
from components.naming_rules import database_identifier
from config import StackConfig
from userdata.settings import HostSettings


def host_settings_for(cfg: StackConfig, *, artifact_bucket: str, host_files_bucket: str, public_ip: str,
                      ) -> HostSettings:
    single_host = HostSettings(
        project=cfg.project,
        stack=cfg.stack,
        region=cfg.region,
        ssm_prefix=naming.ssm_prefix(cfg.project, cfg.stack),
        artifact_bucket=artifact_bucket,
        host_files_bucket=host_files_bucket,
        # No domain: the Elastic IP itself, with a Let's Encrypt certificate for the address.
        public_hostname=cfg.domain or public_ip,
        public_ip=public_ip,
        mlflow_version=cfg.mlflow_version,
        instance_memory_mib=cfg.instance_type.memory_mib,
        tls=cfg.tls,
        acme_email=cfg.acme_email,
        acme_dns_route53=bool(cfg.hosted_zone_id),
        job_runner=cfg.job_runner,
        default_permission=cfg.default_permission,
        extra_allowed_origins=cfg.extra_allowed_origins,
        monitoring=cfg.monitoring,
        db_identifier=database_identifier(cfg.project, cfg.stack),
        auth=cfg.auth,
        oidc=cfg.oidc,
    )
    return behind_load_balancer(single_host, cfg) if cfg.fleet else single_host


def behind_load_balancer(settings: HostSettings, cfg: StackConfig) -> HostSettings:
    """The same host, rendered for "behind a load balancer": the load balancer terminates TLS (ACM) for
    `domain`, so the host serves plain HTTP on 80, trusts X-Forwarded-* from the VPC only, runs no
    certbot (and no job runner: config refuses it with a fleet), and has no public IP of its own."""
    return dataclasses.replace(
        settings, public_hostname=cfg.domain, public_ip="", tls="off", acme_email="", acme_dns_route53=False,
        job_runner=False, load_balancer_cidr=cfg.vpc_cidr,
    )
