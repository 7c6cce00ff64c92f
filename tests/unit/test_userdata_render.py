"""userdata.render: the #cloud-config document, read as a reviewer would (no servers; tests/host runs it)."""

from __future__ import annotations

import base64
import configparser
import dataclasses
import gzip
import json
import os
import re
import shlex
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

import naming
import server_guard
import userdata
from host_programs import configure
from tests.support.loopback import unit_directives
from userdata import bundle, deflate, layout, pins, scripts, service, sizing, tls
from userdata.files import HostFile
from userdata.settings import HostSettings

SETTINGS = HostSettings(
    project="mlflow-aws",
    stack="dev",
    region="eu-west-1",
    ssm_prefix="/mlflow-aws/dev",
    artifact_bucket="mlflow-aws-dev-artifacts-1a2b3c",
    host_files_bucket="mlflow-aws-dev-host-files-1a2b3c",
    public_hostname="203.0.113.10",  # no domain: the Elastic IP itself
    public_ip="203.0.113.10",
    mlflow_version="3.17.2",
    instance_memory_mib=2048,
    tls="off",
)
TLS_SETTINGS = dataclasses.replace(SETTINGS, tls="letsencrypt", public_hostname="mlflow.example.com")
IP_TLS_SETTINGS = dataclasses.replace(SETTINGS, tls="letsencrypt")


def document(settings: HostSettings = SETTINGS) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(userdata.render(settings))
    return parsed


def files(settings: HostSettings = SETTINGS) -> dict[str, dict[str, Any]]:
    """The host's files, as the object the user data names holds them (DESIGN decision 16)."""
    return {file.path: bundle.entry(file) for file in userdata.host_files(settings)}


def unit_lines(settings: HostSettings = SETTINGS) -> list[str]:
    content: str = files(settings)[layout.UNIT_PATH]["content"]
    return content.splitlines()


def exec_start(settings: HostSettings = SETTINGS) -> list[str]:
    (line,) = [line for line in unit_lines(settings) if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# -- the document ---------------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [SETTINGS, TLS_SETTINGS, IP_TLS_SETTINGS],
                         ids=["tls-off", "letsencrypt", "letsencrypt-ip"])
def test_document_is_yaml_cloud_config_with_only_the_expected_modules(settings):
    text = userdata.render(settings)
    assert text.startswith("#cloud-config\n")
    assert set(yaml.safe_load(text)) == {"package_update", "packages", "users", "bootcmd", "runcmd"}


def test_render_is_deterministic():
    assert userdata.render(SETTINGS) == userdata.render(dataclasses.replace(SETTINGS))


def test_the_bootstrap_is_a_readable_literal_block_that_round_trips():
    text = userdata.render(TLS_SETTINGS)
    install = yaml.safe_load(text)["bootcmd"][0]
    assert install == userdata.bootstrap.install_command()
    for line in userdata.bootstrap.program_text().splitlines()[:5]:
        assert f"\n  {line}\n" in text or f"\n  - {line}\n" in text or not line, line


def test_every_file_is_written_after_packages_and_users_exist_but_the_nginx_sandbox():
    written_early = [path for path, entry in files().items() if entry.get("defer") is not True]
    assert written_early == [layout.NGINX_HARDENING_DROP_IN]


def test_nginx_is_sandboxed_by_a_drop_in_that_exists_before_the_package_starts_it():
    # cloud-init writes non-deferred files before it installs packages: nginx's first start is sandboxed.
    entry = files()[layout.NGINX_HARDENING_DROP_IN]
    assert entry["owner"] == "root:root" and entry["permissions"] == "0644"
    directives = unit_directives(entry["content"])
    assert directives["ProtectSystem"] == ["strict"]
    assert directives["NoNewPrivileges"] == ["yes"]
    assert directives["ReadWritePaths"] == [" ".join(layout.NGINX_WRITABLE_PATHS)]
    assert set(directives["CapabilityBoundingSet"][0].split()) == {
        "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL"}
    assert layout.NGINX_HARDENING_DROP_IN.startswith(f"{layout.SYSTEMD_DIR}/{layout.NGINX_UNIT_NAME}.d/")


def test_packages_are_ubuntu_ones_and_tls_adds_none_since_certbot_comes_from_pypi():
    assert document()["packages"] == ["nginx", "python3-venv"]
    assert document(TLS_SETTINGS)["packages"] == ["nginx", "python3-venv"]
    assert document(IP_TLS_SETTINGS)["packages"] == ["nginx", "python3-venv"]


