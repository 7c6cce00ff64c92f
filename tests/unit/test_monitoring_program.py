"""Monitoring under mocks: the log groups, the request metrics, the health check from outside, the alarms
that tell a person (their metric, threshold, periods and actions), the dashboard, and what the host's
role may write."""

from __future__ import annotations

import json
from typing import Any

import pytest

import naming
from components import alerts
from host_programs import certificate_state
from naming import Outputs
from tests.support.pulumi_program import HOST_LAUNCH, PUBLIC_IP, ProgramRun, run_program
from userdata import layout, monitoring, tls
from userdata.bundle import HostBundle, files_of

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
METRIC_FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
RDS = "aws:rds/instance:Instance"
HOST_FILES_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
EMAIL = "oncall@example.com"
FLEET = {"hosts": 2, "domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABC"}
NAMESPACE = "mlflow-aws/dev"


@pytest.fixture(scope="module")
def dev() -> ProgramRun:
    return run_program("dev")


@pytest.fixture(scope="module")
def alerted() -> ProgramRun:
    return run_program("dev", {"alertEmail": EMAIL})


@pytest.fixture(scope="module")
def alerted_fleet() -> ProgramRun:
    return run_program("dev", {"alertEmail": EMAIL, **FLEET})


def alarm(run: ProgramRun, key: str) -> dict[str, Any]:
    (found,) = [a for a in run.of_type(ALARM) if a.inputs.get("name") == f"mlflow-aws-dev-{key}"]
    return found.inputs


def alarm_keys(run: ProgramRun) -> set[str]:
    return {a.inputs["name"].removeprefix("mlflow-aws-dev-") for a in run.of_type(ALARM) if "name" in a.inputs}


def topic_arns(run: ProgramRun) -> dict[str, str]:
    """Region ("" for the stack's) -> the mocked ARN of that Region's alert topic."""
    return {t.inputs.get("region", ""): f"arn:aws:mock:eu-west-1:123456789012:{t.name}" for t in run.of_type(TOPIC)}


def host_policy(run: ProgramRun) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = json.loads(run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])[
        "Statement"]
    return statements


def host_files(run: ProgramRun) -> dict[str, str]:
    """Path -> content of every file the hosts get: the object the program uploads for their bootstrap
    (components/host_files.py; one per stack, a single host's or the fleet's)."""
    bundle = HostBundle(run.one(HOST_FILES_OBJECT).inputs["content"].encode("ascii"))
    return {file.path: file.content for file in files_of(bundle)}


def agent_config(run: ProgramRun) -> dict[str, Any]:
    files = host_files(run)
    if monitoring.AGENT_CONFIG not in files:
        raise ValueError("no agent configuration in the host's files")
    return json.loads(files[monitoring.AGENT_CONFIG])  # type: ignore[no-any-return]


# --- log groups and their metrics ------------------------------------------------------------------


def test_one_log_group_per_source_kept_for_the_configured_days() -> None:
    run = run_program("dev", {"logRetentionDays": 90})
    groups = {g.inputs["name"]: g.inputs["retentionInDays"] for g in run.of_type(LOG_GROUP)}
    assert groups == {f"/mlflow-aws/dev/{source}": 90 for source in ("mlflow", "nginx", "certificate", "access")}


def test_log_retention_defaults_to_thirty_days(dev: ProgramRun) -> None:
    assert {g.inputs["retentionInDays"] for g in dev.of_type(LOG_GROUP)} == {30}


def test_destroy_deletes_the_log_groups_of_a_stack_that_does_not_protect_its_data(dev: ProgramRun) -> None:
    assert all(not g.inputs.get("skipDestroy") for g in dev.of_type(LOG_GROUP))


def test_destroy_keeps_the_log_groups_of_a_stack_that_protects_its_data() -> None:
    prod = run_program("prod")
    assert [g.inputs["skipDestroy"] for g in prod.of_type(LOG_GROUP)] == [True] * 4


def test_a_fleet_has_no_certificate_log_group_since_its_hosts_run_no_certbot(alerted_fleet: ProgramRun) -> None:
    names = {g.inputs["name"] for g in alerted_fleet.of_type(LOG_GROUP)}
    assert names == {"/mlflow-aws/dev/mlflow", "/mlflow-aws/dev/nginx", "/mlflow-aws/dev/access"}


