"""Exact versions of what the host installs besides MLflow (whose version is a stack setting).

uv comes from PyPI through pip in its own venv: Ubuntu has no uv package, and the official installer
downloads from GitHub, which pins nothing a package index does not already pin. boto3 and
psycopg2-binary are the versions the loopback tests run against.
"""

from __future__ import annotations

UV_VERSION = "0.13.9"
BOTO3_VERSION = "1.44.5"
PSYCOPG2_BINARY_VERSION = "2.9.13"

# The MLflow release the tests run (config's default mlflowVersion), and the moment of PyPI they
# resolved it against: a host installing that release resolves its ~100 dependencies as of then
# (uv --exclude-newer), so a host replaced months later runs the same packages, not whatever PyPI
# holds that day. Bump the two together. Another mlflowVersion resolves against PyPI as it is.
TESTED_MLFLOW_VERSION = "3.17.2"
RESOLVED_AS_OF = "2026-11-23T00:00:00Z"

# auth: oidc: the community plugin that signs people in through the company's identity provider, installed
# into MLflow's venv (its `mlflow.app` entry point `oidc-auth` is what the server guard wraps). 11.0.2
# requires mlflow>=3.16,<4; it declares Python >= 3.11 but imports only on 3.12 and newer (a dataclass
# field defaults to a MappingProxyType, hashable only since 3.12), which Ubuntu 24.04's 3.12 is.
MLFLOW_OIDC_AUTH_VERSION = "11.0.2"
OIDC_MIN_MLFLOW, OIDC_MAX_MLFLOW = (3, 16, 0), (4, 0, 0)

# certbot for the Let's Encrypt certificate, from PyPI into its own venv (userdata.tls): IP address
# certificates need certbot 5.4 or newer for --webroot (Ubuntu 24.04 has 2.9). Its plugins share its
# version; the venv resolves as of RESOLVED_AS_OF too, and holds boto3 for the certificate's SSM state.
CERTBOT_VERSION = "5.8.0"

# Ubuntu packages the host needs.
UBUNTU_PACKAGES = ("nginx", "python3-venv")


def resolution_options(mlflow_version: str) -> list[str]:
    """uv options that fix what the requirements resolve to, for the release the tests run."""
    return ["--exclude-newer", RESOLVED_AS_OF] if mlflow_version == TESTED_MLFLOW_VERSION else []


def python_requirements(mlflow_version: str, *, auth: str = "basic") -> list[str]:
    plugin = [f"mlflow-oidc-auth=={MLFLOW_OIDC_AUTH_VERSION}"] if auth == "oidc" else []
    return [
        f"mlflow[auth]=={mlflow_version}",
        *plugin,
        f"psycopg2-binary=={PSYCOPG2_BINARY_VERSION}",
        f"boto3=={BOTO3_VERSION}",
    ]


def certbot_requirements(*, dns_route53: bool) -> list[str]:
    plugins = [f"certbot-dns-route53=={CERTBOT_VERSION}"] if dns_route53 else []
    return [f"certbot=={CERTBOT_VERSION}", *plugins, f"boto3=={BOTO3_VERSION}"]


def certbot_resolution_options() -> list[str]:
    return ["--exclude-newer", RESOLVED_AS_OF]

# The Amazon CloudWatch agent (userdata/monitoring.py), AWS's own .deb: the first release with the
# journald input was 1.300070.0 (aws/amazon-cloudwatch-agent, commit a58bb19 "Add journald log
# collection support", RELEASE_NOTES); 1.300071.0 also fixes its force-flush timer stalling on
# low-volume log streams, which every log of a quiet team server is. The build number is the
# package's (its Debian version starts with it); the install refuses any other.
CLOUDWATCH_AGENT_RELEASE = "1.300071.0b1720"
# AWS's published key that signs the agent's packages ("Verifying the signature of the CloudWatch agent
# package", Amazon CloudWatch User Guide): key 3B789C72, "Amazon CloudWatch Agent", created 2017-11-14.
CLOUDWATCH_AGENT_KEY_FINGERPRINT = "937616F3450B7D806CBD9725D58167303B789C72"
# The signature is checked with gpg, which Ubuntu's cloud image has; named so a smaller image gets it.
MONITORING_PACKAGES = ("gpg",)
