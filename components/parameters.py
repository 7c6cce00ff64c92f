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
) -> dict[naming.SsmParameter, aws.ssm.Parameter]:
    created: dict[naming.SsmParameter, aws.ssm.Parameter] = {}
    for parameter, value in values:
        created[parameter] = aws.ssm.Parameter(
            f"{name}-{parameter.suffix.replace('/', '-')}",
            name=naming.parameter_name(ssm_prefix, parameter),
            type="SecureString" if parameter.secure else "String",
            value=value,
            description=f"{described_as}: {parameter.suffix}",
            opts=pulumi.ResourceOptions(parent=parent),
        )
    return created


def parameter_versions(*parameters: aws.ssm.Parameter) -> pulumi.Output[str]:
    """`<suffix>=v<version>` for each parameter: changes whenever one of their values does, and holds no value."""
    return pulumi.Output.all(*(parameter.name for parameter in parameters),
                             *(parameter.version for parameter in parameters)).apply(
        lambda facts: " ".join(
            f"{name.rsplit('/', 1)[-1]}=v{version}"
            for name, version in zip(facts[: len(parameters)], facts[len(parameters):], strict=True)
        )
    )
