"""Dependencies carried by a value: whoever takes it waits for the resources it names."""

from __future__ import annotations

from typing import Any, TypeVar

import pulumi

T = TypeVar("T")


def ready_after(value: pulumi.Output[T], *resources: pulumi.CustomResource) -> pulumi.Output[T]:
    """`value`, known only once every one of `resources` exists."""
    return pulumi.Output.all(value, *(resource.id for resource in resources)).apply(lambda values: values[0])


def ready_when(value: pulumi.Output[T], signal: pulumi.Input[Any]) -> pulumi.Output[T]:
    """`value`, known only once `signal` is (and carrying its dependencies): for an ordering that only a value
    made later in the program can give, e.g. a deferred output resolved after the resource that signals."""
    return pulumi.Output.all(value, signal).apply(lambda values: values[0])
