"""The tiny model `mlflow-aws smoke` logs, registers, loads back and asks for a prediction.

Kept in its own module because defining it imports MLflow, which only `smoke` needs; the logged
model refers to this class by name, so loading it needs this package installed, as smoke has.
"""

from __future__ import annotations

from typing import Any

from mlflow.pyfunc.model import PythonModel


class Doubler(PythonModel):
    def predict(self, context: Any, model_input: list[float], params: dict[str, Any] | None = None) -> list[float]:
        return [2 * value for value in model_input]
