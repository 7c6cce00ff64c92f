"""ServerRestart: restarts MLflow on the stack's hosts whenever the admin's SSM parameters (or, with auth oidc,
the identity provider's client secret) change.

The host reads the admin's name and password from SSM when mlflow.service starts (its configure step), so
a rename or a new password in SSM alone changes nothing on a running host. This State Manager association
runs the host's restart step (userdata: layout.ADMIN_RESTART_SCRIPT) through the SSM agent, on every host
carrying the stack's naming.HOST_TAG, one host at a time. AWS runs an association again each time it is
updated, and on every new instance its targets come to include, so what it carries changes only with what
it is for: the parameters' versions (never their values). The targets (a tag both shapes' hosts carry), the
command and the concurrency are the same for a single host and a fleet, so neither a host replacement nor
`hosts` 1 <-> 2 changes the association. The step itself restarts MLflow only where the running server
started before those versions (a new host already read them), and in a fleet takes the host out of the
load balancer's target group first.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

import naming
from userdata import layout

RUN_SHELL_DOCUMENT = "AWS-RunShellScript"
# One host at a time: the others keep serving while it restarts.
MAX_CONCURRENCY = "1"


@dataclass
class ServerRestartArgs:
    host_tag_value: str  # naming.HOST_TAG's value on the stack's hosts
    revision: pulumi.Input[str]  # what the command is keyed on: parameter versions, no secret


def restart_command(revision: str) -> str:
    return (
        "# mlflow-aws: the admin's SSM parameters changed; MLflow re-reads them when it starts\n"
        f"{layout.ADMIN_RESTART_SCRIPT} {shlex.quote(revision)}\n"
    )


class ServerRestart(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServerRestartArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:compute:ServerRestart", name, None, opts)
        aws.ssm.Association(
            f"{name}-admin-restart",
            association_name=f"{name}-mlflow-admin-restart",
            name=RUN_SHELL_DOCUMENT,
            targets=[aws.ssm.AssociationTargetArgs(key=f"tag:{naming.HOST_TAG}", values=[args.host_tag_value])],
            parameters={"commands": pulumi.Output.from_input(args.revision).apply(restart_command)},
            max_concurrency=MAX_CONCURRENCY,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
