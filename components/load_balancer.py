"""LoadBalancer: the fleet's internet-facing Application Load Balancer, its certificate and its name.

HTTPS on 443 with an ACM certificate for `domain`, validated by a record in the Route 53 zone (ACM
renews it by itself while the record stays); port 80 only redirects to 443. One target group, HTTP on
port 80, health-checked on `/health`; the Route 53 alias for `domain` points at the load balancer once
the fleet serves: the alias takes `serving`, known only when the Auto Scaling group has its `hosts` healthy
in the target group (its wait_for_elb_capacity), so a single host going to a fleet keeps its name until the
fleet answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import address
from components.ordering import ready_when
from components.preflight import load_balancer_name
from userdata.nginx import LOAD_BALANCER_IDLE_TIMEOUT_SECONDS

HTTP_PORT = 80
HTTPS_PORT = 443
# TLS 1.3 and 1.2 with forward-secret ciphers only: AWS's recommended policy for new listeners.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
HEALTH_CHECK_PATH = "/health"
HEALTH_CHECK_INTERVAL_SECONDS = 10
HEALTH_CHECK_TIMEOUT_SECONDS = 5
HEALTHY_THRESHOLD = 2
UNHEALTHY_THRESHOLD = 3
# A host taken out of service keeps its in-flight requests this long. API calls take well under a
# second, and with S3 behind the proxy MLflow's client moves artifacts straight to S3 with presigned
# URLs (design decision 3); 120 s still lets a ~1 GB proxied transfer at 10 MB/s finish, and costs each
# replaced host of an instance refresh two minutes at most.
DEREGISTRATION_DELAY_SECONDS = 120
# A connection with no bytes flowing stays open this long: nginx waits up to 3600 s for MLflow
# (proxy_read_timeout), which answers a multi-GB upload only once it is in S3, silent until then. The
# hosts' nginx keeps its connections from the load balancer open longer (userdata/nginx.py).
IDLE_TIMEOUT_SECONDS = LOAD_BALANCER_IDLE_TIMEOUT_SECONDS
VALIDATION_RECORD_TTL_SECONDS = 60


COMPONENT_TYPE = address.FLEET_COMPONENT_TYPE


def alias_record_name(name: str) -> str:
    return f"{name}{address.FLEET_RECORD_SUFFIX}"


def single_host_record_urn(stack: str, project: str, name: str) -> str:
    return address.record_urn(stack, project, address.COMPONENT_TYPE, address.record_name(name))


@dataclass
class LoadBalancerArgs:
    serving: pulumi.Input[str]  # resolves once the fleet's hosts are healthy behind the load balancer
    domain: str
    hosted_zone_id: str
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Input[str]


class LoadBalancer(pulumi.ComponentResource):
    dns_name: pulumi.Output[str]
    target_group_arn: pulumi.Output[str]
    arn_suffix: pulumi.Output[str]
    target_group_arn_suffix: pulumi.Output[str]  # CloudWatch's TargetGroup dimension

    def __init__(self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        certificate = aws.acm.Certificate(
            f"{name}-certificate",
            domain_name=args.domain,
            validation_method="DNS",
            key_algorithm="EC_prime256v1",
            opts=child,
        )
        option = certificate.domain_validation_options.apply(lambda options: options[0])
        validation_record = aws.route53.Record(
            f"{name}-certificate-validation-record",
            zone_id=args.hosted_zone_id,
            name=option.apply(lambda o: o.resource_record_name or ""),
            type=option.apply(lambda o: o.resource_record_type or "CNAME"),
            records=[option.apply(lambda o: o.resource_record_value or "")],
            ttl=VALIDATION_RECORD_TTL_SECONDS,
            # ACM asks for the same record for every certificate of this name: a replaced certificate
            # takes over the record its predecessor created.
            allow_overwrite=True,
            opts=child,
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-certificate-validation",
            certificate_arn=certificate.arn,
            validation_record_fqdns=[validation_record.fqdn],
            opts=child,
        )

        balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            security_groups=[args.security_group_id],
            subnets=args.subnet_ids,
            idle_timeout=IDLE_TIMEOUT_SECONDS,
            # A request whose headers do not parse is refused here rather than passed to nginx.
            drop_invalid_header_fields=True,
            tags={"Name": load_balancer_name(name)},
            opts=child,
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-hosts",
            port=HTTP_PORT,
            protocol="HTTP",
            target_type="instance",
            vpc_id=args.vpc_id,
            deregistration_delay=DEREGISTRATION_DELAY_SECONDS,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                protocol="HTTP",
                port="traffic-port",
                path=HEALTH_CHECK_PATH,
                matcher="200",
                interval=HEALTH_CHECK_INTERVAL_SECONDS,
                timeout=HEALTH_CHECK_TIMEOUT_SECONDS,
                healthy_threshold=HEALTHY_THRESHOLD,
                unhealthy_threshold=UNHEALTHY_THRESHOLD,
            ),
            opts=child,
        )
        aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=balancer.arn,
            port=HTTPS_PORT,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=validation.certificate_arn,
            default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)],
            opts=child,
        )
        aws.lb.Listener(
            f"{name}-http",
            load_balancer_arn=balancer.arn,
            port=HTTP_PORT,
            protocol="HTTP",
            default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="redirect",
                redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                    protocol="HTTPS", port=str(HTTPS_PORT), status_code="HTTP_301"
                ),
            )],
            opts=child,
        )
        aws.route53.Record(
            alias_record_name(name),
            zone_id=args.hosted_zone_id,
            name=args.domain,
            type="A",
            aliases=[aws.route53.RecordAliasArgs(
                name=ready_when(balancer.dns_name, args.serving), zone_id=balancer.zone_id, evaluate_target_health=True
            )],
            allow_overwrite=False,
            # The single host's A record of the same name: `hosts: 1` -> 2 updates that record into this
            # alias in one Route 53 change, instead of creating a second record of the name beside it.
            opts=pulumi.ResourceOptions(
                parent=self, aliases=[single_host_record_urn(pulumi.get_stack(), pulumi.get_project(), name)]
            ),
        )

        self.dns_name = balancer.dns_name
        self.target_group_arn = target_group.arn
        self.arn_suffix = balancer.arn_suffix
        self.target_group_arn_suffix = target_group.arn_suffix
        self.register_outputs({"dns_name": self.dns_name, "target_group_arn": self.target_group_arn})
