from __future__ import annotations

import http.client
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from host_programs import aws, metadata
from host_programs.settings_file import SettingsError, load

PROGRAM = "mlflow-admin-restart"
SECTION = "admin_restart"


@dataclass(frozen=True)
class Settings:
    region: str
    unit: str
    admin_revision_file: Path
    behind_load_balancer: bool
    health_port: int
    drain_seconds: float
    ready_seconds: float


def read_settings(path: str) -> Settings:
    root = load(path)
    section = root.section(SECTION)
    return Settings(
        region=root.text("region"),
        unit=section.text("unit"),
        admin_revision_file=Path(section.text("admin_revision_file")),
        behind_load_balancer=section.flag("behind_load_balancer"),
        health_port=int(section.number("health_port")),
        drain_seconds=section.number("drain_seconds"),
        ready_seconds=section.number("ready_seconds"),
    )


def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    log(f"FAILED: {message}")
    sys.exit(1)


def server_running(unit: str) -> bool:
    return subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0


def started_with(settings: Settings) -> str:
    try:
        return settings.admin_revision_file.read_text().strip()
    except OSError:
        return ""


def healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def wait_healthy(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not healthy(port):
        if time.monotonic() >= deadline:
            fail(f"MLflow did not answer /health on port {port} within {seconds:.0f} s of its restart")
        time.sleep(2)


def target_groups(region: str, instance: str) -> list[str]:
    autoscaling = aws.client("autoscaling", region)
    found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance])["AutoScalingInstances"]
    if not found:
        return []
    group = found[0]["AutoScalingGroupName"]
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
    return list(groups[0].get("TargetGroupARNs", [])) if groups else []


def restart_out_of_rotation(settings: Settings) -> None:
    instance = metadata.instance_id()
    elb: Any = aws.client("elbv2", settings.region)
    arns = target_groups(settings.region, instance)
    targets = [{"Id": instance}]
    for arn in arns:
        elb.deregister_targets(TargetGroupArn=arn, Targets=targets)
        log(f"left target group {arn}; draining")
        elb.get_waiter("target_deregistered").wait(
            TargetGroupArn=arn, Targets=targets,
            WaiterConfig={"Delay": 5, "MaxAttempts": int(settings.drain_seconds // 5) + 1})
    try:
        subprocess.run(["systemctl", "restart", settings.unit], check=True)
        wait_healthy(settings.health_port, settings.ready_seconds)
    finally:
        for arn in arns:
            elb.register_targets(TargetGroupArn=arn, Targets=targets)
            log(f"rejoined target group {arn}")
    for arn in arns:
        elb.get_waiter("target_in_service").wait(
            TargetGroupArn=arn, Targets=targets,
            WaiterConfig={"Delay": 5, "MaxAttempts": int(settings.ready_seconds // 5) + 1})
        log(f"healthy again in {arn}")


def main(arguments: Sequence[str], settings_file: str) -> int:
    if len(arguments) != 1:
        fail("usage: mlflow-admin-restart '<the admin parameters' versions>'")
    revision = arguments[0]
    try:
        settings = read_settings(settings_file)
    except SettingsError as error:
        fail(str(error))
    if not server_running(settings.unit):
        log(f"{settings.unit} is not running (a first boot, or a fenced host): it reads the parameters when it starts")
        return 0
    if started_with(settings) == revision:
        log(f"the running server already has the admin's parameters at {revision}")
        return 0
    if settings.behind_load_balancer:
        restart_out_of_rotation(settings)
    else:
        subprocess.run(["systemctl", "restart", settings.unit], check=True)
    log(f"restarted {settings.unit} for the admin's parameters at {revision}")
    return 0
