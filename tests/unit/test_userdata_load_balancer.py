"""The host's user data rendered for "behind a load balancer" (hosts >= 2), read as a reviewer would."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import config
import userdata
from host_programs import configure
from host_settings import host_settings_for
from userdata import layout, service, tls
from userdata.bundle import files_of
from userdata.settings import HostSettings


def fleet_settings(**raw: Any) -> HostSettings:
    cfg = config.load_config({"hosts": 2, "domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABC", **raw},
                             project="mlflow-aws", stack="dev", region="eu-west-1")
    return host_settings_for(cfg, artifact_bucket="mlflow-aws-dev-artifacts-1a2b3c",
                             host_files_bucket="mlflow-aws-dev-host-files-1a2b3c", public_ip="")


def files(settings: HostSettings) -> dict[str, str]:
    """The host's files, as the object the user data names holds them (DESIGN decision 16)."""
    return {file.path: file.content for file in files_of(userdata.host_bundle(settings))}


SINGLE = dataclasses.replace(fleet_settings(), load_balancer_cidr="", public_ip="203.0.113.10", tls="letsencrypt")


def test_fleet_hosts_serve_plain_http_for_the_load_balancer_and_the_stack_serves_https() -> None:
    settings = fleet_settings()
    assert settings.behind_load_balancer and settings.tls == "off"
    assert settings.tracking_uri == "https://mlflow.example.com"
    site = files(settings)[layout.NGINX_HTTP_SITE]
    assert "listen 80 default_server;" in site and "443" not in site and "ssl" not in site


def test_fleet_hosts_run_no_certbot() -> None:
    document = yaml.safe_load(userdata.render(fleet_settings()))
    assert not [p for p in document["packages"] if "certbot" in p]
    assert not set(files(fleet_settings())) & {tls.ISSUANCE_SCRIPT, tls.ISSUANCE_TIMER, tls.HTTPS_SITE}
    assert not [c for c in document["runcmd"] if "certificate" in c]


def test_forwarded_headers_are_believed_only_from_the_vpc() -> None:
    site = files(fleet_settings(vpcCidr="10.30.0.0/16"))[layout.NGINX_HTTP_SITE]
    assert "geo $realip_remote_addr $mlflow_via_load_balancer {\n    default 0;\n    10.30.0.0/16 1;\n}" in site
    assert "set_real_ip_from 10.30.0.0/16;" in site and "real_ip_header X-Forwarded-For;" in site
    assert "1 $http_x_forwarded_proto;\n    default $scheme;" in site
    assert "1 $http_x_forwarded_for;\n    default $remote_addr;" in site
    snippet = files(fleet_settings())[layout.NGINX_PROXY_SNIPPET]
    assert "proxy_set_header X-Forwarded-Proto $mlflow_forwarded_proto;" in snippet
    assert "proxy_set_header X-Forwarded-For $mlflow_forwarded_for;" in snippet


def test_the_single_host_keeps_its_own_forwarded_headers() -> None:
    snippet = files(SINGLE)[layout.NGINX_PROXY_SNIPPET]
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in snippet
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in snippet


def test_allowed_hosts_and_cors_follow_the_domain_with_no_empty_entry() -> None:
    settings = fleet_settings()
    hosts = service.allowed_hosts(settings)
    assert hosts[0] == "mlflow.example.com" and "" not in hosts
    assert service.cors_allowed_origins(settings) == ["https://mlflow.example.com"]
    command = service.server_command(settings)
    assert command[command.index("--allowed-hosts") + 1].split(",")[0] == "mlflow.example.com"


def configure_calls(settings: HostSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """What the configure step, given `settings`' rendered settings file, asks of the database, in order
    (every step that reaches PostgreSQL or SSM recorded instead of run)."""
    path = tmp_path / "host-settings.json"
    path.write_text(files(settings)[layout.HOST_SETTINGS])
    calls: list[str] = []

    class Connection:
        def close(self) -> None:
            calls.append("close")

    def recorded(name: str, result: Any = None) -> Any:
        def step(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return result
        return step

    monkeypatch.setattr(configure, "read_parameters", recorded("read_parameters"))
    monkeypatch.setattr(configure, "check_parameters", recorded("check_parameters"))
    monkeypatch.setattr(configure, "take_schema_lock", recorded("take_schema_lock", Connection()))
    monkeypatch.setattr(configure, "write_configuration", recorded("write_configuration"))
    configure.configure(configure.read_settings(str(path)))
    return calls


def test_fleet_configure_step_takes_the_schema_lock_before_touching_the_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert json.loads(files(fleet_settings())[layout.HOST_SETTINGS])["configure"]["schema_lock"] is True
    assert configure_calls(fleet_settings(), monkeypatch, tmp_path) == [
        "read_parameters", "check_parameters", "take_schema_lock", "write_configuration", "close"]


def test_the_single_hosts_configure_step_has_no_schema_lock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert json.loads(files(SINGLE)[layout.HOST_SETTINGS])["configure"]["schema_lock"] is False
    assert "take_schema_lock" not in configure_calls(SINGLE, monkeypatch, tmp_path)


def test_fleet_user_data_fits_ec2s_limit() -> None:
    assert userdata.ec2_user_data_base64(fleet_settings())


def test_hosts_keep_the_load_balancers_connections_open_longer_than_its_idle_timeout() -> None:
    from components.load_balancer import IDLE_TIMEOUT_SECONDS

    site = files(fleet_settings())[layout.NGINX_HTTP_SITE]
    (keepalive,) = re.findall(r"keepalive_timeout (\d+)s;", site)
    assert int(keepalive) > IDLE_TIMEOUT_SECONDS