def test_mlflow_is_an_unprivileged_system_user_next_to_the_default_user():
    users = document()["users"]
    assert users[0] == "default"
    assert users[1]["name"] == "mlflow"
    assert users[1]["system"] is True
    assert users[1]["shell"] == "/usr/sbin/nologin"


# -- no secret ------------------------------------------------------------------------------------

def test_no_file_carries_a_secret_or_the_files_that_hold_them():
    paths = set(files())
    assert layout.ENV_FILE not in paths
    assert layout.AUTH_CONFIG not in paths
    text = userdata.render(SETTINGS) + "".join(file.content for file in userdata.host_files(SETTINGS))
    for name in ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_BACKEND_STORE_URI"):
        assert not re.search(rf"^\s*(Environment=)?{name}=", text, re.MULTILINE), name
    assert "postgresql+psycopg2://" not in exec_start()


def test_secure_parameters_are_named_only_in_the_configure_steps_settings_and_read_with_decryption():
    settings = json.loads(files()[layout.HOST_SETTINGS]["content"])
    others = [entry["content"] for path, entry in files().items() if path != layout.HOST_SETTINGS]
    others.append(userdata.render(SETTINGS))
    for parameter in naming.HOST_PARAMETERS:
        name = naming.parameter_name(SETTINGS.ssm_prefix, parameter)
        assert name in settings["configure"]["parameters"].values()
        assert not any(name in text for text in others)
    shipped = files()[f"{layout.HOST_PROGRAMS_DIR}/host_programs/configure.py"]["content"]
    assert "WithDecryption=True" in shipped


def test_render_takes_only_host_settings_whose_fields_are_not_secrets():
    field_names = {field.name for field in dataclasses.fields(HostSettings)}
    assert not {name for name in field_names if re.search("password|secret|key", name)}


# The values the program generates (passwords, keys) are looked for in the user data it renders under
# mocks: tests/unit/test_program.py (test_no_generated_secret_reaches_user_data_or_plain_outputs, one
# host, dev and prod) and tests/unit/test_fleet_program.py (the launch template).


# -- install --------------------------------------------------------------------------------------

def test_install_pins_mlflow_and_its_companions_and_leaves_bytecode_to_the_service():
    install = files(dataclasses.replace(SETTINGS, mlflow_version="3.9.1"))[layout.INSTALL_SCRIPT]["content"]
    assert "'mlflow[auth]==3.9.1'" in install
    assert f"psycopg2-binary=={pins.PSYCOPG2_BINARY_VERSION}" in install
    assert f"boto3=={pins.BOTO3_VERSION}" in install
    assert f'"uv=={pins.UV_VERSION}"' in install
    assert "--compile-bytecode" not in install
    unit = files()[layout.UNIT_PATH]["content"].splitlines()
    assert f"Environment=PYTHONPYCACHEPREFIX={layout.PYCACHE_DIR}" in unit
    assert "CacheDirectory=mlflow" in unit and layout.PYCACHE_DIR.startswith("/var/cache/mlflow/")
    assert f"venv={layout.VENV_DIR}\n" in install


def test_the_service_installs_mlflow_as_root_before_each_start_and_cloud_init_does_not():
    pre = [line.removeprefix("ExecStartPre=") for line in unit_lines() if line.startswith("ExecStartPre=")]
    assert pre == [f"+{layout.INSTALL_SCRIPT}", layout.CONFIGURE_SCRIPT]
    assert not [command for command in document()["runcmd"] if layout.INSTALL_SCRIPT in command]


