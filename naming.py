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

# auth: oidc only: the identity provider's client secret (config oidcClientSecret), which only the host reads.
OIDC_CLIENT_SECRET = SsmParameter("oidc/client-secret", secure=True)

# Written by the host, not the program: its ACME account and current certificate (each a base64 tar.gz
# of certbot's files), so a replaced host serves the saved certificate instead of ordering a new one.
# The instance role may put exactly these two (components/identity.py).
ACME_ACCOUNT = SsmParameter("tls/acme-account", secure=True)
TLS_CERTIFICATE = SsmParameter("tls/certificate", secure=True)
HOST_WRITTEN_PARAMETERS: tuple[SsmParameter, ...] = (ACME_ACCOUNT, TLS_CERTIFICATE)
# Their value until the host first saves (SSM has no empty values): the stack creates them with it, so
# `pulumi destroy` deletes the saved private key with the stack.
UNSAVED_STATE = "unsaved"

# Everything the host needs at boot, in the order it reads them (with auth oidc, OIDC_HOST_PARAMETERS too).
HOST_PARAMETERS: tuple[SsmParameter, ...] = (
    DB_HOST, DB_PORT, DB_NAME, DB_USERNAME, DB_PASSWORD, ADMIN_USERNAME, ADMIN_PASSWORD, FLASK_SECRET_KEY,
    GATEWAY_KEK_PASSPHRASE,
)
OIDC_HOST_PARAMETERS: tuple[SsmParameter, ...] = (OIDC_CLIENT_SECRET,)

# Tags on the database and the bucket of a stack with protectData: for people in the AWS console, and
# for the policy pack, which then holds them to it (policy/rules.py DATA_PROTECTION_TAG).
DATA_PROTECTION_TAGS = {"DataProtection": "kept-on-destroy"}

# The backend store and the basic-auth user store live in two databases of the same RDS instance.
TRACKING_DATABASE = "mlflow"
AUTH_DATABASE = "mlflow_auth"
# auth: oidc keeps mlflow-oidc-auth's users, tokens, sessions and grants in a third database, so that
# switching between basic and oidc leaves the other mode's users and grants as they were.
OIDC_AUTH_DATABASE = "mlflow_oidc_auth"


def ssm_prefix(project: str, stack: str) -> str:
    return f"/{project}/{stack}"


def parameter_name(prefix: str, parameter: SsmParameter) -> str:
    return f"{prefix}/{parameter.suffix}"


class Outputs:
    """Stack output names (snake_case), as `pulumi stack output --json` prints them."""

    TRACKING_URI = "tracking_uri"
    PUBLIC_IP = "public_ip"
    HOSTNAME = "hostname"
    ARTIFACT_BUCKET = "artifact_bucket"
    ARTIFACT_DESTINATION = "artifact_destination"
    HOST_FILES_BUCKET = "host_files_bucket"  # where the host's files travel (DESIGN decision 16)
    DB_ENDPOINT = "db_endpoint"
    DB_INSTANCE_ID = "db_instance_id"
    DB_FINAL_SNAPSHOT = "db_final_snapshot"  # only with protectData: the snapshot RDS takes when destroy deletes it
    INSTANCE_ID = "instance_id"
    SSM_SESSION_COMMAND = "ssm_session_command"
    REGION = "region"
    AUTH = "auth"  # "basic" or "oidc": how people sign in, and what `mlflow-aws users` and `env --user` do
    ADMIN_USERNAME = "admin_username"
    ADMIN_PASSWORD = "admin_password"
    WEB_SECURITY_GROUP_ID = "web_security_group_id"
    DB_SECURITY_GROUP_ID = "db_security_group_id"
    CLIENT_ACCESS_KEY_ID = "client_access_key_id"
    CLIENT_SECRET_ACCESS_KEY = "client_secret_access_key"
    # hosts >= 2 only (and then no public_ip, instance_id or ssm_session_command: the group owns the hosts).
    LOAD_BALANCER_DNS_NAME = "load_balancer_dns_name"
    LOAD_BALANCER_SECURITY_GROUP_ID = "load_balancer_security_group_id"
    AUTOSCALING_GROUP_NAME = "autoscaling_group_name"

    SECRET = frozenset({ADMIN_PASSWORD, CLIENT_SECRET_ACCESS_KEY})
    # Exported by every stack of this program, in both shapes: a document holding none of them is the
    # output of another Pulumi project (tests/unit/test_outputs_table.py holds this to the program).
    ALWAYS = frozenset({
        TRACKING_URI, HOSTNAME, ARTIFACT_BUCKET, ARTIFACT_DESTINATION, HOST_FILES_BUCKET, DB_ENDPOINT,
        DB_INSTANCE_ID, REGION, AUTH, ADMIN_USERNAME, ADMIN_PASSWORD, WEB_SECURITY_GROUP_ID, DB_SECURITY_GROUP_ID,
    })
