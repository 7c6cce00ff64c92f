"""mlflow.service: the configure step, then `mlflow server` on 127.0.0.1 as the mlflow user."""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

import server_guard
from server_guard import sources
from userdata import layout, packages, scripts, sizing
from userdata.settings import HostSettings
from userdata.template import fill

# The packages, the install, both of the configure step's waits, a snapshot before a migration, plus the
# schema upgrade.
START_TIMEOUT_SECONDS = (packages.MAX_SECONDS + scripts.INSTALL_MAX_SECONDS + 2 * scripts.CONFIGURE_WAIT_SECONDS
                         + scripts.SNAPSHOT_WAIT_SECONDS + 600)


def allowed_hosts(s: HostSettings) -> list[str]:
    """Host headers MLflow accepts: nginx passes $host (no port); on-host tools may call the port."""
    local = [f"localhost:{layout.MLFLOW_PORT}", f"{layout.MLFLOW_BIND_HOST}:{layout.MLFLOW_PORT}"]
    # Behind a load balancer there is no public IP: the domain is the one public name.
    extra = [urlsplit(origin).hostname or "" for origin in s.extra_allowed_origins]
    names = [s.public_hostname, s.public_ip, "localhost", layout.MLFLOW_BIND_HOST, *local, *extra]
    return list(dict.fromkeys(name for name in names if name))


def cors_allowed_origins(s: HostSettings) -> list[str]:
    scheme = s.tracking_uri.split("://", 1)[0]
    public = [f"{scheme}://{name}" for name in (s.public_hostname, s.public_ip) if name]
    return list(dict.fromkeys([*public, *s.extra_allowed_origins]))


def server_command(s: HostSettings) -> list[str]:
    # The backend store URI holds the DB password: it comes from the env file
    # (MLFLOW_BACKEND_STORE_URI), never the command line, which every local user can read.
    return [
        f"{layout.VENV_DIR}/bin/mlflow", "server",
        "--host", layout.MLFLOW_BIND_HOST,
        "--port", str(layout.MLFLOW_PORT),
        "--workers", str(sizing.uvicorn_workers(s.instance_memory_mib, job_runner=s.job_runner)),
        "--serve-artifacts",
        "--artifacts-destination", f"s3://{s.artifact_bucket}/",
        # basic-auth, or mlflow-oidc-auth, with the server guard's rules (server_guard/, installed by
        # mlflow-install).
        "--app-name", server_guard.APP_NAME,
        "--allowed-hosts", ",".join(allowed_hosts(s)),
        "--cors-allowed-origins", ",".join(cors_allowed_origins(s)),
    ]


def auth_environment(s: HostSettings) -> str:
    """The line that makes the guard wrap mlflow-oidc-auth's app (none for basic-auth, the guard's default)."""
    return f"Environment={server_guard.AUTH_VARIABLE}=oidc\n" if s.auth == "oidc" else ""


def unit(s: HostSettings) -> str:
    return fill(
        "mlflow.service",
        user=layout.MLFLOW_USER,
        state_dir=layout.STATE_DIR,
        config_dir=layout.CONFIG_DIR,
        region=s.region,
        auth_config=layout.AUTH_CONFIG,
        auth_environment=auth_environment(s),
        job_execution="true" if s.job_runner else "false",
        pycache_dir=layout.PYCACHE_DIR,
        env_file=layout.ENV_FILE,
        packages_script=layout.PACKAGES_SCRIPT,
        install_script=layout.INSTALL_SCRIPT,
        configure_script=layout.CONFIGURE_SCRIPT,
        exec_start=shlex.join(server_command(s)),
        source_regex_variable=sources.SOURCE_REGEX_VARIABLE,
        source_regex=sources.MODEL_VERSION_SOURCE_REGEX,
        start_timeout_seconds=str(START_TIMEOUT_SECONDS),
    )
