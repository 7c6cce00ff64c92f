"""The two programs mlflow.service runs before every start: the install script (a no-op once the venv
is complete) and the configure step (host_programs/configure.py, with its section of the settings file)."""

from __future__ import annotations

import shlex
from typing import Any

import naming
import server_guard
from host_programs import configure
from userdata import guard, layout, oidc, pins
from userdata.programs import HostProgram
from userdata.settings import HostSettings
from userdata.template import fill

# RDS snapshots a small database in minutes; a large one can take much longer, and the migration waits.
SNAPSHOT_WAIT_SECONDS = 3600
# The other hosts' watchers stop their servers within their poll (2 s); their sessions are ended meanwhile.
FENCE_WAIT_SECONDS = 30
# Each of the configure step's waits (SSM parameters, PostgreSQL, a fleet's schema lock) gives up after this long.
CONFIGURE_WAIT_SECONDS = 1200
# Each of the install's downloads (uv, then MLflow and its dependencies): tries, each bounded, and the
# wait before the next (1x, 2x, ... this delay).
INSTALL_ATTEMPTS = 3
INSTALL_ATTEMPT_TIMEOUT_SECONDS = 600
INSTALL_RETRY_DELAY_SECONDS = 10
INSTALL_DOWNLOADS = 2
INSTALL_MAX_SECONDS = INSTALL_DOWNLOADS * (
    INSTALL_ATTEMPTS * INSTALL_ATTEMPT_TIMEOUT_SECONDS
    + sum(try_ * INSTALL_RETRY_DELAY_SECONDS for try_ in range(1, INSTALL_ATTEMPTS))
)

# The configure step's parameter roles (host_programs.configure.Parameters) -> the parameter each names.
CONFIGURE_PARAMETERS: dict[str, naming.SsmParameter] = {
    "db_host": naming.DB_HOST,
    "db_port": naming.DB_PORT,
    "db_name": naming.DB_NAME,
    "db_username": naming.DB_USERNAME,
    "db_password": naming.DB_PASSWORD,
    "admin_username": naming.ADMIN_USERNAME,
    "admin_password": naming.ADMIN_PASSWORD,
    "flask_secret_key": naming.FLASK_SECRET_KEY,
    "gateway_kek_passphrase": naming.GATEWAY_KEK_PASSPHRASE,
}


def install_script(s: HostSettings) -> str:
    return fill(
        "mlflow-install.sh",
        venv_dir=layout.VENV_DIR,
        uv_dir=layout.UV_DIR,
        uv_cache_dir=layout.UV_CACHE_DIR,
        uv_version=pins.UV_VERSION,
        marker_name=layout.INSTALL_MARKER_NAME,
        requirements=" ".join(shlex.quote(r) for r in pins.python_requirements(s.mlflow_version, auth=s.auth)),
        resolution=" ".join(shlex.quote(o) for o in pins.resolution_options(s.mlflow_version)),
        attempts=str(INSTALL_ATTEMPTS),
        attempt_timeout_seconds=str(INSTALL_ATTEMPT_TIMEOUT_SECONDS),
        retry_delay_seconds=str(INSTALL_RETRY_DELAY_SECONDS),
        guard_dir=layout.GUARD_DIR,
        guard_distribution=server_guard.DISTRIBUTION,
        guard_digest=guard.digest(s.auth),
    )


def configure_settings(s: HostSettings) -> dict[str, Any]:
    """The configure step's section of the settings file (host_programs.configure.read_settings)."""
    missing = set(naming.HOST_PARAMETERS) - set(CONFIGURE_PARAMETERS.values())
    if missing:
        raise ValueError(f"the configure step reads no {sorted(p.suffix for p in missing)}")
    return {
        "parameters": {role: naming.parameter_name(s.ssm_prefix, parameter)
                       for role, parameter in CONFIGURE_PARAMETERS.items()},
        "auth_database": naming.AUTH_DATABASE,
        "env_file": layout.ENV_FILE,
        "auth_config": layout.AUTH_CONFIG,
        "state_file": layout.CONFIGURE_STATE,
        "default_permission": s.default_permission,
        "wait_seconds": CONFIGURE_WAIT_SECONDS,
        # Behind a load balancer, the hosts that start together (the fleet's first boot, an instance
        # refresh) take turns from the auth database to the end of the schema upgrades.
        "schema_lock": s.behind_load_balancer,
        # Before a release migrates a schema: the snapshot of the stack's database, then the fence.
        "db_identifier": s.db_identifier,
        "snapshot_wait_seconds": SNAPSHOT_WAIT_SECONDS,
        "fence_wait_seconds": FENCE_WAIT_SECONDS,
        "host_id_file": layout.HOST_ID_FILE,
        "admin_revision_file": layout.ADMIN_REVISION_FILE,
        "auth": s.auth,
        **({"oidc": oidc_settings(s)} if s.auth == "oidc" else {}),
    }


def oidc_settings(s: HostSettings) -> dict[str, Any]:
    """With auth oidc: what the configure step needs for mlflow-oidc-auth (host_programs/oidc_auth.py)."""
    return {
        "database": naming.OIDC_AUTH_DATABASE,
        "client_secret": naming.parameter_name(s.ssm_prefix, naming.OIDC_CLIENT_SECRET),
        "environment": oidc.plugin_environment(s),
    }


CONFIGURE = HostProgram(layout.CONFIGURE_SCRIPT, f"{layout.VENV_DIR}/bin/python3", configure, configure_settings)
