"""Model version sources: only what the server itself hands out.

MLflow checks every source that names a run, a logged model or a registered model against the
caller's READ permission and confines `mlflow-artifacts:` sources to the run or model they name, but
accepts any other URI (`s3://<bucket>/<experiment id>/...`, `file:///...`) unchecked, and its
`/model-versions/get-artifact` then serves those bytes. MLflow's own setting,
MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX, is matched against every model version source
the server stores (CreateModelVersion is the only route that sets one: updates change descriptions,
copies are CreateModelVersion with a `models:/` source, logged models take their experiment's
location). The guard requires it to be this pattern, so a server without it does not start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

SOURCE_REGEX_VARIABLE = "MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX"

# runs:/ and models:/ (checked by basic-auth against READ on what they name), the server's proxied
# artifacts (confined by MLflow to the run or logged model the request names), and the two fixed
# placeholders MLflow's prompt registry stores as a prompt version's source. No backslash, space or
# `%`: the pattern is a systemd Environment= value as it stands.
PROMPT_SOURCE_PLACEHOLDERS = ("dummy-source", "prompt-template")
MODEL_VERSION_SOURCE_REGEX = "^(runs:/|models:/|mlflow-artifacts:/|(" + "|".join(PROMPT_SOURCE_PLACEHOLDERS) + ")$)"


class GuardSettingMissing(RuntimeError):
    pass


def require_source_regex(environ: Mapping[str, str]) -> None:
    value = environ.get(SOURCE_REGEX_VARIABLE)
    if value != MODEL_VERSION_SOURCE_REGEX:
        raise GuardSettingMissing(
            f"{SOURCE_REGEX_VARIABLE} is {value!r}; the server guard needs it set to "
            f"{MODEL_VERSION_SOURCE_REGEX!r} (mlflow.service sets it) so no model version can point "
            "at artifacts outside what the caller may read"
        )


def source_allowed(source: str) -> bool:
    """What MLflow's handler decides with the regex above (re.search, as in _create_model_version)."""
    return re.search(MODEL_VERSION_SOURCE_REGEX, source) is not None
