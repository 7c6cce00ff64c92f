"""The server guard: MLflow's basic-auth app, plus what basic-auth leaves open on a shared server.

Registered as the `mlflow.app` entry point APP_NAME (`mlflow server --app-name mlflow-aws-guard`);
installed on the host next to MLflow from the files the user data writes (userdata/guard.py).
What it adds to basic-auth, each in its own module:
  locations   experiments take the server's own artifact location: any other is refused
  users       only admins list users
  sources     model version sources: MLflow's own regex setting, required at start
This package imports MLflow only in `app`, so the user data renderer can read its constants.
"""

from __future__ import annotations

APP_NAME = "mlflow-aws-guard"
ENTRY_POINT = "server_guard.app:create_app"
DISTRIBUTION = "mlflow-aws-server-guard"
