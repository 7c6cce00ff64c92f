"""Exact versions of what the host installs besides MLflow (whose version is a stack setting).

uv comes from PyPI through pip in its own venv: Ubuntu has no uv package, and the official installer
downloads from GitHub, which pins nothing a package index does not already pin. boto3 and
psycopg2-binary are the versions the loopback tests run against.
"""

from __future__ import annotations

UV_VERSION = "0.13.9"
BOTO3_VERSION = "1.44.5"
PSYCOPG2_BINARY_VERSION = "2.9.13"

# Ubuntu packages the host needs; TLS adds its own.
UBUNTU_PACKAGES = ("nginx", "python3-venv")


def python_requirements(mlflow_version: str) -> list[str]:
    return [
        f"mlflow[auth]=={mlflow_version}",
        f"psycopg2-binary=={PSYCOPG2_BINARY_VERSION}",
        f"boto3=={BOTO3_VERSION}",
    ]
