"""Refusals in MLflow's own JSON error format, so MLflow's clients show them as they show MLflow's."""

from __future__ import annotations

import json

from flask import Response


def mlflow_error(status: int, error_code: str, message: str) -> Response:
    return Response(json.dumps({"error_code": error_code, "message": message}), status=status,
                    mimetype="application/json")
