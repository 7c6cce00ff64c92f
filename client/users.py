"""`mlflow-aws users`: the team's MLflow accounts, over MLflow basic-auth's REST API, as the admin.

The admin's credentials and the tracking URI come from the stack outputs; the client needs only the
standard library (no `mlflow[auth]`, whose Python client needs Flask-WTF). Every argument is checked
before the first request (a password shorter than MLflow's minimum never leaves the machine), and
every refusal is one line naming the cause and the fix.

    users add NAME [--admin] [--password-stdin]     a generated password is printed once
    users list
    users set-password NAME [--password-stdin]
    users grant NAME (--experiment ID|NAME | --model NAME) PERMISSION
    users remove NAME
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from naming import Outputs

from .outputs import OutputsError, require

# mlflow.utils.validation._validate_password (MLflow 3.16 and 3.17): at least 12 characters.
MIN_PASSWORD_LENGTH = 12
GENERATED_PASSWORD_LENGTH = 24
# What a user may be granted on one experiment or registered model (MLflow's RESOURCE_GRANTABLE_PERMISSIONS).
PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE")
RESOURCE_TYPES = {"experiment": "experiment", "model": "registered_model"}
REQUEST_TIMEOUT_SECONDS = 30

USERS_LIST = "/api/2.0/mlflow/users/list"
USERS_CREATE = "/api/2.0/mlflow/users/create"
USERS_GET = "/api/2.0/mlflow/users/get"
USERS_DELETE = "/api/2.0/mlflow/users/delete"
USERS_UPDATE_PASSWORD = "/api/2.0/mlflow/users/update-password"
USERS_UPDATE_ADMIN = "/api/2.0/mlflow/users/update-admin"
PERMISSIONS_GRANT = "/api/3.0/mlflow/users/permissions/grant"
PERMISSIONS_REVOKE = "/api/3.0/mlflow/users/permissions/revoke"
PERMISSIONS_LIST = "/api/3.0/mlflow/users/permissions/list"
EXPERIMENT_BY_NAME = "/api/2.0/mlflow/experiments/get-by-name"
MODEL_GET = "/api/2.0/mlflow/registered-models/get"


class UsersError(RuntimeError):
    """A refusal, explained: the message names the cause and the fix."""


@dataclass(frozen=True)
class Admin:
    tracking_uri: str
    username: str
    password: str

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> Admin:
        values = require(outputs, [Outputs.TRACKING_URI, Outputs.ADMIN_USERNAME, Outputs.ADMIN_PASSWORD])
        return cls(values[Outputs.TRACKING_URI].rstrip("/"), values[Outputs.ADMIN_USERNAME],
                   values[Outputs.ADMIN_PASSWORD])


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsersError(f"the password has {len(password)} characters; MLflow refuses passwords shorter than "
                         f"{MIN_PASSWORD_LENGTH}: choose a longer one, or leave out --password-stdin to get "
                         "a generated one")
    if password != password.strip() or any(not char.isprintable() for char in password):
        raise UsersError("the password starts or ends with a space or holds a control character; "
                         "a browser's login box could not type it")


def check_username(username: str) -> None:
    if not username or any(char.isspace() or char == ":" for char in username):
        raise UsersError(f"{username!r} is not a user name: basic auth cannot carry an empty name, "
                         "a space or a ':'")


def generated_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(GENERATED_PASSWORD_LENGTH))


class Server:
    """MLflow's auth API at `admin.tracking_uri`, every call authenticated as the admin."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        token = base64.b64encode(f"{admin.username}:{admin.password}".encode()).decode()
        self._authorization = f"Basic {token}"

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None,
             query: Mapping[str, str] | None = None, subject: str = "") -> dict[str, Any]:
        url = self.admin.tracking_uri + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": self._authorization, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                text = response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            raise self._explain(error.code, error.read().decode(errors="replace"), path, subject) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise UsersError(f"cannot reach {self.admin.tracking_uri}: {reason}; check that the stack is up "
                             "(mlflow-aws smoke) and that your address is in allowedCidrs") from None
        if not text.strip():
            return {}
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            raise UsersError(f"{path} answered with something other than JSON ({text[:80]!r}): is "
                             f"{self.admin.tracking_uri} an mlflow-aws server?") from None
        return document if isinstance(document, dict) else {}

    def _explain(self, status: int, text: str, path: str, subject: str) -> UsersError:
        error_code, message = "", text.strip()
        try:
            document = json.loads(text)
            error_code, message = str(document.get("error_code", "")), str(document.get("message", message))
        except (json.JSONDecodeError, AttributeError):
            pass
        if status == 401:
            return UsersError(f"the server refused the admin credentials ({self.admin.username!r}, HTTP 401): "
                              "the outputs are older than the admin password; read them again with "
                              "`pulumi stack output --json --show-secrets`")
        if status == 403:
            return UsersError(f"{self.admin.username!r} is not an MLflow administrator (HTTP 403): use the "
                              "stack's admin_username and admin_password outputs")
        if error_code == "RESOURCE_DOES_NOT_EXIST" or (status == 404 and "User" in message):
            return UsersError(f"{subject or 'that'} does not exist on the server ({message}); "
                              "see `mlflow-aws users list`")
        if error_code == "RESOURCE_ALREADY_EXISTS":
            return UsersError(f"{subject or 'that'} already exists ({message})")
        if status == 404:
            return UsersError(f"{path} is not on this server (HTTP 404): its MLflow has no such auth API; "
                              "this command is tested with MLflow 3.16 and 3.17")
        return UsersError(f"{path} failed with HTTP {status}: {message[:300]}")

    # -- users ----------------------------------------------------------------------------------------
    def users(self) -> list[dict[str, Any]]:
        found = self.call("GET", USERS_LIST).get("users", [])
        return sorted((user for user in found if isinstance(user, dict)), key=lambda u: str(u.get("username")))

    def permissions(self, username: str) -> list[dict[str, Any]]:
        rows = self.call("GET", PERMISSIONS_LIST, query={"username": username}, subject=f"user {username!r}")
        return [row for row in rows.get("permissions", []) if isinstance(row, dict)]

    def require_user(self, username: str) -> None:
        self.call("GET", USERS_GET, query={"username": username}, subject=f"user {username!r}")

    def add(self, username: str, password: str, *, admin: bool) -> None:
        self.call("POST", USERS_CREATE, {"username": username, "password": password}, subject=f"user {username!r}")
        if admin:
            self.call("PATCH", USERS_UPDATE_ADMIN, {"username": username, "is_admin": True},
                      subject=f"user {username!r}")

    def set_password(self, username: str, password: str) -> None:
        if username == self.admin.username:
            raise UsersError(f"{username!r} is the stack's admin, whose password the host resets from SSM at "
                             "every start; change it with `pulumi up` (ServerSecrets), not here")
        self.require_user(username)
        self.call("PATCH", USERS_UPDATE_PASSWORD, {"username": username, "password": password},
                  subject=f"user {username!r}")

    def remove(self, username: str) -> None:
        if username == self.admin.username:
            raise UsersError(f"{username!r} is the stack's admin; the server needs it, so it cannot be removed")
        self.require_user(username)
        self.call("DELETE", USERS_DELETE, {"username": username}, subject=f"user {username!r}")

    # -- permissions ------------------------------------------------------------------------------------
    def resource_id(self, kind: str, name_or_id: str) -> str:
        """An experiment's ID (given its ID or its name) or a registered model's name, checked to exist."""
        if kind == "experiment":
            if name_or_id.isdigit():
                self.call("GET", "/api/2.0/mlflow/experiments/get", query={"experiment_id": name_or_id},
                          subject=f"experiment {name_or_id}")
                return name_or_id
            found = self.call("GET", EXPERIMENT_BY_NAME, query={"experiment_name": name_or_id},
                              subject=f"experiment {name_or_id!r}")
            return str(found["experiment"]["experiment_id"])
        self.call("GET", MODEL_GET, query={"name": name_or_id}, subject=f"registered model {name_or_id!r}")
        return name_or_id

    def grant(self, username: str, kind: str, name_or_id: str, permission: str) -> str:
        """Give `username` `permission` on the resource, replacing a grant it already has; returns the ID."""
        self.require_user(username)
        resource_id = self.resource_id(kind, name_or_id)
        body = {"username": username, "resource_type": RESOURCE_TYPES[kind], "resource_id": resource_id}
        what = f"the permission of {username!r} on {kind} {name_or_id!r}"
        try:
            self.call("POST", PERMISSIONS_GRANT, {**body, "permission": permission}, subject=what)
        except UsersError as error:
            if "already exists" not in str(error):
                raise
            self.call("POST", PERMISSIONS_REVOKE, body, subject=what)
            self.call("POST", PERMISSIONS_GRANT, {**body, "permission": permission}, subject=what)
        return resource_id


