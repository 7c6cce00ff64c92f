"""How the stack signs people in, from its `auth` output: MLflow's basic auth, or the company's identity
provider (mlflow-oidc-auth). A stack deployed before the output existed is a basic-auth stack."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from naming import Outputs

from .outputs import OutputsError, text_value

AuthMode = Literal["basic", "oidc"]


def stack_auth(outputs: Mapping[str, Any]) -> AuthMode:
    value = text_value(outputs, Outputs.AUTH)
    if value is None or value == "basic":
        return "basic"
    if value == "oidc":
        return "oidc"
    raise OutputsError(f"output {Outputs.AUTH!r} is {value!r}, expected basic or oidc; "
                       "read the outputs again with `pulumi stack output --json --show-secrets`")
