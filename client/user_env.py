"""`mlflow-aws env --user NAME`: an env file that signs a program in as NAME, never as the stack's admin.

The secret comes from stdin or a file, never the command line (a process list shows arguments): with
`auth: basic` it is NAME's password, with `auth: oidc` an access token NAME was issued (`mlflow-aws tokens
create`, or the UI's Access tokens page); MLflow's client sends either as the password of basic auth.
Unless told not to, the pair is tried against the server first (`users/current`, which answers any
signed-in user with their own name), so a typo never reaches a deployed program.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from naming import Outputs

from . import envfile
from .auth_mode import AuthMode, stack_auth
from .outputs import require

CURRENT_USER = "/api/2.0/mlflow/users/current"
CHECK_TIMEOUT_SECONDS = 30
# mlflow.utils.validation._validate_password (MLflow 3.16 and 3.17): at least 12 characters.
MIN_PASSWORD_LENGTH = 12
# mlflow-oidc-auth's access tokens: mlf_<8 hex characters>_<secrets.token_urlsafe(32)>.
ACCESS_TOKEN = re.compile(r"^mlf_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}$")
JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class UserEnvError(ValueError):
    """The user's credentials cannot go into the env file; nothing was written."""


def check_username(username: str) -> None:
    if not username or any(char.isspace() or char == ":" for char in username):
        raise UserEnvError(f"--user {username!r} is not a user name: basic auth cannot carry an empty name, a "
                           "space or a ':'")


def check_secret(mode: AuthMode, username: str, secret: str) -> None:
    if mode == "oidc":
        if JWT.match(secret):
            raise UserEnvError(
                "that is an identity provider token (a JWT), which expires within hours; a program signs in with "
                f"an access token of {username!r}: mlflow-aws tokens create --name NAME --id-token-stdin, or the "
                "UI's Access tokens page")
        if not ACCESS_TOKEN.match(secret):
            raise UserEnvError(
                "with auth oidc the secret is an access token, mlf_<8 hex>_<secret> as the server issued it "
                f"(not a password): get one for {username!r} with mlflow-aws tokens create, or the UI's Access "
                "tokens page")
        return
    if len(secret) < MIN_PASSWORD_LENGTH:
        raise UserEnvError(f"the password has {len(secret)} characters, and MLflow refuses passwords shorter than "
                           f"{MIN_PASSWORD_LENGTH}, so it cannot be the password of {username!r}")


def check_with_server(tracking_uri: str, username: str, secret: str, mode: AuthMode) -> None:
    """Sign in as `username` once; UserEnvError unless the server answers with that very user."""
    kind = "access token" if mode == "oidc" else "password"
    token = base64.b64encode(f"{username}:{secret}".encode()).decode()
    request = urllib.request.Request(tracking_uri.rstrip("/") + CURRENT_USER,
                                     headers={"Authorization": f"Basic {token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=CHECK_TIMEOUT_SECONDS) as response:
            body = json.loads(response.read().decode(errors="replace") or "{}")
    except urllib.error.HTTPError as error:
        if error.code == 401:
            hint = ("it may be expired or revoked (mlflow-aws tokens list --user " + username + ")"
                    if mode == "oidc" else "an admin can set a new one: mlflow-aws users set-password " + username)
            raise UserEnvError(f"the server refused {username!r} with that {kind} (HTTP 401); {hint}") from None
        raise UserEnvError(f"{CURRENT_USER} answered HTTP {error.code} for {username!r}") from None
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as error:
        reason = getattr(error, "reason", error)
        raise UserEnvError(f"cannot check the {kind} with {tracking_uri}: {reason}; pass --no-check to write the "
                           "file without asking the server") from None
    user = body.get("user", body) if isinstance(body, dict) else {}
    answered = str(user.get("username", "")) if isinstance(user, dict) else ""
    if answered.lower() != username.lower():
        raise UserEnvError(f"the server signed that {kind} in as {answered!r}, not {username!r}")


def user_variables(outputs: Mapping[str, Any], username: str, secret: str, *, check: bool,
                   proxy_artifacts: bool = False) -> list[tuple[str, str]]:
    """The env file's (name, value) pairs for `username`; UserEnvError, OutputsError or EnvFileError when
    they cannot be written (nothing is)."""
    mode = stack_auth(outputs)
    check_username(username)
    check_secret(mode, username, secret)
    tracking_uri = require(outputs, [Outputs.TRACKING_URI])[Outputs.TRACKING_URI]
    chosen = {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": secret}
    for name, value in chosen.items():
        reason = envfile.disagreement(value)
        if reason:
            raise envfile.EnvFileError(f"cannot write {name}: {reason}, so `docker --env-file` and a shell "
                                       "`source` would read different values")
    if check:
        check_with_server(tracking_uri, username, secret, mode)
    # The admin's login never reaches this file: the user's takes its place before anything is rendered.
    as_user = {**outputs, Outputs.ADMIN_USERNAME: username, Outputs.ADMIN_PASSWORD: secret}
    return envfile.variables(as_user, proxy_artifacts=proxy_artifacts)
