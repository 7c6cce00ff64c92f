"""Dependencies carried by a value: whoever takes it waits for the resources it names."""

from __future__ import annotations

from typing import TypeVar

import pulumi

T = TypeVar("T")


def ready_after(value: pulumi.Output[T], *resources: pulumi.CustomResource) -> pulumi.Output[T]:
    """`value`, known only once every one of `resources` exists."""
    return pulumi.Output.all(value, *(resource.id for resource in resources)).apply(lambda values: values[0])
