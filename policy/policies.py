"""The pack's policies: each check in rules.py wrapped as a CrossGuard policy.

Pulumi hands a policy the resource's properties behind a proxy that raises on values not known
during preview; `plain` copies them into plain dicts and lists with those values as `rules.UNKNOWN`,
so the checks see ordinary data and skip what is not known yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

try:
    from policy import rules
except ImportError:  # Pulumi runs the pack as a directory, with only that directory on sys.path
    import rules  # type: ignore[import-not-found, no-redef]

PACK_NAME = "mlflow-aws-guardrails"


def plain(value: Any) -> Any:
    """A plain copy of Pulumi's property proxies; values unknown during preview become rules.UNKNOWN."""
    if isinstance(value, Mapping):
        copy: dict[str, Any] = {}
        for key in value:
            try:
                copy[key] = plain(value[key])
            except UnknownValueError:
                copy[key] = rules.UNKNOWN
        return copy
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except UnknownValueError:
                items.append(rules.UNKNOWN)
        return items
    return value


def protect_data(config: Mapping[str, Any]) -> bool:
    value = config.get(rules.PROTECT_DATA_KEY, False)
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _resource_policy(rule: rules.ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule.check(args.resource_type, plain(args.props)):
            report_violation(message, None)

    return ResourceValidationPolicy(name=rule.name, description=rule.description, validate=validate)


def _validate_data_protection(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    protected = protect_data(args.get_config())
    for message in rules.check_data_protection(args.resource_type, plain(args.props), protected):
        report_violation(message, None)


def _stack_resources(args: StackValidationArgs) -> list[rules.StackResource]:
    return [
        rules.StackResource(
            type=resource.resource_type,
            props=plain(resource.props),
            urn=resource.urn,
            property_dependencies={
                key: frozenset(dependency.urn for dependency in dependencies)
                for key, dependencies in resource.property_dependencies.items()
            },
        )
        for resource in args.resources
    ]


def _validate_buckets(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for violation in rules.validate_stack(_stack_resources(args)):
        report_violation(violation.message, violation.urn)


def _validate_load_balancer_groups(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for violation in rules.validate_load_balancer_groups(_stack_resources(args)):
        report_violation(violation.message, violation.urn)


POLICIES: list[Policy] = [
    *(_resource_policy(rule) for rule in rules.RESOURCE_RULES),
    ResourceValidationPolicy(
        name=rules.DATA_PROTECTION_RULE,
        description=rules.DATA_PROTECTION_DESCRIPTION,
        validate=_validate_data_protection,
        config_schema=PolicyConfigSchema(
            properties={
                rules.PROTECT_DATA_KEY: {
                    "type": "boolean",
                    "default": False,
                    "description": "The stack keeps its data on destroy (its protectData config is true).",
                }
            }
        ),
    ),
    StackValidationPolicy(
        name=rules.BUCKET_COMPLETENESS_RULE,
        description=rules.BUCKET_COMPLETENESS_DESCRIPTION,
        validate=_validate_buckets,
    ),
    StackValidationPolicy(
        name=rules.LOAD_BALANCER_GROUPS_RULE,
        description=rules.LOAD_BALANCER_GROUPS_DESCRIPTION,
        validate=_validate_load_balancer_groups,
    ),
]
