"""`mlflow-aws users` on a stack with `auth: oidc`: what makes sense when people sign in through the
company's identity provider, as the stack's admin over mlflow-oidc-auth's API; the rest refused, saying why.

    users list                                   people and service accounts, admins, their direct grants
    users add NAME --service-account [--admin]   an account for a program (CI, a prediction service): it
                                                 signs in with access tokens only (mlflow-aws tokens)
    users grant NAME [--group] (--experiment ID|NAME | --model NAME) PERMISSION
                                                 a user's, or with --group an identity provider group's
    users remove NAME                            the account, its tokens and grants

People are not added here: their account is made when they first sign in, if they are in one of the
stack's oidcAllowedGroups (oidcAdminGroup makes them admins). Nobody has a password.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from .oidc_api import PERMISSIONS, USERS, OidcApi, OidcApiError, quoted

EXPERIMENT_GET = "/api/2.0/mlflow/experiments/get"
EXPERIMENT_BY_NAME = "/api/2.0/mlflow/experiments/get-by-name"
MODEL_GET = "/api/2.0/mlflow/registered-models/get"
# Where the permission routes keep one kind of resource (mlflow-oidc-auth's routers/user_permissions.py).
RESOURCE_PATHS = {"experiment": "experiments", "model": "registered-models"}

NO_PEOPLE_HERE = (
    "with auth oidc, people are not added here: their account is made when they first sign in through the "
    "identity provider, if they are in one of the stack's oidcAllowedGroups (oidcAdminGroup makes them "
    "admins). For a program, add a service account: mlflow-aws users add NAME --service-account"
)
NO_PASSWORDS = (
    "with auth oidc nobody has a password: people sign in through the identity provider, and programs use "
    "access tokens (mlflow-aws tokens create, or the UI's Access tokens page)"
)


class OidcUsersError(RuntimeError):
    pass


def subject_path(name: str, *, group: bool) -> str:
    return f"{PERMISSIONS}/{'groups' if group else 'users'}/{quoted(name)}"


def resource_id(api: OidcApi, kind: str, name_or_id: str) -> str:
    """An experiment's ID (given its ID or its name) or a registered model's name, checked to exist."""
    if kind == "experiment":
        if name_or_id.isdigit():
            api.call("GET", EXPERIMENT_GET, query={"experiment_id": name_or_id}, subject=f"experiment {name_or_id}")
            return name_or_id
        found = api.call("GET", EXPERIMENT_BY_NAME, query={"experiment_name": name_or_id},
                         subject=f"experiment {name_or_id!r}")
        return str(found["experiment"]["experiment_id"])
    api.call("GET", MODEL_GET, query={"name": name_or_id}, subject=f"registered model {name_or_id!r}")
    return name_or_id


def grant(api: OidcApi, name: str, *, group: bool, kind: str, name_or_id: str, permission: str) -> str:
    """Give the user (or group) `permission` on the resource, replacing what it had; returns the resource's ID."""
    target = resource_id(api, kind, name_or_id)
    path = f"{subject_path(name, group=group)}/{RESOURCE_PATHS[kind]}/{quoted(target)}"
    what = f"the permission of {'group' if group else 'user'} {name!r} on {kind} {name_or_id!r}"
    try:
        api.call("POST", path, {"permission": permission}, subject=what)
    except OidcApiError as error:
        if "HTTP 409" not in str(error):
            raise
        api.call("PATCH", path, {"permission": permission}, subject=what)
    return target


def details(api: OidcApi) -> list[dict[str, Any]]:
    found = api.call("GET", f"{USERS}/details")
    return sorted((row for row in found if isinstance(row, dict)), key=lambda row: str(row.get("username")))


def direct_grants(api: OidcApi, username: str) -> list[str]:
    """The user's own grants (not those through a group, a pattern or the default), as 'kind name: PERM'."""
    grants: list[str] = []
    for kind, path in RESOURCE_PATHS.items():
        rows = api.call("GET", f"{subject_path(username, group=False)}/{path}", subject=f"user {username!r}")
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("kind") == "user":
                grants.append(f"{kind} {row.get('name') or row.get('id')}: {row.get('permission')}")
    return grants


def print_users(api: OidcApi) -> None:
    rows = [("USER", "ADMIN", "KIND", "ACTIVE", "PERMISSIONS")]
    for user in details(api):
        name = str(user.get("username"))
        rows.append((name, "yes" if user.get("is_admin") else "no",
                     "service account" if user.get("is_service_account") else "person",
                     "yes" if user.get("active", True) else "no", ", ".join(direct_grants(api, name)) or "-"))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("  ".join(f"{cell:<{widths[index]}}" for index, cell in enumerate(row[:4])) + f"  {row[4]}")


def run(command: str, api: OidcApi, admin_username: str, args: Any) -> int:
    """One `users` subcommand on an auth: oidc stack: 0 done, 1 refused (printed)."""
    try:
        if command == "list":
            print_users(api)
        elif command == "add":
            if not args.service_account:
                raise OidcUsersError(NO_PEOPLE_HERE)
            api.call("POST", USERS, {"username": args.name, "display_name": args.name, "is_service_account": True,
                                     "is_admin": bool(args.admin)}, subject=f"service account {args.name!r}")
            print(f"added service account {args.name!r}{' (an administrator)' if args.admin else ''} on "
                  f"{api.tracking_uri}; give it permissions (mlflow-aws users grant) and a token "
                  "(mlflow-aws tokens create --user, or the UI)", file=sys.stderr)
        elif command == "set-password":
            raise OidcUsersError(NO_PASSWORDS)
        elif command == "grant":
            kind, target = ("experiment", args.experiment) if args.experiment else ("model", args.model)
            found = grant(api, args.name, group=args.group, kind=kind, name_or_id=target, permission=args.permission)
            shown = target if target == found else f"{target} (ID {found})"
            print(f"{'group' if args.group else 'user'} {args.name!r} has {args.permission} on {kind} {shown}",
                  file=sys.stderr)
        elif command == "remove":
            if args.name == admin_username:
                raise OidcUsersError(f"{args.name!r} is the stack's admin; the server needs it, so it cannot be "
                                     "removed")
            api.call("DELETE", USERS, {"username": args.name}, subject=f"user {args.name!r}")
            print(f"removed {args.name!r}, its tokens and grants; a person still in an allowed group gets a new, "
                  "empty account at their next sign-in: take them out of the group at the identity provider",
                  file=sys.stderr)
    except (OidcApiError, OidcUsersError) as error:
        print(f"mlflow-aws: error: {error}", file=sys.stderr)
        return 1
    return 0


def refuse_basic_only(args: Mapping[str, Any]) -> str | None:
    """What a basic-auth stack refuses among the OIDC-only options, or None."""
    if args.get("service_account"):
        return ("--service-account: this stack signs in with MLflow's basic auth, where a program is an "
                "ordinary user with a password: mlflow-aws users add NAME")
    if args.get("group"):
        return ("--group: this stack signs in with MLflow's basic auth, which has no groups; grant each user, "
                "or switch the stack to auth oidc")
    return None
