"""What the host sends to CloudWatch (`monitoring: true`): nginx's access log as JSON, and the Amazon
CloudWatch agent, which ships that log and the journal of mlflow.service, nginx and the certificate units
to the stack's log groups, and the host's memory, root disk and CPU to the stack's namespace.

The agent is AWS's own package at a pinned release (pins.CLOUDWATCH_AGENT_RELEASE), its signature
checked against AWS's published key, installed by its own timer-driven unit: MLflow never waits for it,
and a host that cannot reach AWS's bucket keeps serving while the install backs off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import naming
from userdata import layout, pins
from userdata.files import HostFile
from userdata.settings import HostSettings
from userdata.template import TEMPLATES, fill

TEMPLATE_DIR = TEMPLATES / "monitoring"

AGENT_CONFIG = f"{layout.HOST_SETTINGS_DIR}/cloudwatch-agent.json"
INSTALL_SCRIPT = f"{layout.SBIN_DIR}/mlflow-cloudwatch-agent-install"
INSTALL_UNIT_NAME = "mlflow-cloudwatch-agent.service"
INSTALL_SERVICE = f"{layout.SYSTEMD_DIR}/{INSTALL_UNIT_NAME}"
INSTALL_TIMER = f"{layout.SYSTEMD_DIR}/mlflow-cloudwatch-agent.timer"
STATE_DIR = "/var/lib/mlflow-cloudwatch-agent"
FAILED_RUNS_FILE = f"{STATE_DIR}/failed-runs"
INSTALLED_MARKER = f"{STATE_DIR}/installed"
# AWS's per-Region copy of the agent's bucket (the same objects as the global one, nearer the host).
DOWNLOAD_BASE = "https://amazoncloudwatch-agent-{region}.s3.{region}.amazonaws.com"
DOWNLOAD_TIMEOUT_SECONDS = 300
# A download that did not succeed: EX_TEMPFAIL, which the unit counts as success (the timer retries).
TEMPFAIL_EXIT_CODE = 75
# Between runs: the timer fires this long after the last run; failed downloads double the wait, up to 6 h.
RETRY_INTERVAL_SECONDS = 900
MAX_RUN_BACKOFF_SECONDS = 6 * 3600

ACCESS_LOG = f"{layout.NGINX_LOG_DIR}/mlflow-access.log"  # rotated with the others by Debian's logrotate
ACCESS_LOG_CONF = f"{layout.NGINX_DIR}/conf.d/mlflow-access-log.conf"
ACCESS_LOG_FORMAT_NAME = "mlflow_json"
NGINX_ERROR_LOG = f"{layout.NGINX_LOG_DIR}/error.log"
# nginx's access log fields: (JSON key, nginx variable, whether it is always a number). The metric
# filters read `status` and `request_time`; the query string is left out ($uri), the user name is in.
ACCESS_LOG_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("time", "$time_iso8601", False),
    ("remote_addr", "$remote_addr", False),
    ("user", "$remote_user", False),
    ("method", "$request_method", False),
    ("path", "$uri", False),
    ("status", "$status", True),
    ("request_time", "$request_time", True),
    ("upstream_time", "$upstream_response_time", False),
    ("bytes_sent", "$body_bytes_sent", True),
    ("request_length", "$request_length", True),
    ("user_agent", "$http_user_agent", False),
)

# uvicorn's line for each /health request, which nginx does not log either: Route 53's checkers ask
# about 46,000 times a day, a fleet's load balancer more; shipping them would cost more than the rest.
# The agent drops a journal entry whose body matches it (its journaldfilter: OTTL IsMatch(body, ...)).
HEALTH_CHECK_LINE = '"GET /health HTTP/'

METRICS_INTERVAL_SECONDS = 60
# Ubuntu's cloud images format the root volume ext4; the disk metric carries the file system type.
ROOT_FILESYSTEM = "ext4"


@dataclass(frozen=True)
class HostMetric:
    """A metric the agent publishes in the stack's namespace: its name and dimensions as CloudWatch
    shows them. No host name or instance dimension: a replaced host, or every host of a fleet, adds to
    the same series, so the stack's alarms and dashboard never point at a host that is gone."""

    name: str
    dimensions: tuple[tuple[str, str], ...]
    label: str


MEMORY = HostMetric("mem_used_percent", (), "Memory used (%)")
ROOT_DISK = HostMetric("disk_used_percent", (("path", "/"), ("fstype", ROOT_FILESYSTEM)),
                       "Root disk used, the artifact spool (%)")
CPU = HostMetric("cpu_usage_active", (("cpu", "cpu-total"),), "CPU busy (%)")
HOST_METRICS = (MEMORY, ROOT_DISK, CPU)


def runs_certbot(*, tls: str, behind_load_balancer: bool) -> bool:
    """Whether the host obtains its own certificate (and reports its days left)."""
    return tls == "letsencrypt" and not behind_load_balancer


def _runs_certbot(s: HostSettings) -> bool:
    return runs_certbot(tls=s.tls, behind_load_balancer=s.behind_load_balancer)


