"""`mlflow-aws`: connect clients to a deployed stack and prove it works and is locked down.

    mlflow-aws env      [--outputs FILE|-] [--stack NAME] [--out FILE|-]
    mlflow-aws smoke    [--env FILE]
    mlflow-aws verify   [--outputs FILE|-] [--stack NAME] [--region R]
    mlflow-aws userdata [--stack NAME] [--outputs FILE|-] [--project-dir DIR] [--files]
    mlflow-aws users    add|list|set-password|grant|remove ... [--outputs FILE|-] [--stack NAME]

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
    return parser


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
    remove = action("remove", "delete a user")
    remove.add_argument("name")


def _check_exclusive(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.command in ("env", "verify", "users") and args.outputs is not None and args.stack is not None:
        parser.error("--outputs and --stack both name where the outputs come from; pass one of them")


def fail(message: str) -> int:
    print(f"mlflow-aws: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def run_env(args: argparse.Namespace) -> int:
    try:
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
    from . import users

    try:
        stack_outputs = outputs.load(args.outputs, args.stack)
    except outputs.OutputsError as error:
        return fail(str(error))
    return users.run(args.users_command, stack_outputs, args)


COMMANDS = {"env": run_env, "smoke": run_smoke, "verify": run_verify, "userdata": run_userdata, "users": run_users}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_exclusive(parser, args)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
