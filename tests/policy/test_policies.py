"""The pack's wiring (policy/policies.py), called the way the analyzer calls it, without its server.

Properties go in behind pulumi_policy's own unknown-checking proxy, as the analyzer builds them, so
these tests prove a preview's unknown values reach the checks as `rules.UNKNOWN` instead of raising.
"""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import (
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import PolicyCustomTimeouts
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policy import policies, rules

OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def policy_named(name: str) -> Any:
    return next(policy for policy in policies.POLICIES if policy.name == name)


def run_resource_policy(
    name: str, resource_type: str, props: dict[str, Any], config: dict[str, Any] | None = None
) -> list[tuple[str, str | None]]:
    policy = policy_named(name)
    assert isinstance(policy, ResourceValidationPolicy)
    reported: list[tuple[str, str | None]] = []

    def report(message: str, urn: str | None = None) -> None:
        reported.append((message, urn))

    args = ResourceValidationArgs(
        resource_type, unknown_checking_proxy(props), f"urn:pulumi:dev::mlflow-aws::{resource_type}::r", "r",
        OPTIONS, None, config,
    )
    policy.validate(args, report)
    return reported


def test_the_pack_has_one_policy_per_rule() -> None:
    names = [policy.name for policy in policies.POLICIES]
    expected = [rule.name for rule in rules.RESOURCE_RULES]
    expected += [rules.DATA_PROTECTION_RULE, rules.BUCKET_COMPLETENESS_RULE, rules.LOAD_BALANCER_GROUPS_RULE]
    assert names == expected
    assert policies.PACK_NAME == "mlflow-aws-guardrails"


def test_plain_turns_unknown_values_into_the_sentinel() -> None:
    proxied = unknown_checking_proxy(
        {"a": UNKNOWN_STRING_VALUE, "b": [1, UNKNOWN_BOOLEAN_VALUE, {"c": UNKNOWN_STRING_VALUE}], "d": "x"}
    )
    assert policies.plain(proxied) == {"a": rules.UNKNOWN, "b": [1, rules.UNKNOWN, {"c": rules.UNKNOWN}], "d": "x"}


def test_resource_policy_reports_each_violation() -> None:
    reported = run_resource_policy(
        "rds-private-encrypted-backed-up", rules.RDS_INSTANCE, {"publiclyAccessible": True, "storageEncrypted": False}
    )
    assert [message.split(" ")[0] for message, _ in reported] == ["publiclyAccessible", "storageEncrypted"]


def test_resource_policy_skips_values_unknown_in_preview() -> None:
    props = {"publiclyAccessible": UNKNOWN_BOOLEAN_VALUE, "storageEncrypted": UNKNOWN_BOOLEAN_VALUE}
    assert run_resource_policy("rds-private-encrypted-backed-up", rules.RDS_INSTANCE, props) == []


UNPROTECTED_RDS = {"storageEncrypted": True, "deletionProtection": False, "skipFinalSnapshot": True}


@pytest.mark.parametrize("config", [None, {}, {"protectData": False}, {"protectData": "false"}])
def test_data_protection_is_off_by_default(config: dict[str, Any] | None) -> None:
    assert run_resource_policy("data-protection", rules.RDS_INSTANCE, UNPROTECTED_RDS, config) == []


@pytest.mark.parametrize("config", [{"protectData": True}, {"protectData": "true"}])
def test_data_protection_follows_the_policy_config(config: dict[str, Any]) -> None:
    reported = run_resource_policy("data-protection", rules.RDS_INSTANCE, UNPROTECTED_RDS, config)
    messages = [message for message, _ in reported]
    assert any("deletionProtection is not true" in message for message in messages)
    assert any("skipFinalSnapshot is true" in message for message in messages)


def test_data_protection_declares_its_config_key() -> None:
    policy = policy_named("data-protection")
    assert policy.config_schema is not None
    assert policy.config_schema.properties["protectData"]["type"] == "boolean"
    assert policy.config_schema.properties["protectData"]["default"] is False


def stack_resource(resource_type: str, name: str, props: dict[str, Any]) -> PolicyResource:
    urn = f"urn:pulumi:dev::mlflow-aws::{resource_type}::{name}"
    return PolicyResource(resource_type, unknown_checking_proxy(props), urn, name, OPTIONS, None, None, [], {})


def test_stack_policy_pairs_by_property_dependency_and_reports_the_bucket_urn() -> None:
    bucket = stack_resource(rules.BUCKET, "artifacts", {"bucket": UNKNOWN_STRING_VALUE})
    lonely = stack_resource(rules.BUCKET, "lonely", {"bucket": UNKNOWN_STRING_VALUE})
    companions = [
        stack_resource(resource_type, f"c{index}", {"bucket": UNKNOWN_STRING_VALUE})
        for index, resource_type in enumerate((rules.PUBLIC_ACCESS_BLOCK, rules.VERSIONING, rules.ENCRYPTION))
    ]
    for resource in companions:
        resource.property_dependencies["bucket"] = [bucket]
    policy = policy_named("s3-bucket-complete")
    assert isinstance(policy, StackValidationPolicy)
    reported: list[tuple[str, str | None]] = []

    def report(message: str, urn: str | None = None) -> None:
        reported.append((message, urn))

    policy.validate(StackValidationArgs([bucket, lonely, *companions]), report)
    assert {urn for _, urn in reported} == {lonely.urn}
    assert sorted(message for message, _ in reported) == [
        "bucket lonely has no BucketPublicAccessBlock attached",
        "bucket lonely has no BucketServerSideEncryptionConfiguration attached",
        "bucket lonely has no BucketVersioning attached",
    ]
