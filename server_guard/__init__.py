"""MLflow's basic-auth app, or mlflow-oidc-auth's with auth oidc, plus what it leaves open on a shared
server (README: Security model).

The `mlflow.app` entry point APP_NAME; no MLflow import outside the modules that need it, so userdata can
read these.
"""

from __future__ import annotations

APP_NAME = "mlflow-aws-guard"
ENTRY_POINT = "server_guard.app:create_app"
DISTRIBUTION = "mlflow-aws-server-guard"

# The most a request body may hold where MLflow reads it whole into memory (everything but the artifact
# routes, which stream): MLflow's largest legitimate request of that kind is a log-inputs with one
# dataset at MLflow's own field limits (mlflow/utils/validation.py: a profile of 16,777,215 characters,
# a schema of 1,048,575 and a source of 65,535, about 17.9 MB before JSON escapes them), and evaluation
# dataset records are merged in one request. nginx's client_max_body_size says the same (userdata.nginx).
BODY_LIMIT_MIB = 64
BODY_LIMIT_BYTES = BODY_LIMIT_MIB * 1024 * 1024
# Which app the guard wraps: "basic" (MLflow's basic-auth, also when unset) or "oidc" (mlflow-oidc-auth).
AUTH_VARIABLE = "MLFLOW_AWS_AUTH"
