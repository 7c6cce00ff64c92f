"""`mlflow-aws tokens`: access tokens for programs on a stack with `auth: oidc`.

A program (a training job, a prediction container, CI) signs in with a user name and an access token in
the password field, as MLflow's client sends basic auth. mlflow-oidc-auth issues a token only to someone
who signed in through the identity provider (a browser session, or an identity provider token): a token
never mints another, so a leaked one dies with its expiry or its revocation. So:

    tokens create --name NAME [--user USER] [--days N] (--id-token-stdin | --id-token-file FILE)
        a new token, printed once on stdout; the identity provider token proves who asks (an admin's may
        issue one for a service account: --user)
    tokens list --user USER                          a user's tokens (never their secrets), as the stack admin
    tokens revoke --user USER (--name NAME | --all)  stops them at once, as the stack admin

People can do the same in the server's UI (their name, then "Access tokens").
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .auth_mode import stack_auth
from .oidc_api import USERS, Credentials, OidcApi, OidcApiError, quoted
from .outputs import OutputsError

DEFAULT_DAYS = 90
MAX_DAYS = 365  # mlflow-oidc-auth issues tokens for at most a year
MAX_NAME_LENGTH = 255


class TokensError(RuntimeError):
    pass


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise TokensError(f"--name {name!r}: a token needs a name of 1 to {MAX_NAME_LENGTH} characters, e.g. ci")
    return name


def check_days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise TokensError(f"--days {days}: a token lives 1 to {MAX_DAYS} days (the server's limit)")
    return days


def read_secret_line(source: str | None, *, stdin: bool, what: str, flag: str) -> str:
    """The first line of stdin (`stdin`) or of the file `source`, without its line break."""
    if stdin:
        line = sys.stdin.readline()
    else:
        assert source is not None
        try:
            line = Path(source).read_text(encoding="utf-8").splitlines()[0] if Path(source).stat().st_size else ""
        except OSError as error:
            raise TokensError(f"cannot read {what} from {source}: {error.strerror or error}") from None
    value = line.rstrip("\r\n")
    if not value.strip():
        raise TokensError(f"{what} is empty; give it with {flag}")
    return value


def expiration(days: int, now: datetime.datetime | None = None) -> str:
    moment = (now or datetime.datetime.now(datetime.timezone.utc)) + datetime.timedelta(days=days)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def create(api: OidcApi, name: str, days: int, user: str | None) -> dict[str, Any]:
    path = f"{USERS}/{quoted(user)}/tokens" if user else f"{USERS}/current/tokens"
    created = api.call("POST", path, {"name": name, "expiration": expiration(days)},
                       subject=f"a token named {name!r}" + (f" for {user!r}" if user else ""))
    if not isinstance(created, dict) or "token" not in created:
        raise TokensError(f"{path} issued no token: {str(created)[:200]}")
    return created


def user_tokens(api: OidcApi, user: str) -> list[dict[str, Any]]:
    found = api.call("GET", f"{USERS}/{quoted(user)}/tokens", subject=f"user {user!r}")
    tokens = found.get("tokens", []) if isinstance(found, dict) else []
    return [token for token in tokens if isinstance(token, dict)]


def revoke(api: OidcApi, user: str, name: str | None) -> int:
    """Delete `user`'s token named `name`, or all of them (None); returns how many."""
    if name is None:
        revoked = api.call("DELETE", f"{USERS}/{quoted(user)}/tokens", subject=f"user {user!r}")
        return int(revoked.get("revoked", 0)) if isinstance(revoked, dict) else 0
    matching = [token for token in user_tokens(api, user) if token.get("name") == name]
    if not matching:
        raise TokensError(f"{user!r} has no token named {name!r}; see `mlflow-aws tokens list --user {user}`")
    for token in matching:
        api.call("DELETE", f"{USERS}/{quoted(user)}/tokens/{token['id']}", subject=f"token {name!r} of {user!r}")
    return len(matching)


def print_tokens(tokens: list[dict[str, Any]]) -> None:
    rows = [("NAME", "PREFIX", "EXPIRES", "LAST USED", "ACTIVE")]
    rows += [(str(t.get("name")), str(t.get("token_prefix") or "-"), str(t.get("expires_at")),
              str(t.get("last_used_at") or "never"), "yes" if t.get("active") else "no") for t in tokens]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("  ".join(f"{cell:<{widths[index]}}" for index, cell in enumerate(row[:4])) + f"  {row[4]}")


def run(outputs: Mapping[str, Any], args: Any) -> int:
    """One `tokens` subcommand: 0 done, 1 refused (printed), 2 bad outputs or arguments."""
    try:
        if stack_auth(outputs) != "oidc":
            print("mlflow-aws: error: this stack signs in with MLflow's basic auth, which has no access tokens: "
                  "give a program its own user (mlflow-aws users add NAME) and write its env file with "
                  "mlflow-aws env --user NAME --password-stdin", file=sys.stderr)
            return 2
        if args.tokens_command == "create":
            name, days = check_name(args.name), check_days(args.days)
            identity_token = read_secret_line(args.id_token_file, stdin=args.id_token_stdin,
                                              what="the identity provider token",
                                              flag="--id-token-stdin or --id-token-file")
            api = OidcApi(Credentials.identity_token(outputs, identity_token))
            created = create(api, name, days, args.user)
            print(created["token"])
            print(f"(the token above is shown once; it expires {created.get('expires_at')}; give it to the program "
                  "with: mlflow-aws env --user NAME --password-stdin)", file=sys.stderr)
            return 0
        api = OidcApi(Credentials.stack_admin(outputs))
        if args.tokens_command == "list":
            print_tokens(user_tokens(api, args.user))
        elif args.tokens_command == "revoke":
            count = revoke(api, args.user, None if args.all else check_name(args.name))
            print(f"revoked {count} token(s) of {args.user!r}; they stop working at once", file=sys.stderr)
    except OutputsError as error:
        print(f"mlflow-aws: error: {error}", file=sys.stderr)
        return 2
    except (TokensError, OidcApiError) as error:
        print(f"mlflow-aws: error: {error}", file=sys.stderr)
        return 1
    return 0
