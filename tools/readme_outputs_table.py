"""The README's stack outputs table, generated from its one declaration, `OUTPUTS` below.

    python -m tools.readme_outputs_table                    # print the table
    python -m tools.readme_outputs_table --check README.md  # exit 1 with a diff when the README's table differs
    python -m tools.readme_outputs_table --write README.md  # rewrite the README's table in place

The table sits between `<!-- outputs-table:begin -->` and `<!-- outputs-table:end -->`. The names are
`naming.Outputs`; tests/unit/test_outputs_table.py runs the program under mocks in both shapes (one host,
a fleet) with and without the optional outputs and requires exactly the declared outputs, so a new export
without a row here (or a row for an output the program no longer exports) fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from naming import Outputs

from .readme_config_table import TableError, replace_table, table_diff

BEGIN_MARKER = "<!-- outputs-table:begin -->"
END_MARKER = "<!-- outputs-table:end -->"

SINGLE_HOST = "single host"
FLEET = "fleet"
BOTH_SHAPES = frozenset({SINGLE_HOST, FLEET})


@dataclass(frozen=True)
class OutputRow:
    name: str
    description: str
    shapes: frozenset[str] = BOTH_SHAPES
    # The boolean config key that must be true for the output to exist; "" when the shape alone decides.
    when: str = ""

    @property
    def secret(self) -> bool:
        return self.name in Outputs.SECRET

    def exported(self, shape: str, config: frozenset[str]) -> bool:
        """Whether a stack of `shape` whose true boolean keys are `config` exports this output."""
        return shape in self.shapes and (not self.when or self.when in config)


OUTPUTS: tuple[OutputRow, ...] = (
    OutputRow(Outputs.TRACKING_URI, "The URL for `MLFLOW_TRACKING_URI` and the browser."),
    OutputRow(Outputs.HOSTNAME, "The name the server's certificate is for: `domain`, else the Elastic IP."),
    OutputRow(Outputs.PUBLIC_IP, "The Elastic IP: the server's address, kept when the host is replaced.",
              frozenset({SINGLE_HOST})),
    OutputRow(Outputs.INSTANCE_ID, "The EC2 host (`mlflow-aws verify` reads it back).", frozenset({SINGLE_HOST})),
    OutputRow(Outputs.SSM_SESSION_COMMAND, "The command that opens a shell on the host (SSM Session Manager).",
              frozenset({SINGLE_HOST})),
    OutputRow(Outputs.LOAD_BALANCER_DNS_NAME, "The load balancer's own name; `domain` is an alias of it.",
              frozenset({FLEET})),
    OutputRow(Outputs.AUTOSCALING_GROUP_NAME,
              "The Auto Scaling group that keeps the hosts; its instances are the targets of SSM sessions.",
              frozenset({FLEET})),
    OutputRow(Outputs.LOAD_BALANCER_SECURITY_GROUP_ID, "The load balancer's security group: 80 and 443 from "
              "`allowedCidrs`.", frozenset({FLEET})),
    OutputRow(Outputs.ARTIFACT_BUCKET, "The S3 bucket of the artifacts."),
    OutputRow(Outputs.ARTIFACT_DESTINATION, "The `s3://` root the server writes artifacts to."),
    OutputRow(Outputs.HOST_FILES_BUCKET, "The private bucket the host's files travel in (one object per version of "
              "them, read by the host's role alone); `mlflow-aws userdata --files` prints them."),
    OutputRow(Outputs.DB_ENDPOINT, "The RDS endpoint (private: reachable from the hosts only)."),
    OutputRow(Outputs.DB_INSTANCE_ID, "The RDS instance, for `aws rds` commands such as a snapshot before an "
              "upgrade ([Safety](#safety)); `mlflow-aws verify` reads it back."),
    OutputRow(Outputs.DB_FINAL_SNAPSHOT, "The snapshot RDS takes when a destroy deletes the database "
              "([Safety](#safety)).", when="protectData"),
    OutputRow(Outputs.REGION, "The stack's AWS region."),
    OutputRow(Outputs.AUTH, "How people sign in: `basic` (passwords) or `oidc` (the identity provider); "
                            "`mlflow-aws` reads it."),
    OutputRow(Outputs.ADMIN_USERNAME, "The MLflow administrator (with `auth: oidc`, an account for programs "
                                      "such as `mlflow-aws`, not a person)."),
    OutputRow(Outputs.ADMIN_PASSWORD, "The administrator's password."),
    OutputRow(Outputs.WEB_SECURITY_GROUP_ID, "The hosts' security group: 80 and 443 from `allowedCidrs` (a fleet's "
              "hosts: 80 from the load balancer only); `mlflow-aws verify` checks it."),
    OutputRow(Outputs.DB_SECURITY_GROUP_ID, "The database's security group: 5432 from the hosts only (also for a "
              "database restored from a snapshot)."),
    OutputRow(Outputs.CLIENT_ACCESS_KEY_ID, "A read-only IAM user's access key, for clients that read the bucket "
              "directly.", when="clientAccess"),
    OutputRow(Outputs.CLIENT_SECRET_ACCESS_KEY, "That user's secret access key.", when="clientAccess"),
    OutputRow(Outputs.DASHBOARD_URL, "The stack's CloudWatch dashboard; `monitoring` is on by default "
              "([Monitoring](#monitoring)).", when="monitoring"),
)
HEADER = ("Output", "Exported by", "What it is")


def declared_names() -> list[str]:
    """Every output name of `naming.Outputs` (its upper-case string attributes)."""
    return [value for key, value in vars(Outputs).items() if key.isupper() and isinstance(value, str)]


def _exported_by(row: OutputRow) -> str:
    shape = "every stack" if row.shapes == BOTH_SHAPES else (
        "a single host (`hosts: 1`)" if row.shapes == {SINGLE_HOST} else "a fleet (`hosts` 2 or more)")
    return f"{shape}, with `{row.when}: true`" if row.when else shape


def render_table(rows: Sequence[OutputRow] = OUTPUTS) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for row in rows:
        secret = " A secret: add `--show-secrets`." if row.secret else ""
        lines.append(f"| `{row.name}` | {_exported_by(row)} | {row.description}{secret} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The README's stack outputs table, from tools/readme_outputs_table.py")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", metavar="README", type=Path, help="exit 1 with a diff when the table differs")
    action.add_argument("--write", metavar="README", type=Path, help="rewrite the table in place")
    args = parser.parse_args(argv)

    table = render_table()
    try:
        if args.check:
            diff = table_diff(args.check.read_text(), table, str(args.check), BEGIN_MARKER, END_MARKER,
                              "tools/readme_outputs_table.py")
            if diff:
                sys.stderr.write(diff)
                sys.stderr.write(f"\nfix: python -m tools.readme_outputs_table --write {args.check}\n")
                return 1
            return 0
        if args.write:
            args.write.write_text(replace_table(args.write.read_text(), table, BEGIN_MARKER, END_MARKER))
            return 0
    except TableError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
