"""`mlflow-aws`: connect clients to a deployed stack and prove it works and is locked down.

    mlflow-aws env      [--outputs FILE|-] [--stack NAME] [--out FILE|-]
                        [--user NAME (--password-stdin | --password-file FILE) [--no-check]]
    mlflow-aws smoke    [--env FILE]
    mlflow-aws verify   [--outputs FILE|-] [--stack NAME] [--region R]
    mlflow-aws userdata [--stack NAME] [--outputs FILE|-] [--project-dir DIR] [--files]
    mlflow-aws users    add|list|set-password|grant|remove ... [--outputs FILE|-] [--stack NAME]
    mlflow-aws tokens   create|list|revoke ... [--outputs FILE|-] [--stack NAME]      (auth: oidc)

Bad arguments or outputs print one line naming the problem and the fix, and exit 2 with nothing written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import envfile, outputs

USAGE_ERROR = 2
DESCRIPTION = "Connect clients to a deployed mlflow-aws stack, and prove it works and is locked down."
DEFAULT_ENV_FILE = "mlflow.env"


def _add_outputs_source(parser: argparse.ArgumentParser, stack_help: str = "") -> None:
    parser.add_argument(
        "--outputs", metavar="FILE", help="JSON of `pulumi stack output --json --show-secrets`; - reads stdin"
    )
    parser.add_argument(
        "--stack",
        metavar="NAME",
        help=stack_help or "stack to read outputs from with the Pulumi CLI (default: the selected stack)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlflow-aws", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    env = commands.add_parser("env", help="write the env file for MLFLOW_TRACKING_URI and credentials")
    _add_outputs_source(env)
    env.add_argument("--out", metavar="FILE", default=DEFAULT_ENV_FILE,
                     help=f"file to write (mode 0600), - for stdout (default: {DEFAULT_ENV_FILE})")
    env.add_argument("--proxy-artifacts", action="store_true",
                     help="keep every artifact byte on the tracking URI (no presigned S3 transfers), for "
                          "clients that cannot reach S3")
    _add_user_credentials(env)

    smoke = commands.add_parser("smoke", help="log a run, an artifact and a model version, and read them back")
    smoke.add_argument("--env", metavar="FILE",
                       help="env file written by `mlflow-aws env` (default: the MLFLOW_* environment variables)")

    verify = commands.add_parser("verify", help="check the deployed resources are locked down")
    _add_outputs_source(verify)
    verify.add_argument("--region", metavar="R", help="AWS region (default: the stack's region output)")

    userdata = commands.add_parser("userdata", help="print the user data `pulumi up` sends for a stack")
    _add_outputs_source(
        userdata,
        "stack whose Pulumi.NAME.yaml (and, without --outputs, outputs) are read (default: the selected stack)",
    )
    userdata.add_argument("--project-dir", metavar="DIR", default=".",
                          help="directory holding Pulumi.yaml and Pulumi.<stack>.yaml (default: .)")
    userdata.add_argument("--files", action="store_true",
                          help="print the host's files (the S3 object the user data names) instead")
    _add_users(commands)
    _add_tokens(commands)
    return parser


def _add_user_credentials(env: argparse.ArgumentParser) -> None:
    env.add_argument("--user", metavar="NAME",
                     help="sign the program in as NAME instead of the stack's admin: with auth basic NAME's "
                          "password, with auth oidc an access token NAME was issued")
    secret = env.add_mutually_exclusive_group()
    secret.add_argument("--password-stdin", action="store_true",
                        help="with --user: read the password or access token from standard input")
    secret.add_argument("--password-file", metavar="FILE",
                        help="with --user: read the password or access token from the first line of FILE")
    env.add_argument("--no-check", action="store_true",
                     help="with --user: write the file without first signing in to the server with it")


def _add_tokens(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from . import tokens

    parser = commands.add_parser("tokens", help="access tokens for programs (auth oidc)")
    actions = parser.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="issue an access token, printed once (needs an identity "
                                               "provider token: you sign in, not a token)")
    _add_outputs_source(create)
    create.add_argument("--name", required=True, help="what the token is for, e.g. ci or churn-predictor")
    create.add_argument("--user", metavar="NAME", help="for another user, e.g. a service account (admins only)")
    create.add_argument("--days", type=int, default=tokens.DEFAULT_DAYS,
                        help=f"days until it expires, 1 to {tokens.MAX_DAYS} (default: {tokens.DEFAULT_DAYS})")
    proof = create.add_mutually_exclusive_group(required=True)
    proof.add_argument("--id-token-stdin", action="store_true",
                       help="read your identity provider ID token (issued to the stack's oidcClientId) from stdin")
    proof.add_argument("--id-token-file", metavar="FILE", help="read it from the first line of FILE")
    listing = actions.add_parser("list", help="a user's tokens (never their secrets), as the stack's admin")
    _add_outputs_source(listing)
    listing.add_argument("--user", metavar="NAME", required=True)
    revoke = actions.add_parser("revoke", help="revoke a user's token by name, or all of them, as the stack's admin")
    _add_outputs_source(revoke)
    revoke.add_argument("--user", metavar="NAME", required=True)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--name", help="the token's name")
    which.add_argument("--all", action="store_true", help="every token of the user")


def _add_users(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from . import users

    parser = commands.add_parser("users", help="add, list and remove MLflow users and grant them permissions")
    actions = parser.add_subparsers(dest="users_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text)
        _add_outputs_source(sub)
        return sub

    action("list", "every user, whether an admin, and their direct permissions")
    add = action("add", "create a user (a generated password is printed once)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="make the user an MLflow administrator")
    add.add_argument("--service-account", action="store_true",
                     help="auth oidc: an account for a program, which signs in with access tokens only")
    add.add_argument("--password-stdin", action="store_true",
                     help=f"read the password from standard input (at least {users.MIN_PASSWORD_LENGTH} characters)")
    password = action("set-password", "give a user a new password (a generated one is printed once)")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true", help="read the new password from standard input")
    grant = action("grant", "give a user a permission on one experiment or registered model")
    grant.add_argument("name")
    target = grant.add_mutually_exclusive_group(required=True)
    target.add_argument("--experiment", metavar="ID|NAME", help="the experiment, by ID or name")
    target.add_argument("--model", metavar="NAME", help="the registered model, by name")
    grant.add_argument("permission", choices=users.PERMISSIONS, type=str.upper,
                       help="READ, USE, EDIT or MANAGE (MANAGE also lets them grant others)")
    grant.add_argument("--group", action="store_true",
                       help="auth oidc: NAME is an identity provider group; every member gets the permission")
    remove = action("remove", "delete a user")
    remove.add_argument("name")


def _check_exclusive(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.command in ("env", "verify", "users", "tokens") and args.outputs is not None and args.stack is not None:
        parser.error("--outputs and --stack both name where the outputs come from; pass one of them")
    if args.command == "env" and args.user is None and (args.password_stdin or args.password_file or args.no_check):
        parser.error("--password-stdin, --password-file and --no-check go with --user NAME")
    if args.command == "env" and args.user is not None and not (args.password_stdin or args.password_file):
        parser.error(f"--user {args.user}: give its password (auth basic) or access token (auth oidc) with "
                     "--password-stdin or --password-file FILE, never on the command line")


def fail(message: str) -> int:
    print(f"mlflow-aws: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def run_env(args: argparse.Namespace) -> int:
    try:
        if args.user is not None:
            pairs = _user_pairs(args)
        else:
            pairs = envfile.variables(outputs.load(args.outputs, args.stack), proxy_artifacts=args.proxy_artifacts)
    except (outputs.OutputsError, envfile.EnvFileError) as error:
        return fail(str(error))
    text = envfile.render(pairs)
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    try:
        envfile.write(Path(args.out), text)
    except OSError as error:
        return fail(f"cannot write {args.out}: {error.strerror or error}; pass --out with a writable path")
    print(f"wrote {args.out} ({', '.join(name for name, _ in pairs)}); keep it out of git", file=sys.stderr)
    return 0


def _user_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    from . import tokens, user_env

    stack_outputs = outputs.load(args.outputs, args.stack)
    try:
        secret = tokens.read_secret_line(args.password_file, stdin=args.password_stdin,
                                         what=f"{args.user}'s password or access token",
                                         flag="--password-stdin or --password-file")
        return user_env.user_variables(stack_outputs, args.user, secret, check=not args.no_check,
                                       proxy_artifacts=args.proxy_artifacts)
    except (tokens.TokensError, user_env.UserEnvError) as error:
        raise envfile.EnvFileError(str(error)) from None


def run_smoke(args: argparse.Namespace) -> int:
    from . import smoke

    return smoke.main(args.env)


def run_verify(args: argparse.Namespace) -> int:
    from .verify import runner

    try:
        stack_outputs = outputs.load(args.outputs, args.stack)
    except outputs.OutputsError as error:
        return fail(str(error))
    return runner.main(stack_outputs, args.region)


def run_userdata(args: argparse.Namespace) -> int:
    from . import userdata_cmd

    return userdata_cmd.main(args.stack, args.outputs, Path(args.project_dir), files=args.files)


def run_users(args: argparse.Namespace) -> int:
    from . import oidc_users, users
    from .auth_mode import stack_auth
    from .oidc_api import Credentials, OidcApi

    try:
        stack_outputs = outputs.load(args.outputs, args.stack)
        if stack_auth(stack_outputs) == "oidc":
            credentials = Credentials.stack_admin(stack_outputs)
            admin = str(stack_outputs.get("admin_username"))
            return oidc_users.run(args.users_command, OidcApi(credentials), admin, args)
    except outputs.OutputsError as error:
        return fail(str(error))
    refusal = oidc_users.refuse_basic_only(vars(args))
    if refusal:
        return fail(refusal)
    return users.run(args.users_command, stack_outputs, args)


def run_tokens(args: argparse.Namespace) -> int:
    from . import tokens

    try:
        stack_outputs = outputs.load(args.outputs, args.stack)
    except outputs.OutputsError as error:
        return fail(str(error))
    return tokens.run(stack_outputs, args)


COMMANDS = {"env": run_env, "smoke": run_smoke, "verify": run_verify, "userdata": run_userdata, "users": run_users,
            "tokens": run_tokens}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_exclusive(parser, args)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
