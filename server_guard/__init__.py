"""MLflow's basic-auth app, or mlflow-oidc-auth's with auth oidc, plus what it leaves open on a shared
server (README: Security model).

The `mlflow.app` entry point APP_NAME; no MLflow import outside `app`, so userdata can read these.
"""

from __future__ import annotations

APP_NAME = "mlflow-aws-guard"
ENTRY_POINT = "server_guard.app:create_app"
DISTRIBUTION = "mlflow-aws-server-guard"
# Which app the guard wraps: "basic" (MLflow's basic-auth, also when unset) or "oidc" (mlflow-oidc-auth).
AUTH_VARIABLE = "MLFLOW_AWS_AUTH"
