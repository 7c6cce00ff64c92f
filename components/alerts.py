"""Alerts (`alertEmail`): an SNS topic with the person's email subscribed, and the alarms that notify it,
each saying in words what is wrong and what to look at. Every alarm notifies again when its cause is
gone (OK actions), so a person is never left with an alarm that no longer holds.

The server-unreachable alarm watches the Route 53 health check, whose metric exists in us-east-1 only;
a CloudWatch alarm evaluates metrics of its own Region and notifies topics of its own Region, so that
alarm, and a second topic with the same subscription, live in us-east-1 when the stack does not
(pulumi-aws v7's per-resource `region`: one provider, the same default tags). AWS then sends the person a
second confirmation email, once.

Missing data is decided per alarm, with the reason next to it: a metric that stops is either the problem
itself (the health check, the certificate's report) or the absence of the problem (no traffic, no 5xx).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

import naming
from components.reachability import METRICS_REGION
from userdata import monitoring

# 5xx answers (nginx's or MLflow's) in five minutes that page a person: more than a client retrying.
SERVER_ERRORS_THRESHOLD = 10
HOST_USED_PERCENT_THRESHOLD = 85
# RDS storage autoscaling grows the volume when less than 10% is free; less than 5% of the first
# allocation free means it has reached its ceiling or cannot keep up.
FREE_STORAGE_FRACTION = 0.05
# CPU credits left on a burstable database (db.t*): 30 credits are half an hour of one busy vCPU. RDS runs
# T3/T4g classes in Unlimited mode, so an empty balance keeps its speed and bills surplus credits.
CPU_CREDITS_THRESHOLD = 30
# The host reports the certificate's days left hourly, after the renewal check (userdata/tls.py): three
# hours in a row under the threshold, or without a report, alarm. One missed report (a reboot) does not.
CERTIFICATE_PERIOD_SECONDS = 3600
CERTIFICATE_SILENT_HOURS = 3
# Longer than a new host's first boot (install, configure) during an instance refresh, when the load
# balancer rightly counts it unhealthy until MLflow answers.
UNHEALTHY_HOST_MINUTES = 20


@dataclass(frozen=True)
class AlarmSpec:
    key: str  # the alarm's name is <project>-<stack>-<key>
    description: str
    namespace: str
    metric: str
    dimensions: Mapping[str, pulumi.Input[str]]
    statistic: str
    period: int
    evaluation_periods: int
    comparison: str
    threshold: float
    # breaching: silence is the problem; notBreaching: silence is its absence.
    treat_missing_data: str
    region: str | None = None  # another Region than the stack's (the health check's metric)
    datapoints_to_alarm: int | None = None  # of evaluation_periods; None: all of them


@dataclass
class DatabaseFacts:
    instance_id: pulumi.Input[str]
    instance_class: str
    allocated_storage_gb: int


@dataclass
class AlertsArgs:
    project: str
    stack: str
    region: str
    email: str
    health_check_id: pulumi.Input[str]
    database: DatabaseFacts
    certificate: bool  # the host orders its certificate and reports its days left
    # A fleet's target group and load balancer (their ARN suffixes, CloudWatch's dimensions).
    target_group: tuple[pulumi.Input[str], pulumi.Input[str]] | None = None
    host_metrics: Sequence[monitoring.HostMetric] = field(default_factory=lambda: monitoring.HOST_METRICS)


def burstable(instance_class: str) -> bool:
    return instance_class.startswith("db.t")


def alarm_specs(args: AlertsArgs) -> list[AlarmSpec]:
    namespace = naming.metrics_namespace(args.project, args.stack)
    db = {"DBInstanceIdentifier": args.database.instance_id}
    specs = [
        AlarmSpec(
            "unreachable",
            "MLflow does not answer /health from the internet (Route 53's checkers, over the stack's URL): "
            "users cannot reach the server. Look at the host's state in EC2, then `journalctl -u mlflow` "
            "and `journalctl -u nginx` in the stack's log groups.",
            "AWS/Route53", "HealthCheckStatus", {"HealthCheckId": args.health_check_id},
            "Minimum", 60, 3, "LessThanThreshold", 1,
            # Route 53 reports every minute while the check exists: no report proves nothing is up.
            "breaching", region=METRICS_REGION,
        ),
        AlarmSpec(
            "server-errors",
            f"More than {SERVER_ERRORS_THRESHOLD - 1} requests in five minutes were answered with a 5xx "
            "status (MLflow failing, or down behind nginx). The stack's access log group has each request; "
            "the mlflow log group has the server's errors.",
            namespace, naming.SERVER_ERRORS_METRIC, {}, "Sum", 300, 1, "GreaterThanOrEqualToThreshold",
            SERVER_ERRORS_THRESHOLD,
            # No requests, no datapoints: a quiet server has no errors.
            "notBreaching",
        ),
    ]
    memory, disk = args.host_metrics[0], args.host_metrics[1]
    specs += [
        AlarmSpec(
            "memory",
            f"A host has used more than {HOST_USED_PERCENT_THRESHOLD}% of its memory for 15 minutes; MLflow's "
            "workers are killed when it runs out. Consider a larger instanceType.",
            namespace, memory.name, dict(memory.dimensions), "Maximum", 300, 3, "GreaterThanThreshold",
            HOST_USED_PERCENT_THRESHOLD,
            # The agent stops reporting when the host is gone or replaced: the unreachable alarm covers a
            # silent host, and this one must not stay in alarm for a host that no longer exists.
            "notBreaching",
        ),
        AlarmSpec(
            "disk",
            f"A host's root disk is more than {HOST_USED_PERCENT_THRESHOLD}% full. MLflow spools every "
            "artifact passing through it there; when it fills, uploads and downloads through the server fail.",
            namespace, disk.name, dict(disk.dimensions), "Maximum", 300, 2, "GreaterThanThreshold",
            HOST_USED_PERCENT_THRESHOLD, "notBreaching",  # as memory
        ),
        AlarmSpec(
            "database-storage",
            f"The database has less than {FREE_STORAGE_FRACTION:.0%} of its "
            f"{args.database.allocated_storage_gb} GiB free, below where storage autoscaling grows it: it has "
            "reached its ceiling or cannot keep up. Raise dbAllocatedStorageGb before writes fail.",
            "AWS/RDS", "FreeStorageSpace", db, "Minimum", 300, 2, "LessThanThreshold",
            args.database.allocated_storage_gb * FREE_STORAGE_FRACTION * 1024**3,
            # RDS reports every minute while the instance runs; a stopped instance has no storage to lose.
            "notBreaching",
        ),
    ]
    if burstable(args.database.instance_class):
        specs.append(AlarmSpec(
            "database-cpu-credits",
            f"The database ({args.database.instance_class}) has fewer than {CPU_CREDITS_THRESHOLD} CPU credits "
            "left after a long busy spell: RDS keeps it at full speed and bills the surplus credits. A "
            "sustained load needs a larger or non-burstable dbInstanceClass.",
            "AWS/RDS", "CPUCreditBalance", db, "Minimum", 300, 3, "LessThanThreshold", CPU_CREDITS_THRESHOLD,
            "notBreaching",  # as the database's storage
        ))
    if args.certificate:
        specs.append(AlarmSpec(
            "certificate",
            f"The TLS certificate has less than {naming.CERTIFICATE_DAYS_THRESHOLD} days left, or the host has "
            f"not reported it for {CERTIFICATE_SILENT_HOURS} hours: renewal is failing or no longer runs. See "
            "the certificate log group (mlflow-certificate-renewal); clients refuse the server once it expires.",
            namespace, naming.CERTIFICATE_DAYS_LEFT_METRIC, {}, "Minimum", CERTIFICATE_PERIOD_SECONDS,
            CERTIFICATE_SILENT_HOURS, "LessThanThreshold", naming.CERTIFICATE_DAYS_THRESHOLD,
            # The report follows every hourly renewal check, whatever its outcome: hours of silence mean the
            # renewal timer no longer runs, or the host cannot reach CloudWatch, and the days left keep
            # falling unseen (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html).
            "breaching", datapoints_to_alarm=CERTIFICATE_SILENT_HOURS,
        ))
    if args.target_group is not None:
        target_group, balancer = args.target_group
        specs.append(AlarmSpec(
            "unhealthy-hosts",
            f"A host of the fleet has failed the load balancer's /health check for {UNHEALTHY_HOST_MINUTES} "
            "minutes; the Auto Scaling group replaces it, and this alarm says if that is not happening.",
            "AWS/ApplicationELB", "UnHealthyHostCount", {"TargetGroup": target_group, "LoadBalancer": balancer},
            "Maximum", 60, UNHEALTHY_HOST_MINUTES, "GreaterThanOrEqualToThreshold", 1,
            # The load balancer reports every minute while targets are registered; none: nothing unhealthy.
            "notBreaching",
        ))
    return specs


class Alerts(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    alarm_names: list[str]

    def __init__(self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:monitoring:Alerts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        topics: dict[str | None, aws.sns.Topic] = {}
        for region in dict.fromkeys([None, *(spec.region for spec in alarm_specs(args))]):
            if region == args.region:
                continue
            suffix = f"-{region}" if region else ""
            topic = aws.sns.Topic(
                f"{name}-alerts{suffix}",
                display_name=f"MLflow {args.stack}"[:100],
                region=region,
                opts=child,
            )
            # AWS emails the address a confirmation link; nothing is delivered until it is followed.
            aws.sns.TopicSubscription(
                f"{name}-alerts-email{suffix}",
                topic=topic.arn,
                protocol="email",
                endpoint=args.email,
                region=region,
                opts=child,
            )
            topics[region] = topic

        self.alarm_names = []
        for spec in alarm_specs(args):
            topic = topics[None if spec.region == args.region else spec.region]
            alarm_name = f"{args.project}-{args.stack}-{spec.key}"
            aws.cloudwatch.MetricAlarm(
                f"{name}-{spec.key}",
                name=alarm_name,
                alarm_description=spec.description,
                namespace=spec.namespace,
                metric_name=spec.metric,
                dimensions=dict(spec.dimensions) or None,
                statistic=spec.statistic,
                period=spec.period,
                evaluation_periods=spec.evaluation_periods,
                datapoints_to_alarm=spec.datapoints_to_alarm,
                comparison_operator=spec.comparison,
                threshold=spec.threshold,
                treat_missing_data=spec.treat_missing_data,
                alarm_actions=[topic.arn],
                ok_actions=[topic.arn],
                region=spec.region,
                opts=child,
            )
            self.alarm_names.append(alarm_name)

        self.topic_arn = topics[None].arn
        self.register_outputs({"topic_arn": self.topic_arn, "alarm_names": self.alarm_names})