def _password_from(stdin: bool) -> tuple[str, bool]:
    """(password, generated): the first line of stdin with --password-stdin, else a generated one."""
    if not stdin:
        return generated_password(), True
    line = sys.stdin.readline()
    password = line[:-1] if line.endswith("\n") else line
    check_password(password)
    return password, False


def run(command: str, outputs: Mapping[str, Any], args: Any) -> int:
    """Run one `users` subcommand; 0 on success, 1 on a refusal (printed), 2 on bad outputs."""
    try:
        admin = Admin.from_outputs(outputs)
    except OutputsError as error:
        print(f"mlflow-aws: error: {error}", file=sys.stderr)
        return 2
    server = Server(admin)
    try:
        if command == "list":
            print_users(server)
            return 0
        check_username(args.name)
        if command == "add":
            password, generated = _password_from(args.password_stdin)
            server.add(args.name, password, admin=args.admin)
            role = "an administrator" if args.admin else "a user"
            print(f"added {args.name!r} as {role} on {admin.tracking_uri}", file=sys.stderr)
            if generated:
                print(password)
                print("(the password above is shown once; hand it over privately)", file=sys.stderr)
        elif command == "set-password":
            password, generated = _password_from(args.password_stdin)
            server.set_password(args.name, password)
            print(f"changed the password of {args.name!r}", file=sys.stderr)
            if generated:
                print(password)
        elif command == "grant":
            kind, target = ("experiment", args.experiment) if args.experiment else ("model", args.model)
            resource_id = server.grant(args.name, kind, target, args.permission)
            shown = target if target == resource_id else f"{target} (ID {resource_id})"
            print(f"{args.name!r} has {args.permission} on {kind} {shown}", file=sys.stderr)
        elif command == "remove":
            server.remove(args.name)
            print(f"removed {args.name!r}", file=sys.stderr)
    except UsersError as error:
        print(f"mlflow-aws: error: {error}", file=sys.stderr)
        return 1
    return 0


def print_users(server: Server) -> None:
    rows = [("USER", "ADMIN", "PERMISSIONS")]
    for user in server.users():
        name = str(user.get("username"))
        grants = ", ".join(
            f"{row.get('resource_type')} {row.get('resource_pattern')}: {row.get('permission')}"
            for row in server.permissions(name))
        rows.append((name, "yes" if user.get("is_admin") else "no", grants or "-"))
    width = [max(len(row[column]) for row in rows) for column in range(2)]
    for name, is_admin, grants in rows:
        print(f"{name:<{width[0]}}  {is_admin:<{width[1]}}  {grants}")
