"""`mlflow-aws userdata [--stack NAME]`: print the user data `pulumi up` sends to the host for that stack.

The same path the program takes: the stack's config file, the facts AWS allocated (the two buckets' names
and the Elastic IP, from the outputs; a fleet has no Elastic IP), `host_settings_for`, `userdata.render`:
for a fleet, the user data of its launch template. `--files` prints the host's files instead, as the object
the user data names holds them (DESIGN decision 16).
"""

from __future__ import annotations

import sys
from pathlib import Path

import userdata
from config import ConfigError, from_stack_files
from host_settings import host_settings_for
from naming import Outputs

from . import outputs


def host_files_text(settings: userdata.HostSettings) -> str:
    """Each host file with a header line: its path, owner, mode and whether it waits for the packages."""
    bundle = userdata.host_bundle(settings)
    lines = [f"# s3://{settings.host_files_bucket}/{bundle.key}\n"]
    for file in userdata.host_files(settings):
        stage = "deferred" if file.defer else "early"
        lines.append(f"\n# {file.path} ({file.owner} {file.permissions}, {stage})\n{file.content}")
    return "".join(lines)


def main(stack: str | None, outputs_source: str | None, project_dir: Path, files: bool = False) -> int:
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
        needed = [Outputs.ARTIFACT_BUCKET, Outputs.HOST_FILES_BUCKET, *([] if cfg.fleet else [Outputs.PUBLIC_IP])]
        values = outputs.require(outputs.load(outputs_source, stack), needed)
    except outputs.OutputsError as error:
        print(f"mlflow-aws: error: {error}", file=sys.stderr)
        return 2
    settings = host_settings_for(
        cfg, artifact_bucket=values[Outputs.ARTIFACT_BUCKET], host_files_bucket=values[Outputs.HOST_FILES_BUCKET],
        public_ip=values.get(Outputs.PUBLIC_IP, ""),
    )
    sys.stdout.write(host_files_text(settings) if files else userdata.render(settings))
    return 0
