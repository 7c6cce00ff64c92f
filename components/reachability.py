"""ReachabilityCheck: a Route 53 health check that asks for `/health` over the stack's own URL from
Route 53's checkers around the world, so "the server is down" is seen from where its users are.

HTTPS where the stack serves TLS, with SNI when the URL has a name (the certificate of the default
stack is for its IP address, which Route 53 connects to without a name). Route 53 does not validate the
certificate: that is the certificate alarm's job (components/alerts.py). Route 53 publishes the check's
result as AWS/Route53 HealthCheckStatus in us-east-1 only, whatever the stack's Region.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws

HEALTH_PATH = "/health"
REQUEST_INTERVAL_SECONDS = 30
# Three failed checks in a row (about 90 s) make an endpoint unhealthy for a checker.
FAILURE_THRESHOLD = 3
# Route 53's health check metrics are published in US East (N. Virginia) only (Route 53 Developer Guide,
# "Monitoring health check status and getting notifications").
METRICS_REGION = "us-east-1"


@dataclass(frozen=True)
class CheckTarget:
    kind: str  # "HTTPS" or "HTTP"
    port: int
    fqdn: str | None
    ip_address: str | None


def check_target(tracking_uri: str) -> CheckTarget:
    """Where Route 53 sends its requests, from the URL users have (https://203.0.113.7, https://name)."""
    parts = urlsplit(tracking_uri)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    try:
        ipaddress.ip_address(host)
        fqdn, ip = None, host
    except ValueError:
        fqdn, ip = host, None
    return CheckTarget("HTTPS" if https else "HTTP", parts.port or (443 if https else 80), fqdn, ip)


@dataclass
class ReachabilityCheckArgs:
    tracking_uri: pulumi.Input[str]


class ReachabilityCheck(pulumi.ComponentResource):
    health_check_id: pulumi.Output[str]

    def __init__(self, name: str, args: ReachabilityCheckArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:monitoring:ReachabilityCheck", name, None, opts)
        target = pulumi.Output.from_input(args.tracking_uri).apply(check_target)
        check = aws.route53.HealthCheck(
            f"{name}-reachable",
            type=target.apply(lambda t: t.kind),
            port=target.apply(lambda t: t.port),
            fqdn=target.apply(lambda t: t.fqdn),
            ip_address=target.apply(lambda t: t.ip_address),
            # SNI carries the name; an address has none to send.
            enable_sni=target.apply(lambda t: t.kind == "HTTPS" and t.fqdn is not None),
            resource_path=HEALTH_PATH,
            request_interval=REQUEST_INTERVAL_SECONDS,
            failure_threshold=FAILURE_THRESHOLD,
            tags={"Name": f"{name}-reachable"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.health_check_id = check.id
        self.register_outputs({"health_check_id": self.health_check_id})
