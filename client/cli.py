"""`mlflow-aws`: connect clients to a deployed stack and prove it works and is locked down.

    mlflow-aws env      [--outputs FILE|-] [--stack NAME] [--out FILE|-]
    mlflow-aws smoke    [--env FILE]
    mlflow-aws verify   [--outputs FILE|-] [--stack NAME] [--region R]
    mlflow-aws userdata --stack NAME [--outputs FILE|-] [--project-dir DIR]

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


def _add_outputs_source(parser: argparse.ArgumentParser, *, stack_required: bool = False) -> None:
    parser.add_argument(
        "--outputs", metavar="FILE", help="JSON of `pulumi stack output --json --show-secrets`; - reads stdin"
    )
    parser.add_argument(
        "--stack",
        metavar="NAME",
        required=stack_required,
        help="stack to read outputs from with the Pulumi CLI (default: the selected stack)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlflow-aws", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    env = commands.add_parser("env", help="write the env file for MLFLOW_TRACKING_URI and credentials")
    _add_outputs_source(env)
    env.add_argument("--out", metavar="FILE", default=DEFAULT_ENV_FILE,
                     help=f"file to write (mode 0600), - for stdout (default: {DEFAULT_ENV_FILE})")

    smoke = commands.add_parser("smoke", help="log a run, an artifact and a model version, and read them back")
    smoke.add_argument("--env", metavar="FILE",
                       help="env file written by `mlflow-aws env` (default: the MLFLOW_* environment variables)")

    verify = commands.add_parser("verify", help="check the deployed resources are locked down")
    _add_outputs_source(verify)
    verify.add_argument("--region", metavar="R", help="AWS region (default: the stack's region output)")

    userdata = commands.add_parser("userdata", help="print the user data `pulumi up` sends for a stack")
    _add_outputs_source(userdata, stack_required=True)
    userdata.add_argument("--project-dir", metavar="DIR", default=".",
                          help="directory holding Pulumi.yaml and Pulumi.<stack>.yaml (default: .)")
    return parser


def _check_exclusive(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.command in ("env", "verify") and args.outputs is not None and args.stack is not None:
        parser.error("--outputs and --stack both name where the outputs come from; pass one of them")


def fail(message: str) -> int:
    print(f"mlflow-aws: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def run_env(args: argparse.Namespace) -> int:
    try:
        pairs = envfile.variables(outputs.load(args.outputs, args.stack))
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

    return userdata_cmd.main(args.stack, args.outputs, Path(args.project_dir))


COMMANDS = {"env": run_env, "smoke": run_smoke, "verify": run_verify, "userdata": run_userdata}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_exclusive(parser, args)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
