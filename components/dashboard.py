"""StackDashboard: one CloudWatch dashboard per stack, the stack's health on one page.

Rows: reachability and the requests nginx answered (from the access log's metric filters); the hosts'
memory, root disk and CPU (the CloudWatch agent); the database; and, as the stack has them, the
certificate's days left (the host's report) and a fleet's healthy and unhealthy hosts. `dashboard_body` is
a pure function of plain values, so tests read the body the stack would send.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

import naming
from components.reachability import METRICS_REGION
from userdata import monitoring

WIDGET_WIDTH = 8
WIDGET_HEIGHT = 6
PERIOD_SECONDS = 300
# The host reports the certificate's days left once an hour (userdata/tls.py, the renewal unit).
CERTIFICATE_PERIOD_SECONDS = 3600


@dataclass(frozen=True)
class DashboardFacts:
    project: str
    stack: str
    region: str
    health_check_id: str
    db_instance_id: str
    db_burstable: bool
    certificate: bool  # the host orders its certificate and reports its days left
    target_group: tuple[str, str] | None = None  # a fleet's target group and load balancer ARN suffixes


def dashboard_name(project: str, stack: str) -> str:
    """Dashboard names take letters, digits, '-' and '_' (PutDashboard)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{project}-{stack}")


def dashboard_url(region: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"


def _metric(namespace: str, name: str, dimensions: dict[str, str], **options: Any) -> list[Any]:
    entry: list[Any] = [namespace, name]
    for key, value in dimensions.items():
        entry += [key, value]
    return [*entry, options] if options else entry


def _widget(title: str, metrics: list[list[Any]], region: str, stat: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "metric",
        "width": WIDGET_WIDTH,
        "height": WIDGET_HEIGHT,
        "properties": {"title": title, "region": region, "stat": stat, "period": PERIOD_SECONDS,
                       "view": "timeSeries", "metrics": metrics, **extra},
    }


def dashboard_body(facts: DashboardFacts) -> dict[str, Any]:
    namespace = naming.metrics_namespace(facts.project, facts.stack)
    region = facts.region
    db = {"DBInstanceIdentifier": facts.db_instance_id}
    percent = {"yAxis": {"left": {"min": 0, "max": 100}}}
    widgets = [
        _widget("Reachable from the internet (1 = /health answers)",
                [_metric("AWS/Route53", "HealthCheckStatus", {"HealthCheckId": facts.health_check_id})],
                METRICS_REGION, "Minimum", period=60),
        _widget("Requests and 5xx answers (per 5 minutes)",
                [_metric(namespace, naming.REQUESTS_METRIC, {}, label="requests"),
                 _metric(namespace, naming.SERVER_ERRORS_METRIC, {}, label="5xx answers")], region, "Sum"),
        _widget("Latency (seconds)",
                [_metric(namespace, naming.LATENCY_METRIC, {}, stat=stat, label=stat)
                 for stat in ("p50", "p90", "p99")], region, "p50"),
    ]
    widgets += [
        _widget(metric.label, [_metric(namespace, metric.name, dict(metric.dimensions))], region, "Maximum",
                **percent)
        for metric in monitoring.HOST_METRICS
    ]
    widgets += [
        _widget("Database connections", [_metric("AWS/RDS", "DatabaseConnections", db)], region, "Maximum"),
        _widget("Database free storage (bytes)", [_metric("AWS/RDS", "FreeStorageSpace", db)], region, "Minimum"),
        _widget("Database CPU (%)", [_metric("AWS/RDS", "CPUUtilization", db)], region, "Average", **percent),
    ]
    if facts.db_burstable:
        widgets.append(_widget("Database CPU credits left", [_metric("AWS/RDS", "CPUCreditBalance", db)],
                               region, "Minimum"))
    if facts.certificate:
        widgets.append(_widget(
            "TLS certificate: days left", [_metric(namespace, naming.CERTIFICATE_DAYS_LEFT_METRIC, {})], region,
            "Minimum", period=CERTIFICATE_PERIOD_SECONDS,
            # Where the certificate alarm fires (components/alerts.py).
            annotations={"horizontal": [{"label": "alarm", "value": naming.CERTIFICATE_DAYS_THRESHOLD}]},
        ))
    if facts.target_group is not None:
        target_group, balancer = facts.target_group
        dimensions = {"TargetGroup": target_group, "LoadBalancer": balancer}
        widgets.append(_widget("Fleet hosts passing /health",
                               [_metric("AWS/ApplicationELB", "HealthyHostCount", dimensions, label="healthy"),
                                _metric("AWS/ApplicationELB", "UnHealthyHostCount", dimensions, label="unhealthy")],
                               region, "Maximum"))
    for index, widget in enumerate(widgets):
        widget["x"], widget["y"] = (index % 3) * WIDGET_WIDTH, (index // 3) * WIDGET_HEIGHT
    return {"widgets": widgets}


@dataclass
class StackDashboardArgs:
    project: str
    stack: str
    region: str
    health_check_id: pulumi.Input[str]
    db_instance_id: pulumi.Input[str]
    db_burstable: bool
    certificate: bool
    target_group: tuple[pulumi.Input[str], pulumi.Input[str]] | None = None


class StackDashboard(pulumi.ComponentResource):
    url: pulumi.Output[str]

    def __init__(self, name: str, args: StackDashboardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:monitoring:StackDashboard", name, None, opts)
        title = dashboard_name(args.project, args.stack)
        target_group = args.target_group or ("", "")
        body = pulumi.Output.all(args.health_check_id, args.db_instance_id, *target_group).apply(
            lambda ids: json.dumps(dashboard_body(DashboardFacts(
                project=args.project, stack=args.stack, region=args.region, health_check_id=ids[0],
                db_instance_id=ids[1], db_burstable=args.db_burstable, certificate=args.certificate,
                target_group=(ids[2], ids[3]) if args.target_group is not None else None,
            )), sort_keys=True)
        )
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=title, dashboard_body=body, opts=pulumi.ResourceOptions(parent=self)
        )
        self.url = dashboard.dashboard_name.apply(lambda dashboard_title: dashboard_url(args.region, dashboard_title))
        self.register_outputs({"url": self.url})
