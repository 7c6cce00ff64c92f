"""The two scripts mlflow.service runs before every start: the install (a no-op once the venv is
complete) and the configure step."""

from __future__ import annotations

import shlex

import naming
import server_guard
from userdata import guard, layout, oidc, pins
from userdata.settings import HostSettings
from userdata.template import fill

# Each of the configure step's two waits (SSM parameters, then PostgreSQL) gives up after this long.
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

# pg_advisory_lock key under which a fleet's hosts take turns at the schemas ("mlflow" in ASCII).
SCHEMA_LOCK_KEY = 0x6D6C666C6F77

# Placeholder in mlflow-configure.py.in -> the parameter it names.
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


def oidc_configuration(s: HostSettings) -> dict[str, object] | None:
    """What the configure step needs for mlflow-oidc-auth (None with basic-auth)."""
    if s.auth != "oidc":
        return None
    return {
        "database": naming.OIDC_AUTH_DATABASE,
        "client_secret": naming.parameter_name(s.ssm_prefix, naming.OIDC_CLIENT_SECRET),
        "environment": oidc.plugin_environment(s),
    }


def configure_script(s: HostSettings) -> str:
    missing = set(naming.HOST_PARAMETERS) - set(CONFIGURE_PARAMETERS.values())
    if missing:
        raise ValueError(f"the configure step reads no {sorted(p.suffix for p in missing)}")
    names = {
        placeholder: repr(naming.parameter_name(s.ssm_prefix, parameter))
        for placeholder, parameter in CONFIGURE_PARAMETERS.items()
    }
    lock_function, lock_call = "", ""
    if s.behind_load_balancer:
        lock_function = fill("mlflow-configure-schema-lock.py.in", schema_lock_key=str(SCHEMA_LOCK_KEY))
        lock_call = "    schema_lock = take_schema_lock(values)  # held until this process exits\n"
    return fill(
        "mlflow-configure.py.in",
        schema_lock_function=lock_function,
        schema_lock_call=lock_call,
        venv_dir=layout.VENV_DIR,
        region=repr(s.region),
        auth_database=repr(naming.AUTH_DATABASE),
        env_file=repr(layout.ENV_FILE),
        auth_config=repr(layout.AUTH_CONFIG),
        state_file=repr(layout.CONFIGURE_STATE),
        default_permission=repr(s.default_permission),
        oidc=repr(oidc_configuration(s)),
        wait_seconds=str(CONFIGURE_WAIT_SECONDS),
        **names,
    )