def test_the_tested_mlflow_release_is_the_default_and_the_one_the_tests_install():
    import pathlib

    import config

    (default,) = [key.default for key in config.CONFIG_KEYS if key.name == "mlflowVersion"]
    pyproject = (pathlib.Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert default == pins.TESTED_MLFLOW_VERSION
    assert re.findall(r'"mlflow\[auth\]==([^"]+)"', pyproject) == [pins.TESTED_MLFLOW_VERSION]


def test_install_script_is_valid_bash():
    import subprocess

    result = subprocess.run(["bash", "-n"], input=files()[layout.INSTALL_SCRIPT]["content"], text=True,
                            capture_output=True, check=False)
    assert result.returncode == 0, result.stderr


# -- configure step -------------------------------------------------------------------------------

def rendered_configure_settings(tmp_path: Path, settings: HostSettings = SETTINGS) -> configure.Settings:
    """The configure step's settings as the host program reads them from the rendered settings file."""
    path = tmp_path / "host-settings.json"
    path.write_text(files(settings)[layout.HOST_SETTINGS]["content"])
    return configure.read_settings(str(path))


def test_the_configure_step_reads_the_stacks_region_paths_and_wait_from_the_settings_file(tmp_path):
    read = rendered_configure_settings(tmp_path)
    assert (read.region, read.auth_database) == (SETTINGS.region, naming.AUTH_DATABASE)
    assert (read.env_file, read.auth_config, read.state_file) == (
        layout.ENV_FILE, layout.AUTH_CONFIG, layout.CONFIGURE_STATE)
    assert read.wait_seconds == scripts.CONFIGURE_WAIT_SECONDS
    assert read.schema_lock is False
    assert files()[layout.HOST_SETTINGS]["permissions"] == "0644"
    assert files()[layout.CONFIGURE_SCRIPT]["permissions"] == "0755"


def test_the_configure_step_reads_every_host_parameter_by_its_role(tmp_path):
    assert set(scripts.CONFIGURE_PARAMETERS) == set(configure.ROLES)
    assert set(scripts.CONFIGURE_PARAMETERS.values()) == set(naming.HOST_PARAMETERS)
    names = rendered_configure_settings(tmp_path).names
    for role, parameter in scripts.CONFIGURE_PARAMETERS.items():
        assert getattr(names, role) == naming.parameter_name(SETTINGS.ssm_prefix, parameter)


@pytest.mark.parametrize("permission", ["READ", "NO_PERMISSIONS"])
def test_the_auth_config_carries_the_stacks_default_permission(permission, tmp_path):
    read = rendered_configure_settings(tmp_path, dataclasses.replace(SETTINGS, default_permission=permission))
    config = configparser.ConfigParser()
    config.read_string(configure.auth_config_text(read.default_permission, "sqlite:///x.db", "admin"))
    assert config["mlflow"]["default_permission"] == permission


def test_configure_quotes_env_values_the_way_systemd_reads_them():
    from tests.support.loopback import parse_env_file

    for value in ['plain', 'a"b', "back\\slash", "dollar$HOME", "tick`x`", "sp ace", "quote'", "%41"]:
        assert parse_env_file(f"KEY={configure.env_value(value)}\n") == {"KEY": value}


def test_configure_writes_an_auth_config_mlflow_reads_back_despite_percent_signs():
    values = configure.Parameters(**{role: "unused" for role in configure.ROLES} | {
        "db_username": "mlflow", "db_password": "p%w$rd:/?#", "db_host": "db.internal", "db_port": "5432"})
    uri = configure.database_uri(values, naming.AUTH_DATABASE)
    assert uri == "postgresql+psycopg2://mlflow:p%25w%24rd%3A%2F%3F%23@db.internal:5432/mlflow_auth?sslmode=require"
    config = configparser.ConfigParser()
    config.read_string(configure.auth_config_text("READ", uri, "admin"))
    assert config["mlflow"]["database_uri"] == uri
    assert config["mlflow"]["admin_username"] == "admin"
    assert "admin_password" not in config["mlflow"]


# -- mlflow.service -------------------------------------------------------------------------------

def test_server_listens_on_loopback_with_proxied_s3_artifacts_and_basic_auth():
    command = exec_start()
    assert command[:2] == [f"{layout.VENV_DIR}/bin/mlflow", "server"]
    assert option(command, "--host") == "127.0.0.1"
    assert option(command, "--port") == "5000"
    assert option(command, "--artifacts-destination") == f"s3://{SETTINGS.artifact_bucket}/"
    assert "--serve-artifacts" in command
    assert "--default-artifact-root" not in command
    assert option(command, "--app-name") == server_guard.APP_NAME  # basic-auth, guarded (server_guard/)


def test_allowed_hosts_and_cors_origins_name_the_public_hostname_and_ip():
    command = exec_start()
    hosts = option(command, "--allowed-hosts").split(",")
    assert {SETTINGS.public_hostname, SETTINGS.public_ip} <= set(hosts)
    assert "*" not in hosts
    assert option(command, "--cors-allowed-origins").split(",") == ["http://203.0.113.10"]
    assert option(exec_start(IP_TLS_SETTINGS), "--cors-allowed-origins").split(",") == ["https://203.0.113.10"]
    assert option(exec_start(TLS_SETTINGS), "--cors-allowed-origins").split(",") == [
        "https://mlflow.example.com", "https://203.0.113.10"]


def test_extra_allowed_origins_join_the_cors_origins_and_their_hosts_the_allowed_hosts():
    extra = dataclasses.replace(SETTINGS, extra_allowed_origins=("https://mlflow.corp.example:8443",))
    command = exec_start(extra)
    assert option(command, "--cors-allowed-origins").split(",") == [
        f"http://{SETTINGS.public_hostname}", "https://mlflow.corp.example:8443"]
    # nginx passes $host, which has no port.
    assert "mlflow.corp.example" in option(command, "--allowed-hosts").split(",")
    assert "mlflow.corp.example" not in option(exec_start(), "--allowed-hosts").split(",")


def test_the_server_sends_no_usage_telemetry():
    assert "Environment=MLFLOW_DISABLE_TELEMETRY=true" in unit_lines()


def test_unit_configures_before_each_start_as_the_mlflow_user_and_restarts_always():
    lines = unit_lines()
    assert f"ExecStartPre={layout.CONFIGURE_SCRIPT}" in lines
    assert f"EnvironmentFile=-{layout.ENV_FILE}" in lines
    for directive in ("User=mlflow", "Restart=always", "NoNewPrivileges=yes", "ProtectSystem=strict",
                      "PrivateTmp=yes", f"ReadWritePaths={layout.CONFIG_DIR}", "StartLimitIntervalSec=0"):
        assert directive in lines
    (timeout,) = [line for line in lines if line.startswith("TimeoutStartSec=")]
    assert int(timeout.split("=")[1]) > scripts.INSTALL_MAX_SECONDS + 2 * scripts.CONFIGURE_WAIT_SECONDS


def test_job_runner_is_off_unless_asked_for():
    assert "Environment=MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in unit_lines()
    on = dataclasses.replace(SETTINGS, job_runner=True)
    assert "Environment=MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true" in unit_lines(on)


def test_workers_follow_the_instance_memory():
    assert option(exec_start(dataclasses.replace(SETTINGS, instance_memory_mib=1024)), "--workers") == "1"
    assert option(exec_start(), "--workers") == str(sizing.uvicorn_workers(2048))


@pytest.mark.parametrize(("memory_mib", "workers"), [(1024, 1), (2048, 3), (4096, 8), (65536, 8)])
def test_sizing_keeps_the_server_inside_the_instance_memory(memory_mib, workers):
    assert sizing.uvicorn_workers(memory_mib) == workers
    if memory_mib > 1024:
        used = sizing.SYSTEM_RESERVE_MIB + sizing.SERVER_PARENT_MIB + workers * sizing.WORKER_MIB
        assert used <= memory_mib


def test_sizing_leaves_room_for_the_job_runner_when_it_is_on():
    assert sizing.uvicorn_workers(4096, job_runner=True) < sizing.uvicorn_workers(4096)


def test_the_job_runner_minimum_holds_it_and_one_worker_beside_the_system():
    minimum = sizing.JOB_RUNNER_MIN_INSTANCE_MIB
    assert sizing.uvicorn_workers(minimum, job_runner=True) == 1
    used = sizing.SYSTEM_RESERVE_MIB + sizing.SERVER_PARENT_MIB + sizing.JOB_RUNNER_MIB + sizing.WORKER_MIB
    assert used <= minimum < 4096


# -- nginx ----------------------------------------------------------------------------------------

def test_proxy_snippet_streams_large_artifacts_and_passes_health_through():
    snippet = files()[layout.NGINX_PROXY_SNIPPET]["content"]
    for directive in ("client_max_body_size 0;", "proxy_request_buffering off;", "proxy_buffering off;",
                      "proxy_read_timeout 3600s;", "proxy_set_header Host $host;",
                      "proxy_set_header X-Forwarded-Proto $scheme;", "location = /health {"):
        assert directive in snippet
    assert "auth_basic" not in snippet  # MLflow authenticates; /health stays open


def test_upstream_points_at_the_server_port():
    upstream = files()[layout.NGINX_UPSTREAM]["content"]
    assert f"upstream {layout.NGINX_UPSTREAM_NAME} {{" in upstream
    assert "server 127.0.0.1:5000;" in upstream


def test_plain_http_site_only_when_tls_is_off():
    site = files()[layout.NGINX_HTTP_SITE]["content"]
    assert "listen 80 default_server;" in site
    assert f"include {layout.NGINX_PROXY_SNIPPET};" in site
    assert layout.NGINX_HTTP_SITE not in files(TLS_SETTINGS)
    assert layout.NGINX_PROXY_SNIPPET in files(TLS_SETTINGS)
    assert layout.NGINX_UPSTREAM in files(TLS_SETTINGS)


def test_http_site_replaces_the_default_site():
    runcmd = document()["runcmd"]
    assert f"rm -f {layout.NGINX_DEFAULT_SITE_ENABLED}" in runcmd
    assert f"ln -sfn {layout.NGINX_HTTP_SITE} {layout.NGINX_HTTP_SITE_ENABLED}" in runcmd


# -- boot order and the TLS contract --------------------------------------------------------------

def test_boot_enables_and_starts_mlflow_without_waiting_for_the_database():
    runcmd = document()["runcmd"]
    assert runcmd.index("systemctl enable mlflow.service") < runcmd.index("systemctl start --no-block mlflow.service")
    config_dir = f"install -d -m 0700 -o mlflow -g mlflow {layout.CONFIG_DIR}"
    assert any(isinstance(command, str) and command.startswith(config_dir) for command in runcmd)


def test_tls_files_and_commands_land_after_nginx_and_mlflow(monkeypatch, request):
    # The object of the host's files is cached per settings: none computed with this test's TLS stays.
    userdata.host_bundle.cache_clear()
    request.addfinalizer(userdata.host_bundle.cache_clear)
    extra_file = HostFile("/etc/nginx/sites-available/tls-test", "server {}\n", defer=True)
    monkeypatch.setattr(tls, "tls_files", lambda s: [extra_file])
    monkeypatch.setattr(tls, "tls_boot_commands", lambda s: ["echo tls-one", "echo tls-two"])
    rendered = document(TLS_SETTINGS)
    assert userdata.host_files(TLS_SETTINGS)[-1] == extra_file
    assert [file.path for file in bundle.files_of(userdata.host_bundle(TLS_SETTINGS))][-1] == extra_file.path
    runcmd = rendered["runcmd"]
    assert runcmd[-2:] == ["echo tls-one", "echo tls-two"]
    assert runcmd.index("systemctl start --no-block mlflow.service") < runcmd.index("echo tls-one")


# -- what EC2 receives ----------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [SETTINGS, TLS_SETTINGS, IP_TLS_SETTINGS],
                         ids=["tls-off", "letsencrypt", "letsencrypt-ip"])
