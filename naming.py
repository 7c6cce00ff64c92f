"""Names shared by the program, the host and the client: SSM parameters and stack outputs.

The Database and HostIdentity components write these parameters, the host reads them at boot, and
the client reads the outputs; keeping the names in one place keeps the three in step.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SsmParameter:
    suffix: str  # below the stack's prefix, e.g. "db/host"
    secure: bool


DB_HOST = SsmParameter("db/host", secure=False)
DB_PORT = SsmParameter("db/port", secure=False)
DB_NAME = SsmParameter("db/name", secure=False)
DB_USERNAME = SsmParameter("db/username", secure=False)
DB_PASSWORD = SsmParameter("db/password", secure=True)
ADMIN_USERNAME = SsmParameter("mlflow/admin-username", secure=False)
ADMIN_PASSWORD = SsmParameter("mlflow/admin-password", secure=True)
FLASK_SECRET_KEY = SsmParameter("mlflow/flask-secret-key", secure=True)
# MLflow's MLFLOW_CRYPTO_KEK_PASSPHRASE: encrypts the AI gateway's stored provider keys.
GATEWAY_KEK_PASSPHRASE = SsmParameter("mlflow/gateway-kek-passphrase", secure=True)

# Everything the host needs at boot, in the order it reads them.
HOST_PARAMETERS: tuple[SsmParameter, ...] = (
    DB_HOST, DB_PORT, DB_NAME, DB_USERNAME, DB_PASSWORD, ADMIN_USERNAME, ADMIN_PASSWORD, FLASK_SECRET_KEY,
    GATEWAY_KEK_PASSPHRASE,
)

# Tags on the database and the bucket of a stack with protectData: for people in the AWS console, and
# for the policy pack, which then holds them to it (policy/rules.py DATA_PROTECTION_TAG).
DATA_PROTECTION_TAGS = {"DataProtection": "kept-on-destroy"}

# The backend store and the basic-auth user store live in two databases of the same RDS instance.
TRACKING_DATABASE = "mlflow"
AUTH_DATABASE = "mlflow_auth"


def ssm_prefix(project: str, stack: str) -> str:
    return f"/{project}/{stack}"


def parameter_name(prefix: str, parameter: SsmParameter) -> str:
    return f"{prefix}/{parameter.suffix}"


def sslip_hostname(public_ip: str) -> str:
    """A name that resolves to `public_ip` with no DNS setup: sslip.io answers a-b-c-d.sslip.io with a.b.c.d."""
    return f"{public_ip.replace('.', '-')}.sslip.io"


class Outputs:
    """Stack output names (snake_case), as `pulumi stack output --json` prints them."""

    TRACKING_URI = "tracking_uri"
    PUBLIC_IP = "public_ip"
    HOSTNAME = "hostname"
    ARTIFACT_BUCKET = "artifact_bucket"
    ARTIFACT_DESTINATION = "artifact_destination"
    DB_ENDPOINT = "db_endpoint"
    DB_INSTANCE_ID = "db_instance_id"
    INSTANCE_ID = "instance_id"
    SSM_SESSION_COMMAND = "ssm_session_command"
    REGION = "region"
    ADMIN_USERNAME = "admin_username"
    ADMIN_PASSWORD = "admin_password"
    WEB_SECURITY_GROUP_ID = "web_security_group_id"
    DB_SECURITY_GROUP_ID = "db_security_group_id"
    CLIENT_ACCESS_KEY_ID = "client_access_key_id"
    CLIENT_SECRET_ACCESS_KEY = "client_secret_access_key"

    SECRET = frozenset({ADMIN_PASSWORD, CLIENT_SECRET_ACCESS_KEY})
