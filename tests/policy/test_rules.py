"""Every guardrail in policy/rules.py, called directly: a compliant resource passes, a bad one fails.

Properties are written as Pulumi hands them to a policy pack (camelCase, pulumi-aws v7 schema).
Values not known during preview are never flagged; absent values are flagged only where AWS's
default is itself insecure.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi_policy.proxy
import pytest

from policy import rules
from policy.rules import (
    UNKNOWN,
    StackResource,
    check_bucket_encryption,
    check_bucket_versioning,
    check_data_protection,
    check_ec2_instance,
    check_iam_s3_wildcards,
    check_public_access_block,
    check_rds_instance,
    check_world_ingress,
    validate_resource,
    validate_stack,
)

PREVIEW_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's marker for an unknown string


def test_unknown_markers_are_pulumis() -> None:
    proxy = pulumi_policy.proxy
    assert {
        proxy.UNKNOWN_BOOLEAN_VALUE, proxy.UNKNOWN_NUMBER_VALUE, proxy.UNKNOWN_STRING_VALUE,
        proxy.UNKNOWN_ARRAY_VALUE, proxy.UNKNOWN_ASSET_VALUE, proxy.UNKNOWN_ARCHIVE_VALUE,
        proxy.UNKNOWN_OBJECT_VALUE,
    } == rules.PULUMI_UNKNOWN_MARKERS


# --- S3 public access block ---------------------------------------------------------------------------

FULL_BLOCK = {"bucket": "b", **{flag: True for flag in rules.PUBLIC_ACCESS_FLAGS}}


def test_full_public_access_block_passes() -> None:
    assert check_public_access_block(rules.PUBLIC_ACCESS_BLOCK, FULL_BLOCK) == []


@pytest.mark.parametrize("flag", rules.PUBLIC_ACCESS_FLAGS)
def test_public_access_block_with_a_flag_off_fails(flag: str) -> None:
    [message] = check_public_access_block(rules.PUBLIC_ACCESS_BLOCK, {**FULL_BLOCK, flag: False})
    assert f"leaves {flag} off" in message


def test_public_access_block_flags_default_to_off() -> None:
    [message] = check_public_access_block(rules.PUBLIC_ACCESS_BLOCK, {"bucket": "b"})
    assert "leaves blockPublicAcls, blockPublicPolicy, ignorePublicAcls, restrictPublicBuckets off" in message


def test_public_access_block_flag_unknown_in_preview_is_not_flagged() -> None:
    props = {**FULL_BLOCK, "blockPublicPolicy": "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7"}
    assert check_public_access_block(rules.PUBLIC_ACCESS_BLOCK, props) == []


# --- S3 versioning and encryption -----------------------------------------------------------------------


@pytest.mark.parametrize("resource_type", [rules.VERSIONING, rules.VERSIONING_V2])
def test_enabled_versioning_passes(resource_type: str) -> None:
    props = {"bucket": "b", "versioningConfiguration": {"status": "Enabled"}}
    assert check_bucket_versioning(resource_type, props) == []


@pytest.mark.parametrize("status", ["Suspended", "Disabled"])
def test_versioning_not_enabled_fails(status: str) -> None:
    props = {"bucket": "b", "versioningConfiguration": {"status": status}}
    [message] = check_bucket_versioning(rules.VERSIONING, props)
    assert f"status is {status!r}" in message and "'Enabled'" in message


def test_versioning_status_unknown_is_not_flagged() -> None:
    props = {"bucket": "b", "versioningConfiguration": {"status": UNKNOWN}}
    assert check_bucket_versioning(rules.VERSIONING, props) == []


def sse(*algorithms: Any) -> dict[str, Any]:
    return {
        "bucket": "b",
        "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": algorithm}} for algorithm in algorithms],
    }


@pytest.mark.parametrize("algorithm", ["AES256", "aws:kms", "aws:kms:dsse"])
def test_default_encryption_with_a_real_algorithm_passes(algorithm: str) -> None:
    assert check_bucket_encryption(rules.ENCRYPTION, sse(algorithm)) == []


def test_default_encryption_without_an_algorithm_fails() -> None:
    [message] = check_bucket_encryption(rules.ENCRYPTION, {"bucket": "b", "rules": [{"bucketKeyEnabled": True}]})
    assert "no applyServerSideEncryptionByDefault.sseAlgorithm" in message


def test_default_encryption_with_no_rules_fails() -> None:
    assert check_bucket_encryption(rules.ENCRYPTION_V2, {"bucket": "b", "rules": []})


def test_default_encryption_algorithm_unknown_is_not_flagged() -> None:
    assert check_bucket_encryption(rules.ENCRYPTION, sse(PREVIEW_UNKNOWN)) == []
    assert check_bucket_encryption(rules.ENCRYPTION, {"bucket": "b", "rules": UNKNOWN}) == []


# --- RDS ---------------------------------------------------------------------------------------------------

SAFE_RDS = {
    "engine": "postgres",
    "publiclyAccessible": False,
    "storageEncrypted": True,
    "backupRetentionPeriod": 1,
}


def test_private_encrypted_backed_up_rds_passes() -> None:
    assert check_rds_instance(rules.RDS_INSTANCE, SAFE_RDS) == []


def test_public_rds_fails() -> None:
    [message] = check_rds_instance(rules.RDS_INSTANCE, {**SAFE_RDS, "publiclyAccessible": True})
    assert "publiclyAccessible is true" in message


def test_rds_private_by_default() -> None:
    props = {key: value for key, value in SAFE_RDS.items() if key != "publiclyAccessible"}
    assert check_rds_instance(rules.RDS_INSTANCE, props) == []


@pytest.mark.parametrize("encrypted", [False, None])
def test_unencrypted_rds_fails_and_is_the_default(encrypted: bool | None) -> None:
    props = {**SAFE_RDS, "storageEncrypted": encrypted}
    [message] = check_rds_instance(rules.RDS_INSTANCE, props)
    assert "storageEncrypted is not true" in message


@pytest.mark.parametrize("retention", [0, 0.0])
def test_rds_without_backups_fails(retention: float) -> None:
    [message] = check_rds_instance(rules.RDS_INSTANCE, {**SAFE_RDS, "backupRetentionPeriod": retention})
    assert "backupRetentionPeriod is 0" in message and "backups off" in message


def test_rds_backup_retention_defaults_to_one_day() -> None:
    props = {key: value for key, value in SAFE_RDS.items() if key != "backupRetentionPeriod"}
    assert check_rds_instance(rules.RDS_INSTANCE, props) == []


def test_rds_values_unknown_in_preview_are_not_flagged() -> None:
    props = {"publiclyAccessible": UNKNOWN, "storageEncrypted": UNKNOWN, "backupRetentionPeriod": UNKNOWN}
    assert check_rds_instance(rules.RDS_INSTANCE, props) == []


# --- security groups ----------------------------------------------------------------------------------------


def ingress(from_port: Any, to_port: Any, protocol: Any = "tcp", **sources: Any) -> dict[str, Any]:
    return {"protocol": protocol, "fromPort": from_port, "toPort": to_port, **sources}


@pytest.mark.parametrize("port", [80, 443, 80.0])
def test_web_ports_open_to_the_world_pass(port: float) -> None:
    props = {"ingress": [ingress(port, port, cidrBlocks=["0.0.0.0/0"], ipv6CidrBlocks=["::/0"])]}
    assert check_world_ingress(rules.SECURITY_GROUP, props) == []


def test_ssh_open_to_the_world_fails() -> None:
    props = {"ingress": [ingress(443, 443, cidrBlocks=["0.0.0.0/0"]), ingress(22, 22, cidrBlocks=["0.0.0.0/0"])]}
    [message] = check_world_ingress(rules.SECURITY_GROUP, props)
    assert "from 0.0.0.0/0 on tcp port 22" in message and "only ports 80 and 443" in message


def test_port_range_spanning_80_to_443_fails() -> None:
    [message] = check_world_ingress(rules.SECURITY_GROUP, {"ingress": [ingress(80, 443, cidrBlocks=["0.0.0.0/0"])]})
    assert "ports 80-443" in message


def test_every_protocol_from_the_ipv6_world_fails() -> None:
    props = {"ingress": [ingress(0, 0, protocol="-1", ipv6CidrBlocks=["::/0"])]}
    [message] = check_world_ingress(rules.SECURITY_GROUP, props)
    assert "from ::/0 on every protocol and port" in message


def test_icmp_from_the_world_fails() -> None:
    props = {"ingress": [ingress(-1, -1, protocol="icmp", cidrBlocks=["0.0.0.0/0"])]}
    [message] = check_world_ingress(rules.SECURITY_GROUP, props)
    assert "protocol icmp" in message


def test_ssh_from_a_restricted_range_passes() -> None:
    props = {"ingress": [ingress(22, 22, cidrBlocks=["192.0.2.0/28"])]}
    assert check_world_ingress(rules.SECURITY_GROUP, props) == []


def test_rule_referencing_a_security_group_passes() -> None:
    props = {"ingress": [ingress(5432, 5432, securityGroups=["sg-0123"])]}
    assert check_world_ingress(rules.SECURITY_GROUP, props) == []


def test_ingress_rule_resource_from_the_world() -> None:
    ok = {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "securityGroupId": "sg-1"}
    assert check_world_ingress(rules.INGRESS_RULE, ok) == []
    [message] = check_world_ingress(rules.INGRESS_RULE, {**ok, "fromPort": 5432, "toPort": 5432})
    assert "on tcp port 5432" in message
    [everything] = check_world_ingress(rules.INGRESS_RULE, {"cidrIpv6": "::/0", "ipProtocol": "-1"})
    assert "every protocol" in everything


def test_ingress_rule_resource_referencing_a_security_group_passes() -> None:
    props = {"referencedSecurityGroupId": "sg-web", "ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432}
    assert check_world_ingress(rules.INGRESS_RULE, props) == []


def test_security_group_rule_resource_ingress_and_egress() -> None:
    world_ssh = {"type": "ingress", "cidrBlocks": ["0.0.0.0/0"], "protocol": "tcp", "fromPort": 22, "toPort": 22}
    assert check_world_ingress(rules.SECURITY_GROUP_RULE, world_ssh)
    assert check_world_ingress(rules.SECURITY_GROUP_RULE, {**world_ssh, "type": "egress"}) == []


def test_ingress_values_unknown_in_preview_are_not_flagged() -> None:
    props = {"ingress": [ingress(UNKNOWN, UNKNOWN, cidrBlocks=["0.0.0.0/0"]), ingress(22, 22, cidrBlocks=UNKNOWN)]}
    assert check_world_ingress(rules.SECURITY_GROUP, props) == []


# --- EC2 ---------------------------------------------------------------------------------------------------

SAFE_EC2 = {
    "instanceType": "t3.small",
    "metadataOptions": {"httpTokens": "required", "httpEndpoint": "enabled"},
    "rootBlockDevice": {"encrypted": True, "volumeType": "gp3"},
}


def test_imdsv2_with_encrypted_root_passes() -> None:
    assert check_ec2_instance(rules.EC2_INSTANCE, SAFE_EC2) == []


def test_imdsv1_allowed_fails() -> None:
    [message] = check_ec2_instance(rules.EC2_INSTANCE, {**SAFE_EC2, "metadataOptions": {"httpTokens": "optional"}})
    assert "httpTokens is 'optional'" in message and "'required' (IMDSv2)" in message


def test_metadata_options_absent_means_imdsv1_allowed() -> None:
    props = {key: value for key, value in SAFE_EC2.items() if key != "metadataOptions"}
    [message] = check_ec2_instance(rules.EC2_INSTANCE, props)
    assert "unset (AWS default: optional)" in message


def test_metadata_endpoint_disabled_passes() -> None:
    assert check_ec2_instance(rules.EC2_INSTANCE, {**SAFE_EC2, "metadataOptions": {"httpEndpoint": "disabled"}}) == []


@pytest.mark.parametrize("root", [{"encrypted": False}, {"volumeType": "gp3"}, None])
def test_unencrypted_root_volume_fails(root: dict[str, Any] | None) -> None:
    [message] = check_ec2_instance(rules.EC2_INSTANCE, {**SAFE_EC2, "rootBlockDevice": root})
    assert "rootBlockDevice is not encrypted" in message


def test_unencrypted_extra_ebs_volume_fails() -> None:
    props = {**SAFE_EC2, "ebsBlockDevices": [{"deviceName": "/dev/sdf", "encrypted": True}, {"deviceName": "/dev/sdg"}]}
    [message] = check_ec2_instance(rules.EC2_INSTANCE, props)
    assert "ebsBlockDevices[1] is not encrypted" in message


def test_standalone_ebs_volume() -> None:
    assert check_ec2_instance(rules.EBS_VOLUME, {"encrypted": True, "size": 10}) == []
    assert check_ec2_instance(rules.EBS_VOLUME, {"size": 10}) == ["EBS volume is not encrypted; set encrypted to true"]


def test_ec2_values_unknown_in_preview_are_not_flagged() -> None:
    props = {"metadataOptions": {"httpTokens": UNKNOWN}, "rootBlockDevice": UNKNOWN}
    assert check_ec2_instance(rules.EC2_INSTANCE, props) == []


# --- IAM -----------------------------------------------------------------------------------------------------

BUCKET_ARN = "arn:aws:s3:::mlflow-aws-dev-artifacts-1a2b3c4d"


def policy_document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


LEAST_PRIVILEGE = policy_document(
    {"Sid": "Bucket", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": BUCKET_ARN},
    {
        "Sid": "Objects",
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        "Resource": f"{BUCKET_ARN}/*",
    },
    {"Sid": "Ssm", "Effect": "Allow", "Action": "ssmmessages:CreateControlChannel", "Resource": "*"},
    {"Sid": "DenyAll", "Effect": "Deny", "Action": "*", "Resource": "*"},
)


@pytest.mark.parametrize(
    "resource_type", [rules.ROLE_POLICY, rules.USER_POLICY, rules.GROUP_POLICY, rules.MANAGED_POLICY]
)
def test_least_privilege_s3_policy_passes(resource_type: str) -> None:
    assert check_iam_s3_wildcards(resource_type, {"policy": LEAST_PRIVILEGE}) == []


def test_policy_given_as_a_mapping_is_read_too() -> None:
    assert check_iam_s3_wildcards(rules.ROLE_POLICY, {"policy": json.loads(LEAST_PRIVILEGE)}) == []


@pytest.mark.parametrize("resource_type", [rules.ROLE_POLICY, rules.USER_POLICY, rules.MANAGED_POLICY])
def test_s3_star_action_fails(resource_type: str) -> None:
    document = policy_document({"Sid": "All", "Effect": "Allow", "Action": "s3:*", "Resource": BUCKET_ARN})
    [message] = check_iam_s3_wildcards(resource_type, {"policy": document})
    assert "statement 'All' allows every S3 action ('s3:*')" in message


@pytest.mark.parametrize("resource_type", sorted(rules.POLICY_ATTACHMENTS))
@pytest.mark.parametrize("name", sorted(rules.WIDE_MANAGED_POLICIES))
def test_attaching_a_managed_policy_that_grants_all_of_s3_fails(resource_type: str, name: str) -> None:
    [message] = check_iam_s3_wildcards(resource_type, {"policyArn": f"arn:aws:iam::aws:policy/{name}"})
    assert f"attaches {name}, which allows every S3 action on every bucket" in message


def test_a_role_listing_a_wide_managed_policy_fails() -> None:
    props = {"managedPolicyArns": ["arn:aws:iam::aws:policy/AmazonS3FullAccess"]}
    [message] = check_iam_s3_wildcards(rules.ROLE, props)
    assert "attaches AmazonS3FullAccess" in message


def test_attaching_a_narrow_managed_policy_passes() -> None:
    for arn in ("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
                "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
                "arn:aws:iam::123456789012:policy/AmazonS3FullAccess",  # the account's own: its document is checked
                PREVIEW_UNKNOWN):
        assert check_iam_s3_wildcards("aws:iam/rolePolicyAttachment:RolePolicyAttachment", {"policyArn": arn}) == []


def test_star_action_fails() -> None:
    document = policy_document({"Effect": "Allow", "Action": ["*"], "Resource": f"{BUCKET_ARN}/*"})
    [message] = check_iam_s3_wildcards(rules.ROLE_POLICY, {"policy": document})
    assert "allows every action ('*')" in message


@pytest.mark.parametrize("resource", ["*", "arn:aws:s3:::*", "arn:aws:s3:::*/*"])
def test_s3_actions_on_every_bucket_fail(resource: str) -> None:
    document = policy_document({"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [resource]})
    [message] = check_iam_s3_wildcards(rules.USER_POLICY, {"policy": document})
    assert f"allows S3 actions on {resource}, every bucket" in message


def test_not_action_and_not_resource_fail() -> None:
    not_action = policy_document({"Effect": "Allow", "NotAction": "iam:*", "Resource": BUCKET_ARN})
    assert any("outside NotAction" in m for m in check_iam_s3_wildcards(rules.ROLE_POLICY, {"policy": not_action}))
    not_resource = policy_document({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": BUCKET_ARN})
    assert any("outside NotResource" in m for m in check_iam_s3_wildcards(rules.ROLE_POLICY, {"policy": not_resource}))


def test_role_inline_policies_are_checked() -> None:
    wide = policy_document({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    props = {"inlinePolicies": [{"name": "ok", "policy": LEAST_PRIVILEGE}, {"name": "wide", "policy": wide}]}
    messages = check_iam_s3_wildcards(rules.ROLE, props)
    assert messages and all(message.startswith("inlinePolicies[1].policy statement") for message in messages)


def test_policy_that_is_not_json_fails() -> None:
    [message] = check_iam_s3_wildcards(rules.ROLE_POLICY, {"policy": "s3:* on everything"})
    assert "not a JSON policy document" in message


def test_policy_unknown_in_preview_is_not_flagged() -> None:
    assert check_iam_s3_wildcards(rules.ROLE_POLICY, {"policy": PREVIEW_UNKNOWN}) == []
    assert check_iam_s3_wildcards(rules.ROLE_POLICY, {"policy": UNKNOWN}) == []


# --- protectData -------------------------------------------------------------------------------------------

PROTECTED_RDS = {
    **SAFE_RDS,
    "deletionProtection": True,
    "skipFinalSnapshot": False,
    "finalSnapshotIdentifier": "mlflow-aws-prod-final",
    "backupRetentionPeriod": 7,
}


def test_protected_rds_passes() -> None:
    assert check_data_protection(rules.RDS_INSTANCE, PROTECTED_RDS, protect_data=True) == []


def test_rds_without_deletion_protection_fails_when_data_is_protected() -> None:
    for props in ({**PROTECTED_RDS, "deletionProtection": False}, {**PROTECTED_RDS, "deletionProtection": None}):
        [message] = check_data_protection(rules.RDS_INSTANCE, props, protect_data=True)
        assert "deletionProtection is not true" in message


def test_a_resource_tagged_as_kept_on_destroy_is_held_to_it_without_pack_config() -> None:
    tags = {"tags": {"Name": "db", rules.DATA_PROTECTION_TAG[0]: rules.DATA_PROTECTION_TAG[1]}}
    [message] = check_data_protection(rules.RDS_INSTANCE, {**PROTECTED_RDS, **tags, "deletionProtection": False}, False)
    assert "deletionProtection is not true" in message
    [message] = check_data_protection(rules.BUCKET, {"forceDestroy": True, **tags}, protect_data=False)
    assert "forceDestroy is true" in message
    assert check_data_protection(rules.BUCKET, {"forceDestroy": True, "tags": {"Name": "b"}}, False) == []


def test_the_pack_knows_the_tag_the_program_writes() -> None:
    import naming

    assert dict([rules.DATA_PROTECTION_TAG]) == naming.DATA_PROTECTION_TAGS


def test_rds_skipping_the_final_snapshot_fails_when_data_is_protected() -> None:
    [message] = check_data_protection(rules.RDS_INSTANCE, {**PROTECTED_RDS, "skipFinalSnapshot": True}, True)
    assert "skipFinalSnapshot is true" in message


def test_rds_without_a_final_snapshot_name_fails_when_data_is_protected() -> None:
    props = {key: value for key, value in PROTECTED_RDS.items() if key != "finalSnapshotIdentifier"}
    [message] = check_data_protection(rules.RDS_INSTANCE, props, protect_data=True)
    assert "finalSnapshotIdentifier is not set" in message


def test_rds_with_short_backups_fails_when_data_is_protected() -> None:
    [message] = check_data_protection(rules.RDS_INSTANCE, {**PROTECTED_RDS, "backupRetentionPeriod": 1}, True)
    assert "backupRetentionPeriod is 1 day(s); keep at least 7" in message


def test_force_destroyed_bucket_fails_when_data_is_protected() -> None:
    assert check_data_protection(rules.BUCKET, {"bucket": "b", "forceDestroy": False}, protect_data=True) == []
    [message] = check_data_protection(rules.BUCKET, {"bucket": "b", "forceDestroy": True}, protect_data=True)
    assert "forceDestroy is true" in message


def test_unprotected_stacks_may_tear_down_cleanly() -> None:
    dev_rds = {**SAFE_RDS, "deletionProtection": False, "skipFinalSnapshot": True}
    assert check_data_protection(rules.RDS_INSTANCE, dev_rds, protect_data=False) == []
    assert check_data_protection(rules.BUCKET, {"bucket": "b", "forceDestroy": True}, protect_data=False) == []


def test_protection_values_unknown_in_preview_are_not_flagged() -> None:
    props = {
        **SAFE_RDS,
        "deletionProtection": UNKNOWN,
        "skipFinalSnapshot": False,
        "finalSnapshotIdentifier": PREVIEW_UNKNOWN,
        "backupRetentionPeriod": UNKNOWN,
    }
    assert check_data_protection(rules.RDS_INSTANCE, props, protect_data=True) == []


# --- validate_resource runs them all ------------------------------------------------------------------------


def test_validate_resource_combines_every_rule() -> None:
    bad = {"publiclyAccessible": True, "backupRetentionPeriod": 0}
    messages = validate_resource(rules.RDS_INSTANCE, bad, protect_data=True)
    assert any("publiclyAccessible" in m for m in messages)
    assert any("storageEncrypted" in m for m in messages)
    assert any("turns automated backups off" in m for m in messages)
    assert any("protectData: deletionProtection" in m for m in messages)
    assert validate_resource(rules.RDS_INSTANCE, PROTECTED_RDS, protect_data=True) == []


def test_resources_no_rule_covers_pass() -> None:
    assert validate_resource("aws:ssm/parameter:Parameter", {"type": "SecureString"}, protect_data=True) == []


def test_rule_names_are_unique() -> None:
    names = [rule.name for rule in rules.RESOURCE_RULES] + [rules.DATA_PROTECTION_RULE, rules.BUCKET_COMPLETENESS_RULE]
    assert len(names) == len(set(names))


# --- the stack rule: every bucket has its companions -------------------------------------------------------

BUCKET_URN = "urn:pulumi:dev::mlflow-aws::mlflow-aws:storage:ArtifactStore$aws:s3/bucket:Bucket::dev-bucket"


def companion(resource_type: str, name: str, bucket: Any = "artifacts", depends_on: str | None = None) -> StackResource:
    dependencies = {"bucket": frozenset({depends_on})} if depends_on else {}
    return StackResource(resource_type, {"bucket": bucket}, f"urn:pulumi:dev::mlflow-aws::{resource_type}::{name}",
                         dependencies)


def complete_bucket(name: str = "artifacts", urn: str = BUCKET_URN) -> list[StackResource]:
    return [
        StackResource(rules.BUCKET, {"bucket": name}, urn),
        companion(rules.PUBLIC_ACCESS_BLOCK, f"{name}-pab", name),
        companion(rules.VERSIONING, f"{name}-versioning", name),
        companion(rules.ENCRYPTION, f"{name}-sse", name),
    ]


def test_bucket_with_all_companions_passes() -> None:
    assert validate_stack(complete_bucket()) == []


@pytest.mark.parametrize(
    ("missing", "needed"),
    [
        (rules.PUBLIC_ACCESS_BLOCK, "BucketPublicAccessBlock"),
        (rules.VERSIONING, "BucketVersioning"),
        (rules.ENCRYPTION, "BucketServerSideEncryptionConfiguration"),
    ],
)
def test_bucket_missing_a_companion_fails(missing: str, needed: str) -> None:
    resources = [resource for resource in complete_bucket() if resource.type != missing]
    [violation] = validate_stack(resources)
    assert violation.urn == BUCKET_URN
    assert violation.message == f"bucket artifacts has no {needed} attached"


def test_companions_of_another_bucket_do_not_count() -> None:
    other = complete_bucket("other", "urn:pulumi:dev::mlflow-aws::aws:s3/bucket:Bucket::other")
    lonely_urn = "urn:pulumi:dev::mlflow-aws::aws:s3/bucket:Bucket::lonely"
    lonely = StackResource(rules.BUCKET, {"bucket": "lonely"}, lonely_urn)
    violations = validate_stack([*other, lonely])
    assert {violation.urn for violation in violations} == {lonely.urn}
    assert len(violations) == 3


def test_companions_pair_by_property_dependency_when_names_are_unknown() -> None:
    # Preview of a new stack: the bucket's name is not known yet, but the dependency graph is.
    resources = [
        StackResource(rules.BUCKET, {"bucket": UNKNOWN}, BUCKET_URN),
        companion(rules.PUBLIC_ACCESS_BLOCK, "pab", UNKNOWN, depends_on=BUCKET_URN),
        companion(rules.VERSIONING, "versioning", UNKNOWN, depends_on=BUCKET_URN),
        companion(rules.ENCRYPTION_V2, "sse", UNKNOWN, depends_on=BUCKET_URN),
    ]
    assert validate_stack(resources) == []
    other_urn = "urn:pulumi:dev::mlflow-aws::aws:s3/bucket:Bucket::other"
    other = StackResource(rules.BUCKET, {"bucket": UNKNOWN}, other_urn)
    assert {violation.urn for violation in validate_stack([*resources, other])} == {other_urn}


def test_companion_whose_bucket_is_unknown_and_unattributed_is_not_flagged() -> None:
    resources = [
        StackResource(rules.BUCKET, {"bucket": "artifacts"}, BUCKET_URN),
        companion(rules.PUBLIC_ACCESS_BLOCK, "pab", UNKNOWN),
        companion(rules.VERSIONING, "versioning", PREVIEW_UNKNOWN),
        companion(rules.ENCRYPTION, "sse", UNKNOWN),
    ]
    assert validate_stack(resources) == []


def test_stack_without_buckets_passes() -> None:
    assert validate_stack([StackResource(rules.RDS_INSTANCE, SAFE_RDS, "urn:rds")]) == []