def test_the_access_log_becomes_request_count_5xx_count_and_latency_in_the_stacks_namespace(dev: ProgramRun) -> None:
    filters = {f.inputs["metricTransformation"]["name"]: f.inputs for f in dev.of_type(METRIC_FILTER)}
    assert set(filters) == {"Requests", "ServerErrors", "Latency"}
    assert {f["logGroupName"] for f in filters.values()} == {"/mlflow-aws/dev/access"}
    assert {f["metricTransformation"]["namespace"] for f in filters.values()} == {NAMESPACE}
    assert filters["ServerErrors"]["pattern"] == "{ $.status >= 500 }"
    assert filters["ServerErrors"]["metricTransformation"]["defaultValue"] == "0"
    assert filters["Latency"]["metricTransformation"]["value"] == "$.request_time"
    assert filters["Latency"]["metricTransformation"]["unit"] == "Seconds"


# --- the host's role -------------------------------------------------------------------------------


def test_the_host_may_write_only_the_stacks_log_groups(dev: ProgramRun) -> None:
    statements = [s for s in host_policy(dev) if any(a.startswith("logs:") for a in s["Action"])]
    assert [sorted(s["Action"]) for s in statements] == [["logs:CreateLogStream", "logs:PutLogEvents"]]
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/mlflow-aws/dev/"
    assert sorted(statements[0]["Resource"]) == sorted(
        f"{arn}{source}{tail}" for source in ("mlflow", "nginx", "certificate", "access") for tail in ("", ":*")
    )


def test_the_host_may_put_metrics_only_in_the_stacks_namespace(dev: ProgramRun) -> None:
    (statement,) = [s for s in host_policy(dev) if "cloudwatch:PutMetricData" in s["Action"]]
    assert statement["Action"] == ["cloudwatch:PutMetricData"]
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}


def test_the_host_profile_is_ready_only_once_its_log_groups_exist(dev: ProgramRun) -> None:
    host = dev.one(HOST_LAUNCH)  # the instance is launched by the HostLaunch (components/host_launch.py)
    for group in dev.of_type(LOG_GROUP):
        assert dev.depends_on(host, group), f"the host may boot before {group.name} exists"


# --- from outside ----------------------------------------------------------------------------------


def test_route53_checks_health_over_https_at_the_elastic_ip(dev: ProgramRun) -> None:
    check = dev.one(HEALTH_CHECK).inputs
    assert (check["type"], check["port"], check["resourcePath"]) == ("HTTPS", 443, "/health")
    assert check["ipAddress"] == PUBLIC_IP and "fqdn" not in check
    assert check["enableSni"] is False  # an address has no name to send
    assert (check["requestInterval"], check["failureThreshold"]) == (30, 3)


def test_route53_checks_a_domain_by_name_with_sni() -> None:
    run = run_program("dev", {"domain": "mlflow.example.com"})
    check = run.one(HEALTH_CHECK).inputs
    assert (check["type"], check["fqdn"], check["enableSni"]) == ("HTTPS", "mlflow.example.com", True)
    assert "ipAddress" not in check


def test_route53_checks_plain_http_when_tls_is_off() -> None:
    check = run_program("dev", {"tls": "off"}).one(HEALTH_CHECK).inputs
    assert (check["type"], check["port"], check["enableSni"]) == ("HTTP", 80, False)


def test_a_fleet_is_checked_through_its_load_balancer_by_name(alerted_fleet: ProgramRun) -> None:
    check = alerted_fleet.one(HEALTH_CHECK).inputs
    assert (check["type"], check["fqdn"], check["port"]) == ("HTTPS", "mlflow.example.com", 443)


# --- alerts to a person ----------------------------------------------------------------------------


def test_without_alert_email_there_is_no_topic_and_no_alarm_of_its_own(dev: ProgramRun) -> None:
    assert not dev.of_type(TOPIC) and not dev.of_type(SUBSCRIPTION)
    assert {a.name for a in dev.of_type(ALARM)} == {"dev-recover", "dev-reboot"}