def access_log_format() -> str:
    fields = ",".join(f'"{key}":{value}' if number else f'"{key}":"{value}"'
                      for key, value, number in ACCESS_LOG_FIELDS)
    return "{" + fields + "}"


def access_log_conf() -> str:
    return fill("nginx-access-log.conf", TEMPLATE_DIR, format_name=ACCESS_LOG_FORMAT_NAME,
                format=access_log_format(), access_log=ACCESS_LOG)


def _group(s: HostSettings, group: naming.LogGroup) -> str:
    return naming.log_group_name(s.project, s.stack, group)


def agent_config(s: HostSettings) -> dict[str, Any]:
    """The agent's JSON configuration (amazon-cloudwatch-agent/translator/config/schema.json). Log
    streams are named by instance, so a fleet's hosts and a replaced host each write their own. No
    `retention_in_days`: the stack sets retention on the groups it creates, and the agent would need
    logs:PutRetentionPolicy for it."""
    stream = "{instance_id}"
    journals = [
        {"log_group_name": _group(s, naming.SERVER_LOG), "log_stream_name": stream, "units": ["mlflow.service"],
         "filters": [{"type": "exclude", "expression": HEALTH_CHECK_LINE}]},
        {"log_group_name": _group(s, naming.NGINX_LOG), "log_stream_name": f"{stream}/journal",
         "units": [layout.NGINX_UNIT_NAME]},
    ]
    if _runs_certbot(s):
        journals.append({"log_group_name": _group(s, naming.CERTIFICATE_LOG), "log_stream_name": stream,
                         "units": ["mlflow-certificate.service", "mlflow-certificate-renewal.service"]})
    files = [
        {"file_path": ACCESS_LOG, "log_group_name": _group(s, naming.ACCESS_LOG), "log_stream_name": stream},
        {"file_path": NGINX_ERROR_LOG, "log_group_name": _group(s, naming.NGINX_LOG),
         "log_stream_name": f"{stream}/error.log"},
    ]
    return {
        "agent": {"region": s.region, "metrics_collection_interval": METRICS_INTERVAL_SECONDS,
                  "run_as_user": "cwagent", "omit_hostname": True},
        "metrics": {
            "namespace": naming.metrics_namespace(s.project, s.stack),
            "metrics_collected": {
                "mem": {"measurement": [MEMORY.name]},
                "disk": {"measurement": [ROOT_DISK.name], "resources": ["/"], "drop_device": True},
                "cpu": {"measurement": [CPU.name], "totalcpu": True},
            },
        },
        "logs": {"logs_collected": {"files": {"collect_list": files}, "journald": {"collect_list": journals}}},
    }


def log_groups(*, certificate: bool) -> tuple[naming.LogGroup, ...]:
    """The log groups the hosts write: the certificate's only where a host runs certbot."""
    return tuple(group for group in naming.LOG_GROUPS if group != naming.CERTIFICATE_LOG or certificate)


def install_script(s: HostSettings) -> str:
    return fill(
        "cloudwatch-agent-install.sh", TEMPLATE_DIR,
        region=s.region,
        state_file=FAILED_RUNS_FILE,
        installed_marker=INSTALLED_MARKER,
        run_backoff_seconds=str(RETRY_INTERVAL_SECONDS),
        max_run_backoff_seconds=str(MAX_RUN_BACKOFF_SECONDS),
        fingerprint=pins.CLOUDWATCH_AGENT_KEY_FINGERPRINT,
        config_file=AGENT_CONFIG,
        release=pins.CLOUDWATCH_AGENT_RELEASE,
        download_base=DOWNLOAD_BASE.format(region=s.region),
        download_timeout_seconds=str(DOWNLOAD_TIMEOUT_SECONDS),
        tempfail=str(TEMPFAIL_EXIT_CODE),
        access_log=ACCESS_LOG,
    )


def monitoring_files(s: HostSettings) -> list[HostFile]:
    if not s.monitoring:
        return []
    # Three downloads, each retried twice, then the package's install and the agent's start.
    run_timeout = 3 * 3 * DOWNLOAD_TIMEOUT_SECONDS + 300
    return [
        # Before the nginx package: its first start already writes the JSON log.
        HostFile(ACCESS_LOG_CONF, access_log_conf()),
        HostFile(AGENT_CONFIG, json.dumps(agent_config(s), indent=1, sort_keys=True) + "\n"),
        HostFile(INSTALL_SCRIPT, install_script(s), permissions="0755", defer=True),
        HostFile(INSTALL_SERVICE, fill("mlflow-cloudwatch-agent.service", TEMPLATE_DIR,
                                       install_script=INSTALL_SCRIPT, tempfail=str(TEMPFAIL_EXIT_CODE),
                                       run_timeout_seconds=str(run_timeout)), defer=True),
        HostFile(INSTALL_TIMER, fill("mlflow-cloudwatch-agent.timer", TEMPLATE_DIR,
                                     retry_interval_seconds=str(RETRY_INTERVAL_SECONDS)), defer=True),
    ]


def monitoring_boot_commands(s: HostSettings) -> list[str]:
    if not s.monitoring:
        return []
    return [
        "systemctl daemon-reload",
        "systemctl enable --now mlflow-cloudwatch-agent.timer",
    ]
