"""SSM parameters under the stack's prefix, the way the host expects them (names from naming.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

import naming


def put_parameters(
    name: str,
    ssm_prefix: str,
    values: Sequence[tuple[naming.SsmParameter, pulumi.Input[str]]],
    *,
    described_as: str,
    parent: pulumi.Resource,
) -> None:
    for parameter, value in values:
        aws.ssm.Parameter(
            f"{name}-{parameter.suffix.replace('/', '-')}",
            name=naming.parameter_name(ssm_prefix, parameter),
            type="SecureString" if parameter.secure else "String",
            value=value,
            description=f"{described_as}: {parameter.suffix}",
            opts=pulumi.ResourceOptions(parent=parent),
        )
