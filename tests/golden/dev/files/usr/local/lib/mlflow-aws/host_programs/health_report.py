from __future__ import annotations

import http.client
import socket
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from host_programs import aws, metadata
from host_programs.settings_file import SettingsError, load

PROGRAM = "mlflow-health-report"
SECTION = "health_report"
RESTORED = "restored"
REQUEST_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Settings:
    region: str
    tag_key: str
    healthy: str
    mlflow_version: str
    http_port: int
    tls: bool
    https_port: int
    hostname: str
    certificate: Path
    restore_outcome: Path
    wait_seconds: float
    poll_seconds: float


def read_settings(path: str) -> Settings:
    root = load(path)
    section = root.section(SECTION)
    tls = section.flag("tls")
    return Settings(
        region=root.text("region"),
        tag_key=section.text("tag_key"),
        healthy=section.text("healthy"),
        mlflow_version=section.text("mlflow_version"),
        http_port=int(section.number("http_port")),
        tls=tls,
        https_port=int(section.number("https_port")) if tls else 0,
        hostname=section.text("hostname"),
        certificate=Path(section.text("certificate") if tls else "/dev/null"),
        restore_outcome=Path(section.text("restore_outcome") if tls else "/dev/null"),
        wait_seconds=section.number("wait_seconds"),
        poll_seconds=section.number("poll_seconds"),
    )


def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    log(f"FAILED: {message}")
    sys.exit(1)


def http_health(port: int, hostname: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_SECONDS)
    try:
        connection.request("GET", "/health", headers={"Host": hostname})
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return f"nginx on port {port}: {error}"
    finally:
        connection.close()
    return "" if status == 200 else f"/health on port {port} answers {status}"


def https_health(settings: Settings) -> str:
    try:
        expected = ssl.PEM_cert_to_DER_cert(settings.certificate.read_text())
    except (OSError, ValueError) as error:
        return f"no certificate at {settings.certificate}: {error}"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", settings.https_port), timeout=REQUEST_TIMEOUT_SECONDS) as raw:
            server_name = None if _is_address(settings.hostname) else settings.hostname
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                served = tls.getpeercert(binary_form=True)
                request = f"GET /health HTTP/1.1\r\nHost: {settings.hostname}\r\nConnection: close\r\n\r\n"
                tls.sendall(request.encode())
                status_line = tls.recv(64).split(b"\r\n", 1)[0].decode(errors="replace")
    except (OSError, ssl.SSLError) as error:
        return f"nginx on port {settings.https_port}: {error}"
    if served != expected:
        return f"nginx on port {settings.https_port} serves another certificate than {settings.certificate}"
    return "" if status_line.split(" ")[1:2] == ["200"] else f"HTTPS /health answers {status_line!r}"


def _is_address(name: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, name)
    except OSError:
        return False
    return True


def serving(settings: Settings) -> tuple[str, str]:
    if not settings.tls:
        problem = http_health(settings.http_port, settings.hostname)
        return ("http", "") if not problem else ("", problem)
    try:
        outcome = settings.restore_outcome.read_text().strip()
    except OSError:
        return "", "the saved certificate is not restored or ruled out yet (mlflow-certificate)"
    if outcome == RESTORED:
        problem = https_health(settings)
        return ("https", "") if not problem else ("", problem)
    problem = http_health(settings.http_port, settings.hostname)
    return ("http, certificate after the move", "") if not problem else ("", problem)


def wait_until_serving(settings: Settings, check: Callable[[], tuple[str, str]],
                       now: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> str:
    deadline = now() + settings.wait_seconds
    last = ""
    while True:
        how, why = check()
        if how:
            return how
        if why != last:
            log(f"not serving yet: {why}")
            last = why
        if now() >= deadline:
            fail(f"this host did not serve within {settings.wait_seconds:.0f} s: {why}")
        sleep(settings.poll_seconds)


def report(settings: Settings, how: str) -> str:
    instance = metadata.instance_id()
    value = f"{settings.healthy} mlflow {settings.mlflow_version} {how}"
    aws.ec2_client(settings.region).create_tags(Resources=[instance],
                                                Tags=[{"Key": settings.tag_key, "Value": value}])
    return f"tagged {instance} {settings.tag_key}={value}"


def main(arguments: Sequence[str], settings_file: str) -> int:
    if arguments:
        fail(f"takes no arguments, got {' '.join(arguments)}")
    try:
        settings = read_settings(settings_file)
    except SettingsError as error:
        fail(str(error))
    how = wait_until_serving(settings, lambda: serving(settings))
    log(f"serving over {how}")
    try:
        log(report(settings, how))
    except Exception as error:
        fail(f"cannot report: {type(error).__name__}: {error}")
    return 0
