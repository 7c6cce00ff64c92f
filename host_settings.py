"""From the stack's config and two facts only known once AWS allocates them, to the host's settings.

`pulumi up` (through TrackingHost) and `mlflow-aws userdata` both call this, so the client prints
exactly the user data the program sends.
"""

from __future__ import annotations

import naming
from config import StackConfig
from userdata.settings import HostSettings


def host_settings_for(cfg: StackConfig, *, artifact_bucket: str, public_ip: str) -> HostSettings:
    if cfg.fleet:
        return fleet_host_settings_for(cfg, artifact_bucket=artifact_bucket)
    return HostSettings(
        project=cfg.project,
        stack=cfg.stack,
        region=cfg.region,
        ssm_prefix=naming.ssm_prefix(cfg.project, cfg.stack),
        artifact_bucket=artifact_bucket,
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
    )


def fleet_host_settings_for(cfg: StackConfig, *, artifact_bucket: str) -> HostSettings:
    """The same host, rendered for "behind a load balancer": the load balancer terminates TLS (ACM) for
    `domain`, so the host serves plain HTTP on 80, trusts X-Forwarded-* from the VPC only, runs no
    certbot, and has no public IP of its own to name."""
    return HostSettings(
        project=cfg.project,
        stack=cfg.stack,
        region=cfg.region,
        ssm_prefix=naming.ssm_prefix(cfg.project, cfg.stack),
        artifact_bucket=artifact_bucket,
        public_hostname=cfg.domain,
        public_ip="",
        mlflow_version=cfg.mlflow_version,
        instance_memory_mib=cfg.instance_type.memory_mib,
        tls="off",
        load_balancer_cidr=cfg.vpc_cidr,
        default_permission=cfg.default_permission,
        extra_allowed_origins=cfg.extra_allowed_origins,
    )
