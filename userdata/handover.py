"""The host's part in changing a running stack: the health report that lets the deployer move the Elastic IP
to a new single host (host_programs/health_report.py), the fence watcher that stops this host's server while
another host migrates the schemas (host_programs/fence.py), and the step the admin-restart association runs
(host_programs/admin_restart.py). Each is a host program with its section of the settings file; the first
two run as systemd units started at boot.
"""

from __future__ import annotations

from typing import Any

import naming
from host_programs import admin_restart, fence, health_report
from userdata import layout
from userdata.files import HostFile
from userdata.programs import HostProgram
from userdata.settings import HostSettings
from userdata.template import fill

HEALTH_REPORT_SCRIPT = f"{layout.SBIN_DIR}/mlflow-health-report"
HEALTH_REPORT_UNIT = f"{layout.SYSTEMD_DIR}/mlflow-health-report.service"
FENCE_SCRIPT = f"{layout.SBIN_DIR}/mlflow-fence"
FENCE_UNIT = f"{layout.SYSTEMD_DIR}/mlflow-fence.service"
# What `pulumi up` may wait for (config's MAX_READY_TIMEOUT_MINUTES, and RDS creating the database first on
# a first deploy): the report keeps trying that long.
HEALTH_REPORT_WAIT_SECONDS = 4 * 3600
HEALTH_REPORT_POLL_SECONDS = 3.0
FENCE_POLL_SECONDS = 2.0
# The admin restart behind the load balancer: the target group's deregistration delay
# (components/load_balancer.py) and a margin, then the restarted server's start (bench/RESULTS.md: ~10 s).
DRAIN_SECONDS = 120 + 60
READY_SECONDS = 300
VENV_PYTHON = f"{layout.VENV_DIR}/bin/python3"


def health_report_settings(s: HostSettings) -> dict[str, Any]:
    from userdata import tls

    certificate = {
        "certificate": f"{tls.LETSENCRYPT_DIR}/live/{s.public_hostname}/cert.pem",
        "restore_outcome": tls.RESTORE_OUTCOME,
        "https_port": tls.HTTPS_PORT,
    } if s.tls != "off" else {}
    return {
        "tag_key": naming.HEALTH_TAG,
        "healthy": naming.HEALTHY,
        "mlflow_version": s.mlflow_version,
        "http_port": layout.HTTP_PORT,
        "tls": s.tls != "off",
        "hostname": s.public_hostname,
        **certificate,
        "wait_seconds": HEALTH_REPORT_WAIT_SECONDS,
        "poll_seconds": HEALTH_REPORT_POLL_SECONDS,
    }


def fence_settings(s: HostSettings) -> dict[str, Any]:
    return {
        "state_file": layout.CONFIGURE_STATE,
        "host_id_file": layout.HOST_ID_FILE,
        "flag": layout.FENCE_FLAG,
        "unit": layout.UNIT_NAME,
        "poll_seconds": FENCE_POLL_SECONDS,
    }


def admin_restart_settings(s: HostSettings) -> dict[str, Any]:
    return {
        "unit": layout.UNIT_NAME,
        "admin_revision_file": layout.ADMIN_REVISION_FILE,
        "behind_load_balancer": s.behind_load_balancer,
        "health_port": layout.MLFLOW_PORT,
        "drain_seconds": DRAIN_SECONDS,
        "ready_seconds": READY_SECONDS,
    }


HEALTH_REPORT = HostProgram(HEALTH_REPORT_SCRIPT, VENV_PYTHON, health_report, health_report_settings)
FENCE = HostProgram(FENCE_SCRIPT, VENV_PYTHON, fence, fence_settings)
ADMIN_RESTART = HostProgram(layout.ADMIN_RESTART_SCRIPT, VENV_PYTHON, admin_restart, admin_restart_settings)


def handover_programs(s: HostSettings) -> list[HostProgram]:
    """Every host watches the fence and takes the admin restart; the single host also reports its health
    (a fleet's hosts report to the load balancer's health check)."""
    return [FENCE, ADMIN_RESTART, *([] if s.behind_load_balancer else [HEALTH_REPORT])]


def handover_files(s: HostSettings) -> list[HostFile]:
    files = [HostFile(FENCE_UNIT, fill("mlflow-fence.service", mlflow_unit=layout.UNIT_NAME,
                                       script=FENCE_SCRIPT, runtime_directory=layout.RUN_DIR.removeprefix("/run/")),
                      defer=True)]
    if not s.behind_load_balancer:
        files.append(HostFile(HEALTH_REPORT_UNIT, fill(
            "mlflow-health-report.service", mlflow_unit=layout.UNIT_NAME,
            script=HEALTH_REPORT_SCRIPT, timeout_seconds=str(HEALTH_REPORT_WAIT_SECONDS + 300)), defer=True))
    return files


def handover_units(s: HostSettings) -> list[str]:
    return [FENCE_UNIT, *([] if s.behind_load_balancer else [HEALTH_REPORT_UNIT])]


def handover_boot_commands(s: HostSettings) -> list[str]:
    """Started without waiting: both wait for MLflow's first start (After=), which installs it."""
    names = " ".join(unit.rsplit("/", 1)[1] for unit in handover_units(s))
    return [f"systemctl enable {names}", f"systemctl start --no-block {names}"]
