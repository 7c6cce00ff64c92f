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

# Tags a host carries. HOST_TAG (value: the stack's name) marks every MLflow host of a stack, in either
# shape, for the admin-restart association; HEALTH_TAG is the host's own report that it serves (written by
# the host on its own instance, read by the deployer's HostLaunch); LAUNCH_TAG marks a host whose launch
# failed, kept for diagnosis until the next `pulumi up` or `pulumi destroy` terminates it.
HOST_TAG = "mlflow-aws:host"
HEALTH_TAG = "mlflow-aws:health"
HEALTHY = "healthy"  # the health tag's value starts with it once /health answers 200 through nginx
LAUNCH_TAG = "mlflow-aws:launch"
FAILED_LAUNCH = "failed"

# Tags on the database and the bucket of a stack with protectData: for people in the AWS console, and
# for the policy pack, which then holds them to it (policy/rules.py DATA_PROTECTION_TAG).
DATA_PROTECTION_TAGS = {"DataProtection": "kept-on-destroy"}

# The backend store and the basic-auth user store live in two databases of the same RDS instance.
TRACKING_DATABASE = "mlflow"
AUTH_DATABASE = "mlflow_auth"
# auth: oidc keeps mlflow-oidc-auth's users, tokens, sessions and grants in a third database, so that
# switching between basic and oidc leaves the other mode's users and grants as they were.
OIDC_AUTH_DATABASE = "mlflow_oidc_auth"


# The log groups the stack creates (components/host_logs.py) and the hosts' CloudWatch agent writes
# (userdata/monitoring.py), one per source, below /<project>/<stack>/.
@dataclass(frozen=True)
class LogGroup:
    suffix: str
    source: str  # what it holds, for people reading the console


SERVER_LOG = LogGroup("mlflow", "mlflow.service's journal: the server, its install and configure steps")
NGINX_LOG = LogGroup("nginx", "nginx.service's journal and nginx's error log")
CERTIFICATE_LOG = LogGroup("certificate", "the journal of the certificate's issuance and renewal units")
ACCESS_LOG = LogGroup("access", "nginx's access log, one JSON object per request")
LOG_GROUPS: tuple[LogGroup, ...] = (SERVER_LOG, NGINX_LOG, CERTIFICATE_LOG, ACCESS_LOG)


def log_group_name(project: str, stack: str, group: LogGroup) -> str:
    return f"/{project}/{stack}/{group.suffix}"


def metrics_namespace(project: str, stack: str) -> str:
    """The one CloudWatch namespace the stack's own metrics live in (the host may put metrics nowhere else)."""
    return f"{project}/{stack}"


# The host's certificate program publishes this in that namespace (host_programs/certificate_state.py report).
CERTIFICATE_DAYS_LEFT_METRIC = "CertificateDaysLeft"
# Below this many days left, renewal has been failing for over a day (a 160-hour IP address certificate
# renews at half its life, 80 hours left; a 90-day one with 30 days left): the stack's alarm fires there,
# and the dashboard draws the line.
CERTIFICATE_DAYS_THRESHOLD = 2
# The access log's metric filters (components/host_logs.py) publish these in that namespace.
REQUESTS_METRIC = "Requests"
SERVER_ERRORS_METRIC = "ServerErrors"
LATENCY_METRIC = "Latency"


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
    DASHBOARD_URL = "dashboard_url"  # only with monitoring: the stack's CloudWatch dashboard in the console

    SECRET = frozenset({ADMIN_PASSWORD, CLIENT_SECRET_ACCESS_KEY})
    # Exported by every stack of this program, in both shapes: a document holding none of them is the
    # output of another Pulumi project (tests/unit/test_outputs_table.py holds this to the program).
    ALWAYS = frozenset({
        TRACKING_URI, HOSTNAME, ARTIFACT_BUCKET, ARTIFACT_DESTINATION, HOST_FILES_BUCKET, DB_ENDPOINT,
        DB_INSTANCE_ID, REGION, AUTH, ADMIN_USERNAME, ADMIN_PASSWORD, WEB_SECURITY_GROUP_ID, DB_SECURITY_GROUP_ID,
    })
