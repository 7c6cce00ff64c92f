"""Model version sources: only runs:/, models:/ and the server's own mlflow-artifacts:/ locations.

MLflow's setting, matched against every source CreateModelVersion stores (the only route that sets
one); basic-auth checks READ on the run, logged model or registered model a source names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

SOURCE_REGEX_VARIABLE = "MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX"
# The two fixed sources of prompt versions. No backslash, space or %: a systemd Environment= value.
PROMPT_SOURCE_PLACEHOLDERS = ("dummy-source", "prompt-template")
MODEL_VERSION_SOURCE_REGEX = "^(runs:/|models:/|mlflow-artifacts:/|(" + "|".join(PROMPT_SOURCE_PLACEHOLDERS) + ")$)"


class GuardSettingMissing(RuntimeError):
    pass


def require_source_regex(environ: Mapping[str, str]) -> None:
    value = environ.get(SOURCE_REGEX_VARIABLE)
    if value != MODEL_VERSION_SOURCE_REGEX:
        raise GuardSettingMissing(f"{SOURCE_REGEX_VARIABLE} is {value!r}; the server guard needs "
                                  f"{MODEL_VERSION_SOURCE_REGEX!r} (mlflow.service sets it)")


def source_allowed(source: str) -> bool:
    """MLflow's decision with the setting (re.search, as in handlers._create_model_version)."""
    return re.search(MODEL_VERSION_SOURCE_REGEX, source) is not None
