"""From the stack's config and two facts only known once AWS allocates them, to the host's settings.

`pulumi up` (through TrackingHost) and `mlflow-aws userdata` both call this, so the client prints
exactly the user data the program sends.
"""

from __future__ import annotations

import dataclasses

import naming
from config import StackConfig
from userdata.settings import HostSettings


def host_settings_for(cfg: StackConfig, *, artifact_bucket: str, public_ip: str) -> HostSettings:
    single_host = HostSettings(
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


# The longest values AWS may allocate later: an S3 bucket name, an IPv4 address.
LONGEST_BUCKET, LONGEST_IP = "b" * 63, "255.255.255.255"


def user_data_problem(cfg: StackConfig) -> str | None:
    """Why the host's user data for `cfg` would not fit EC2's limit, known before anything is created (the
    bucket's name and the address come later, at their longest here); None when it fits."""
    import userdata

    size = userdata.gzipped_size(host_settings_for(cfg, artifact_bucket=LONGEST_BUCKET, public_ip=LONGEST_IP))
    if size <= userdata.EC2_USER_DATA_LIMIT:
        return None
    problem = (f"the host's user data for this configuration is {size} bytes gzipped, and EC2 accepts "
               f"{userdata.EC2_USER_DATA_LIMIT}, so nothing was created")
    if cfg.auth == "oidc":
        return (f"auth: oidc: {problem}; the host then also carries mlflow-oidc-auth's part of the configure step "
                "and of the server guard, which fit once the host's files move out of the user data (DESIGN "
                "decision 16); until then use auth basic")
    return f"{problem}; undo the last configuration change (DESIGN decision 16 moves the host's files out)"
