"""HostLogs: the log groups the hosts' CloudWatch agent writes, one per source, and the metric filters
that turn nginx's JSON access log into the stack's request metrics.

The groups are created here, not by the agent: their retention is the stack's `logRetentionDays`, the
host's role may write to exactly these (components/identity.py), and `pulumi destroy` deletes them with
the stack, unless the stack protects its data (`skip_destroy`: pulumi-aws's LogGroup then only forgets
the group, which keeps its logs until their retention ends).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

import naming

# CloudWatch Logs filter patterns on the access log's JSON (userdata/monitoring.py ACCESS_LOG_FIELDS):
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html (JSON log events).
EVERY_REQUEST_PATTERN = "{ $.status > 0 }"
SERVER_ERROR_PATTERN = "{ $.status >= 500 }"
TIMED_REQUEST_PATTERN = "{ $.request_time >= 0 }"


@dataclass(frozen=True)
class AccessLogMetric:
    metric: str
    pattern: str
    value: str  # "1" to count, or a JSON selector whose value is published
    unit: str
    # Published for every other event too: ServerErrors then has a datapoint (0) whenever there is traffic.
    default_value: float | None = None


ACCESS_LOG_METRICS: tuple[AccessLogMetric, ...] = (
    AccessLogMetric(naming.REQUESTS_METRIC, EVERY_REQUEST_PATTERN, "1", "Count"),
    AccessLogMetric(naming.SERVER_ERRORS_METRIC, SERVER_ERROR_PATTERN, "1", "Count", default_value=0),
    AccessLogMetric(naming.LATENCY_METRIC, TIMED_REQUEST_PATTERN, "$.request_time", "Seconds"),
)


@dataclass
class HostLogsArgs:
    project: str
    stack: str
    groups: tuple[naming.LogGroup, ...]
    retention_days: int
    protect_data: bool


class HostLogs(pulumi.ComponentResource):
    group_names: list[str]
    groups: list[aws.cloudwatch.LogGroup]

    def __init__(self, name: str, args: HostLogsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:monitoring:HostLogs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = naming.metrics_namespace(args.project, args.stack)

        self.groups = []
        for group in args.groups:
            log_group = aws.cloudwatch.LogGroup(
                f"{name}-{group.suffix}-log",
                name=naming.log_group_name(args.project, args.stack, group),
                retention_in_days=args.retention_days,
                skip_destroy=args.protect_data,
                opts=child,
            )
            self.groups.append(log_group)
            if group != naming.ACCESS_LOG:
                continue
            for metric in ACCESS_LOG_METRICS:
                aws.cloudwatch.LogMetricFilter(
                    f"{name}-{metric.metric.lower()}-filter",
                    name=f"{namespace} {metric.metric}",
                    log_group_name=log_group.name,
                    pattern=metric.pattern,
                    metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                        namespace=namespace, name=metric.metric, value=metric.value, unit=metric.unit,
                        default_value=None if metric.default_value is None else str(metric.default_value),
                    ),
                    opts=child,
                )

        self.group_names = [naming.log_group_name(args.project, args.stack, group) for group in args.groups]
        self.register_outputs({"group_names": self.group_names})