def test_ec2_user_data_is_the_rendered_document_gzipped_within_16_kib(settings):
    payload = base64.b64decode(userdata.ec2_user_data_base64(settings))
    assert len(payload) <= userdata.EC2_USER_DATA_LIMIT
    assert gzip.decompress(payload).decode() == userdata.render(settings)


def test_ec2_user_data_bytes_do_not_depend_on_the_machines_zlib():
    # Pulumi replaces the host when these bytes change; they are made without zlib's deflate.
    payload = base64.b64decode(userdata.ec2_user_data_base64(TLS_SETTINGS))
    assert payload[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no mtime, no name
    assert payload == base64.b64decode(userdata.ec2_user_data_base64(TLS_SETTINGS))


@pytest.mark.parametrize("data", [
    b"", b"a", b"abc" * 1000, bytes(range(256)) * 3, b"x" * 70000,
    os.urandom(5000) + b"repeat me " * 500 + os.urandom(40000)[:1] * 300,
], ids=["empty", "one", "repeats", "all-bytes", "long-run", "mixed"])
def test_deterministic_deflate_round_trips(data):
    assert zlib.decompress(deflate.deflate(data), wbits=-15) == data
    assert gzip.decompress(deflate.gzip_bytes(data)) == data


def test_deterministic_deflate_uses_matches_beyond_the_window_correctly():
    block = os.urandom(20000)
    data = block + os.urandom(20000) + block  # the repeat is 40000 bytes back: outside the window
    assert gzip.decompress(deflate.gzip_bytes(data)) == data


def test_service_module_builds_the_allowed_hosts_from_settings():
    assert service.allowed_hosts(TLS_SETTINGS)[:2] == [TLS_SETTINGS.public_hostname, TLS_SETTINGS.public_ip]
    # No domain: the address is the hostname, named once.
    assert service.allowed_hosts(IP_TLS_SETTINGS)[:2] == ["203.0.113.10", "localhost"]
