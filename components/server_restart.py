"""ServerRestart: restarts MLflow on the host whenever the admin's SSM parameters (or, with auth oidc, the
identity provider's client secret) change.

The host reads the admin's name and password from SSM when mlflow.service starts (its configure
step), so a rename or a new password in SSM alone changes nothing on a running host. This State
Manager association runs a shell command on the host through the SSM agent; AWS runs an association
again each time it is updated, and the command carries the parameters' versions (never their
values), so every `pulumi up` that changes one restarts the service, whose configure step then makes
the new admin (and demotes a renamed one). A service still starting for the first time is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from userdata import layout

RUN_SHELL_DOCUMENT = "AWS-RunShellScript"


@dataclass
class ServerRestartArgs:
    # Which hosts: "InstanceIds" and the single host's id, or a fleet's group by its tag.
    target_key: str
    target_values: pulumi.Input[list[pulumi.Input[str]]]
    revision: pulumi.Input[str]  # what the command is keyed on: parameter versions, no secret
    max_concurrency: str | None = None  # "1": a fleet restarts one host at a time


def restart_command(revision: str) -> str:
    service = layout.UNIT_NAME
    return (
        "# mlflow-aws: the admin's SSM parameters changed; MLflow re-reads them when it starts\n"
        f"# {revision}\n"
        f"if systemctl is-active --quiet {service}; then systemctl restart {service}; fi\n"
    )


class ServerRestart(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServerRestartArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:compute:ServerRestart", name, None, opts)
        aws.ssm.Association(
            f"{name}-admin-restart",
            association_name=f"{name}-mlflow-admin-restart",
            name=RUN_SHELL_DOCUMENT,
            targets=[aws.ssm.AssociationTargetArgs(key=args.target_key, values=args.target_values)],
            parameters={"commands": pulumi.Output.from_input(args.revision).apply(restart_command)},
            max_concurrency=args.max_concurrency,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