def test_alert_email_is_subscribed_in_the_stacks_region_and_in_us_east_1(alerted: ProgramRun) -> None:
    subscriptions = {s.inputs.get("region", ""): s.inputs for s in alerted.of_type(SUBSCRIPTION)}
    assert set(subscriptions) == {"", "us-east-1"}
    assert {(s["protocol"], s["endpoint"]) for s in subscriptions.values()} == {("email", EMAIL)}
    assert set(topic_arns(alerted)) == {"", "us-east-1"}


def test_a_stack_in_us_east_1_has_one_topic() -> None:
    run = run_program("dev", {"aws:region": "us-east-1", "alertEmail": EMAIL})
    assert len(run.of_type(TOPIC)) == 1 and len(run.of_type(SUBSCRIPTION)) == 1
    assert {tuple(a.inputs["alarmActions"]) for a in run.of_type(ALARM) if "name" in a.inputs} == {
        ("arn:aws:mock:us-east-1:123456789012:dev-alerts",)}


def test_every_alarm_tells_the_person_when_it_fires_and_when_it_resolves(alerted: ProgramRun) -> None:
    arns = topic_arns(alerted)
    for found in alerted.of_type(ALARM):
        inputs = found.inputs
        topic = arns[inputs.get("region", "")]
        assert topic in inputs["alarmActions"], found.name
        assert inputs["okActions"] == [topic], found.name
        assert len(inputs["alarmDescription"]) > 60, f"{found.name} does not say what is wrong"


def test_the_stack_alarms_on_what_breaks_a_single_host(alerted: ProgramRun) -> None:
    assert alarm_keys(alerted) == {"unreachable", "server-errors", "memory", "disk", "database-storage",
                                   "database-cpu-credits", "certificate"}


def test_unreachable_alarms_after_three_minutes_of_failed_health_checks(alerted: ProgramRun) -> None:
    inputs = alarm(alerted, "unreachable")
    assert (inputs["namespace"], inputs["metricName"], inputs["region"]) == (
        "AWS/Route53", "HealthCheckStatus", "us-east-1")
    assert inputs["dimensions"] == {"HealthCheckId": "dev-reachable-id"}
    assert (inputs["statistic"], inputs["period"], inputs["evaluationPeriods"]) == ("Minimum", 60, 3)
    assert (inputs["comparisonOperator"], inputs["threshold"]) == ("LessThanThreshold", 1)
    assert inputs["treatMissingData"] == "breaching"
    assert inputs["alarmActions"] == ["arn:aws:mock:eu-west-1:123456789012:dev-alerts-us-east-1"]


def test_server_errors_alarm_counts_5xx_answers_in_five_minutes(alerted: ProgramRun) -> None:
    inputs = alarm(alerted, "server-errors")
    assert (inputs["namespace"], inputs["metricName"], inputs["statistic"]) == (NAMESPACE, "ServerErrors", "Sum")
    assert (inputs["period"], inputs["evaluationPeriods"], inputs["threshold"]) == (300, 1, 10)
    assert inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert inputs["treatMissingData"] == "notBreaching"
    assert "dimensions" not in inputs


@pytest.mark.parametrize(("key", "metric", "dimensions", "periods"), [
    ("memory", "mem_used_percent", None, 3),
    ("disk", "disk_used_percent", {"path": "/", "fstype": "ext4"}, 2),
])
def test_host_memory_and_root_disk_alarm_above_85_percent(
    alerted: ProgramRun, key: str, metric: str, dimensions: dict[str, str] | None, periods: int
) -> None:
    inputs = alarm(alerted, key)
    assert (inputs["namespace"], inputs["metricName"], inputs.get("dimensions")) == (NAMESPACE, metric, dimensions)
    assert (inputs["statistic"], inputs["period"], inputs["evaluationPeriods"]) == ("Maximum", 300, periods)
    assert (inputs["comparisonOperator"], inputs["threshold"]) == ("GreaterThanThreshold", 85)
    assert inputs["treatMissingData"] == "notBreaching"


def test_database_storage_alarms_below_five_percent_of_its_allocation(alerted: ProgramRun) -> None:
    inputs = alarm(alerted, "database-storage")
    assert (inputs["namespace"], inputs["metricName"]) == ("AWS/RDS", "FreeStorageSpace")
    assert inputs["dimensions"] == {"DBInstanceIdentifier": alerted.one(RDS).inputs["identifier"]}
    assert inputs["threshold"] == 20 * 0.05 * 1024**3
    assert (inputs["statistic"], inputs["comparisonOperator"]) == ("Minimum", "LessThanThreshold")


