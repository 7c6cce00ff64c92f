"""`mlflow-aws userdata [--stack NAME]`: print the user data `pulumi up` sends to the host for that stack.

The same path the program takes: the stack's config file, the two facts AWS allocated (bucket name
and Elastic IP, from the outputs; a fleet has no Elastic IP), `host_settings_for`, `userdata.render`:
for a fleet, the user data of its launch template.
"""

from __future__ import annotations

import sys
from pathlib import Path

import userdata
from config import ConfigError, from_stack_files
from host_settings import host_settings_for
from naming import Outputs

from . import outputs


def main(stack: str | None, outputs_source: str | None, project_dir: Path) -> int:
    """`stack` None: the stack the Pulumi CLI has selected."""
    if not (project_dir / "Pulumi.yaml").is_file():
        print(
            f"mlflow-aws: error: no Pulumi.yaml in {project_dir}; run from the project directory or pass --project-dir",
            file=sys.stderr,
        )
        return 2
    if stack is None:
        try:
            stack = outputs.selected_stack(project_dir)
        except outputs.OutputsError as error:
            print(f"mlflow-aws: error: {error}", file=sys.stderr)
            return 2
    try:
        cfg = from_stack_files(str(project_dir), stack)
    except ConfigError as error:
        print(f"mlflow-aws: error: {error}", file=sys.stderr)
        return 2
    try:
        # A fleet (hosts >= 2) has no Elastic IP: its hosts are named by the domain alone.
        needed = [Outputs.ARTIFACT_BUCKET] if cfg.fleet else [Outputs.ARTIFACT_BUCKET, Outputs.PUBLIC_IP]
        values = outputs.require(outputs.load(outputs_source, stack), needed)
    except outputs.OutputsError as error:
        print(f"mlflow-aws: error: {error}", file=sys.stderr)
        return 2
    settings = host_settings_for(
        cfg, artifact_bucket=values[Outputs.ARTIFACT_BUCKET], public_ip=values.get(Outputs.PUBLIC_IP, "")
    )
    sys.stdout.write(userdata.render(settings))
    return 0
