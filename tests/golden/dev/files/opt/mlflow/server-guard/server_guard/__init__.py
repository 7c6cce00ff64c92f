from __future__ import annotations

APP_NAME = "mlflow-aws-guard"
ENTRY_POINT = "server_guard.app:create_app"
DISTRIBUTION = "mlflow-aws-server-guard"

BODY_LIMIT_MIB = 64
BODY_LIMIT_BYTES = BODY_LIMIT_MIB * 1024 * 1024
AUTH_VARIABLE = "MLFLOW_AWS_AUTH"