def test_cpu_credits_are_watched_only_on_a_burstable_database() -> None:
    run = run_program("dev", {"alertEmail": EMAIL, "dbInstanceClass": "db.m7g.large"})
    assert "database-cpu-credits" not in alarm_keys(run)


def test_cpu_credits_alarm_on_the_default_burstable_database(alerted: ProgramRun) -> None:
    inputs = alarm(alerted, "database-cpu-credits")
    assert (inputs["metricName"], inputs["statistic"], inputs["threshold"]) == ("CPUCreditBalance", "Minimum", 30)


def test_certificate_alarms_after_three_hours_under_two_days_left_or_unreported(alerted: ProgramRun) -> None:
    inputs = alarm(alerted, "certificate")
    assert (inputs["namespace"], inputs["metricName"], inputs.get("dimensions")) == (
        NAMESPACE, naming.CERTIFICATE_DAYS_LEFT_METRIC, None)
    assert (inputs["statistic"], inputs["period"]) == ("Minimum", 3600)
    assert (inputs["evaluationPeriods"], inputs["datapointsToAlarm"]) == (3, 3)
    assert (inputs["comparisonOperator"], inputs["threshold"]) == ("LessThanThreshold", 2)
    assert inputs["treatMissingData"] == "breaching"


@pytest.mark.parametrize("overrides", [{"tls": "off"}, FLEET], ids=["tls-off", "fleet"])
def test_no_certificate_alarm_where_no_host_orders_a_certificate(overrides: dict[str, Any]) -> None:
    assert "certificate" not in alarm_keys(run_program("dev", {"alertEmail": EMAIL, **overrides}))


def test_the_status_check_recoveries_notify_the_person_too(alerted: ProgramRun) -> None:
    topic = topic_arns(alerted)[""]
    for action in ("recover", "reboot"):
        (found,) = [a for a in alerted.of_type(ALARM) if a.name == f"dev-{action}"]
        assert found.inputs["alarmActions"] == [f"arn:aws:automate:eu-west-1:ec2:{action}", topic]
        assert found.inputs["okActions"] == [topic]
        assert found.inputs["treatMissingData"] == "missing"


def test_a_fleet_alarms_on_a_host_unhealthy_for_twenty_minutes(alerted_fleet: ProgramRun) -> None:
    inputs = alarm(alerted_fleet, "unhealthy-hosts")
    assert (inputs["namespace"], inputs["metricName"]) == ("AWS/ApplicationELB", "UnHealthyHostCount")
    assert inputs["dimensions"] == {"TargetGroup": "targetgroup/dev-hosts/0123456789abcdef",
                                    "LoadBalancer": "app/dev-alb/0123456789abcdef"}
    assert (inputs["period"], inputs["evaluationPeriods"], inputs["threshold"]) == (
        60, alerts.UNHEALTHY_HOST_MINUTES, 1)
    assert "certificate" not in alarm_keys(alerted_fleet)


# --- the dashboard ---------------------------------------------------------------------------------


