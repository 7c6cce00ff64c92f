from __future__ import annotations

import re
from collections.abc import Mapping

SOURCE_REGEX_VARIABLE = "MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX"
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
    return re.search(MODEL_VERSION_SOURCE_REGEX, source) is not None
