"""The real program (`__main__.py`), run under mocks for the dev and prod stacks, passes its own pack.

Every registered resource's inputs go through every resource rule, with `protectData` taken from the
stack's own config, and the whole stack through the bucket-completeness rule. To show the rules
really read what the program writes (same type tokens, same camelCase property names), each guarded
resource is then spoiled in one property and the matching rule must fire.
"""

from __future__ import annotations

from typing import Any

import pytest

import config
from policy import rules
from tests.support.pulumi_program import PROJECT_DIR, ProgramRun, RegisteredResource, run_program

# (stack, config overrides): both stacks as committed, and dev with the optional client IAM user.
RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    "dev-client-access": ("dev", {"clientAccess": True}),
}


def protect_data_of(stack: str) -> bool:
    return config.from_stack_files(str(PROJECT_DIR), stack).protect_data


@pytest.fixture(scope="module", params=list(RUNS))
def program(request: pytest.FixtureRequest) -> tuple[ProgramRun, bool]:
    stack, overrides = RUNS[request.param]
    return run_program(stack, overrides), protect_data_of(stack)


def stack_resources(resources: list[RegisteredResource]) -> list[rules.StackResource]:
    return [
        rules.StackResource(
            type=resource.type,
            props=resource.inputs,
            urn=resource.urn,
            property_dependencies={key: frozenset(urns) for key, urns in resource.property_dependencies.items()},
        )
        for resource in resources
    ]


def test_prod_protects_its_data_and_dev_does_not() -> None:
    assert protect_data_of("prod") is True
    assert protect_data_of("dev") is False


def test_every_resource_passes_the_resource_rules(program: tuple[ProgramRun, bool]) -> None:
    run, protect_data = program
    violations = {
        f"{resource.type} {resource.name}": messages
        for resource in run.resources
        if (messages := rules.validate_resource(resource.type, resource.inputs, protect_data=protect_data))
    }
    assert violations == {}


def test_the_stack_passes_the_stack_rules(program: tuple[ProgramRun, bool]) -> None:
    run, _ = program
    assert rules.validate_stack(stack_resources(run.resources)) == []


GUARDED_TYPES = {
    rules.BUCKET, rules.PUBLIC_ACCESS_BLOCK, rules.VERSIONING, rules.ENCRYPTION, rules.RDS_INSTANCE,
    rules.EC2_INSTANCE, rules.SECURITY_GROUP, rules.INGRESS_RULE, rules.ROLE_POLICY,
}


def test_the_program_creates_what_the_pack_guards(program: tuple[ProgramRun, bool]) -> None:
    run, _ = program
    assert {resource.type for resource in run.resources} >= GUARDED_TYPES


def artifact_bucket(run: ProgramRun) -> RegisteredResource:
    """The artifact store's bucket (the other one holds the host's files: components/host_files.py)."""
    store = run.one("mlflow-aws:storage:ArtifactStore").urn
    (bucket,) = [resource for resource in run.of_type(rules.BUCKET) if resource.parent == store]
    return bucket


def spoiled(resource: RegisteredResource, **changes: Any) -> dict[str, Any]:
    return {**resource.inputs, **changes}


def test_the_rules_read_the_programs_property_names(program: tuple[ProgramRun, bool]) -> None:
    run, protect_data = program

    def fires(resource: RegisteredResource, props: dict[str, Any], text: str) -> bool:
        messages = rules.validate_resource(resource.type, props, protect_data=protect_data)
        return any(text in message for message in messages)

    database = run.one(rules.RDS_INSTANCE)
    assert fires(database, spoiled(database, publiclyAccessible=True), "publiclyAccessible is true")
    assert fires(database, spoiled(database, storageEncrypted=False), "storageEncrypted is not true")
    assert fires(database, spoiled(database, backupRetentionPeriod=0), "turns automated backups off")

    host = run.one(rules.EC2_INSTANCE)
    metadata = {**host.inputs["metadataOptions"], "httpTokens": "optional"}
    assert fires(host, spoiled(host, metadataOptions=metadata), "httpTokens is 'optional'")
    root = {**host.inputs["rootBlockDevice"], "encrypted": False}
    assert fires(host, spoiled(host, rootBlockDevice=root), "rootBlockDevice is not encrypted")

    # Each bucket's: the artifacts' and the host files' (components/host_files.py).
    for block in run.of_type(rules.PUBLIC_ACCESS_BLOCK):
        assert fires(block, spoiled(block, restrictPublicBuckets=False), "leaves restrictPublicBuckets off")
    for versioning in run.of_type(rules.VERSIONING):
        assert fires(versioning, spoiled(versioning, versioningConfiguration={"status": "Suspended"}),
                     "'Suspended'")
    for encryption in run.of_type(rules.ENCRYPTION):
        assert fires(encryption, spoiled(encryption, rules=[{"bucketKeyEnabled": True}]),
                     "no applyServerSideEncryption")
    assert len(run.of_type(rules.BUCKET)) == len(run.of_type(rules.VERSIONING)) == 2

    world_rules = [rule for rule in run.of_type(rules.INGRESS_RULE) if rule.inputs.get("cidrIpv4") == "0.0.0.0/0"]
    assert world_rules, "the web security group admits the world on 80/443 in both stacks"
    assert fires(world_rules[0], spoiled(world_rules[0], fromPort=22, toPort=22), "on tcp port 22")

    iam_policies = [*run.of_type(rules.ROLE_POLICY), *run.of_type(rules.USER_POLICY)]
    for iam_policy in iam_policies:
        wide = '{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'
        assert fires(iam_policy, spoiled(iam_policy, policy=wide), "allows every S3 action")


def test_a_bucket_missing_a_companion_is_caught_in_the_real_stack(program: tuple[ProgramRun, bool]) -> None:
    run, _ = program
    without_versioning = [resource for resource in run.resources if resource.type != rules.VERSIONING]
    violations = rules.validate_stack(stack_resources(without_versioning))
    assert {violation.urn for violation in violations} == {bucket.urn for bucket in run.of_type(rules.BUCKET)}
    assert all("has no BucketVersioning" in violation.message for violation in violations)


def test_a_protected_stack_is_held_to_it_without_the_pack_config(program: tuple[ProgramRun, bool]) -> None:
    run, protect_data = program
    database = run.one(rules.RDS_INSTANCE)
    bucket = artifact_bucket(run)
    assert rules.declares_data_protection(database.inputs) is protect_data
    assert rules.declares_data_protection(bucket.inputs) is protect_data
    # What `pulumi preview --policy-pack policy` sees for prod if a change dropped the protection.
    unprotected = spoiled(database, deletionProtection=False)
    assert bool(rules.validate_resource(rules.RDS_INSTANCE, unprotected, protect_data=False)) is protect_data


def test_prod_data_protection_is_what_keeps_prod_passing(program: tuple[ProgramRun, bool]) -> None:
    run, protect_data = program
    database = run.one(rules.RDS_INSTANCE)
    bucket = artifact_bucket(run)
    if protect_data:
        unprotected = spoiled(database, deletionProtection=False, skipFinalSnapshot=True)
        messages = rules.check_data_protection(rules.RDS_INSTANCE, unprotected, protect_data=True)
        assert len(messages) == 2
        assert rules.check_data_protection(rules.BUCKET, spoiled(bucket, forceDestroy=True), protect_data=True)
    else:
        # A dev stack tears down cleanly, which the pack would refuse for a protected stack.
        assert rules.check_data_protection(rules.RDS_INSTANCE, database.inputs, protect_data=True)
        assert rules.check_data_protection(rules.BUCKET, bucket.inputs, protect_data=True)