def produced_metrics(run: ProgramRun) -> set[tuple[str, str, str]]:
    """(namespace, name, dimensions as JSON) of every metric this stack makes exist, each found where it is
    made: the metric filters, the agent's configuration in the host's files, the host's certificate report
    (its settings, and the renewal unit that runs it), and AWS's own metrics of the stack's database,
    health check and load balancer."""
    def key(namespace: str, name: str, dimensions: dict[str, str]) -> tuple[str, str, str]:
        return namespace, name, json.dumps(dimensions, sort_keys=True)

    found = {key(f.inputs["metricTransformation"]["namespace"], f.inputs["metricTransformation"]["name"], {})
             for f in run.of_type(METRIC_FILTER)}
    config = agent_config(run)
    namespace = config["metrics"]["namespace"]
    for plugin, settings in config["metrics"]["metrics_collected"].items():
        for measurement in settings["measurement"]:
            name = measurement if measurement.startswith(f"{plugin}_") else f"{plugin}_{measurement}"
            if plugin == "disk":  # telegraf's disk tags less "mode" (and "device", dropped here)
                for path in settings["resources"]:
                    found.add(key(namespace, name, {"path": path, "fstype": monitoring.ROOT_FILESYSTEM}))
            elif plugin == "cpu":
                found.add(key(namespace, name, {"cpu": "cpu-total"}))
            else:
                found.add(key(namespace, name, {}))
    files = host_files(run)
    section = json.loads(files[layout.HOST_SETTINGS]).get(certificate_state.SECTION)
    if section and f"ExecStopPost=-{tls.STATE_SCRIPT} report" in files.get(tls.RENEWAL_SERVICE, ""):
        found.add(key(section["metrics_namespace"], section["days_left_metric"], {}))
    database = {"DBInstanceIdentifier": run.one(RDS).inputs["identifier"]}
    found |= {key("AWS/RDS", name, database) for name in (
        "DatabaseConnections", "FreeStorageSpace", "CPUUtilization", "CPUCreditBalance")}
    found.add(key("AWS/Route53", "HealthCheckStatus", {"HealthCheckId": f"{run.one(HEALTH_CHECK).name}-id"}))
    for target_group in run.of_type("aws:lb/targetGroup:TargetGroup"):
        dimensions = {"LoadBalancer": "app/dev-alb/0123456789abcdef",
                      "TargetGroup": f"targetgroup/{target_group.name}/0123456789abcdef"}
        found |= {key("AWS/ApplicationELB", name, dimensions) for name in ("HealthyHostCount", "UnHealthyHostCount")}
    return found


def dashboard_metrics(run: ProgramRun) -> list[tuple[str, str, str]]:
    body = json.loads(run.one(DASHBOARD).inputs["dashboardBody"])
    named = []
    for widget in body["widgets"]:
        assert widget["type"] == "metric"
        for entry in widget["properties"]["metrics"]:
            fields = [item for item in entry if not isinstance(item, dict)]
            namespace, name, pairs = fields[0], fields[1], fields[2:]
            dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
            named.append((namespace, name, json.dumps(dimensions, sort_keys=True)))
    return named


@pytest.mark.parametrize("overrides", [{}, FLEET, {"tls": "off"}], ids=["single-host", "fleet", "tls-off"])
def test_every_dashboard_widget_shows_a_metric_the_stack_produces(overrides: dict[str, Any]) -> None:
    run = run_program("dev", overrides)
    shown = dashboard_metrics(run)
    assert shown
    assert set(shown) <= produced_metrics(run), set(shown) - produced_metrics(run)


def test_the_dashboard_shows_every_metric_an_alarm_watches(alerted: ProgramRun) -> None:
    shown = {(namespace, name) for namespace, name, _ in dashboard_metrics(alerted)}
    watched = {(a.inputs["namespace"], a.inputs["metricName"]) for a in alerted.of_type(ALARM) if "name" in a.inputs}
    assert watched <= shown


def test_the_health_checks_widget_reads_us_east_1(dev: ProgramRun) -> None:
    body = json.loads(dev.one(DASHBOARD).inputs["dashboardBody"])
    regions = {w["properties"]["metrics"][0][1]: w["properties"]["region"] for w in body["widgets"]}
    assert regions["HealthCheckStatus"] == "us-east-1"
    assert regions["DatabaseConnections"] == "eu-west-1"


def test_dashboard_url_opens_the_stacks_dashboard_in_the_console(dev: ProgramRun) -> None:
    assert dev.one(DASHBOARD).inputs["dashboardName"] == "mlflow-aws-dev"
    assert dev.outputs[Outputs.DASHBOARD_URL] == (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards/dashboard/mlflow-aws-dev")


# --- monitoring off --------------------------------------------------------------------------------


def test_monitoring_off_creates_none_of_it() -> None:
    run = run_program("dev", {"monitoring": False})
    for resource_type in (LOG_GROUP, METRIC_FILTER, TOPIC, HEALTH_CHECK, DASHBOARD):
        assert not run.of_type(resource_type), resource_type
    assert Outputs.DASHBOARD_URL not in run.outputs
    actions = {action for statement in host_policy(run) for action in statement["Action"]}
    assert not {a for a in actions if a.startswith(("logs:", "cloudwatch:"))}
    with pytest.raises(ValueError):  # no agent configuration in the host's files
        agent_config(run)
