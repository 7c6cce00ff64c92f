"""Database: RDS PostgreSQL in the private subnets, and its connection facts in SSM Parameter Store.

The host never learns the endpoint or the password through user data: it reads the parameters
written here at boot (design decisions 1 and 2), so the EC2 instance does not wait for RDS and a
database change never replaces the host. `protect_data` turns on deletion protection, a week of
backups and a final snapshot named for this database alone (a random suffix: a later stack of the same
name gets its own), and marks the instance, its subnet group and its password with Pulumi's `protect`,
so `pulumi destroy` stops at its preview before it deletes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

import naming
from components.naming_rules import RDS_IDENTIFIER_MAX, database_identifier, dns_safe
from components.network import POSTGRES_PORT
from components.parameters import put_parameters

MASTER_USERNAME = "mlflow"
PROTECTED_BACKUP_DAYS = 7
UNPROTECTED_BACKUP_DAYS = 1
STORAGE_GROWTH_FACTOR = 5
MAX_STORAGE_GB = 65536  # RDS's ceiling for PostgreSQL on gp3, for allocated and autoscaled storage alike
# RDS rejects '/', '@', '"' and spaces; letters and digits also need no escaping in a database URI.
PASSWORD_LENGTH = 40
SNAPSHOT_SUFFIX_BYTES = 4


@dataclass
class DatabaseArgs:
    project: str
    stack: str
    ssm_prefix: str
    private_subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Input[str]
    instance_class: str
    engine_version: str
    allocated_storage_gb: int
    multi_az: bool
    protect_data: bool


def storage_autoscaling_limit(allocated_gb: int) -> int | None:
    """Up to 5x the allocation, within RDS's ceiling; None (no autoscaling) when there is no room above it."""
    limit = min(allocated_gb * STORAGE_GROWTH_FACTOR, MAX_STORAGE_GB)
    return limit if limit > allocated_gb else None


def pins_a_minor_version(engine_version: str) -> bool:
    return "." in engine_version


def final_snapshot_identifier(project: str, stack: str, suffix: str) -> str:
    """<project>-<stack>-final-<suffix>: the suffix keeps the whole name, however long the stack's name."""
    tail = f"-final-{suffix}"
    return dns_safe(f"{project}-{stack}", RDS_IDENTIFIER_MAX - len(tail)) + tail


class Database(pulumi.ComponentResource):
    instance_id: pulumi.Output[str]
    address: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    arn: pulumi.Output[str]
    final_snapshot_identifier: pulumi.Output[str] | None

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:database:Database", name, None, opts)
        kept = pulumi.ResourceOptions(parent=self, protect=args.protect_data)

        password = random.RandomPassword(f"{name}-password", length=PASSWORD_LENGTH, special=False, opts=kept)
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=args.private_subnet_ids,
            description=f"{args.project} {args.stack}: private subnets of the MLflow backend store",
            opts=kept,
        )
        # Declared with or without protectData: a stack turning protection off (the README's way to retire
        # it) registers the suffix unprotected, which lifts its `protect` in state; were it no longer
        # declared, that `pulumi up` would try to delete a protected resource, and Pulumi refuses.
        suffix = random.RandomId(f"{name}-final-snapshot-suffix", byte_length=SNAPSHOT_SUFFIX_BYTES, opts=kept)
        snapshot_name: pulumi.Output[str] | None = None
        if args.protect_data:
            snapshot_name = suffix.hex.apply(lambda hex_: final_snapshot_identifier(args.project, args.stack, hex_))
        instance = aws.rds.Instance(
            f"{name}-postgres",
            identifier=database_identifier(args.project, args.stack),
            engine="postgres",
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            allocated_storage=args.allocated_storage_gb,
            max_allocated_storage=storage_autoscaling_limit(args.allocated_storage_gb),
            storage_type="gp3",
            storage_encrypted=True,
            db_name=naming.TRACKING_DATABASE,
            username=MASTER_USERNAME,
            password=password.result,
            port=POSTGRES_PORT,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[args.security_group_id],
            publicly_accessible=False,
            multi_az=args.multi_az,
            backup_retention_period=PROTECTED_BACKUP_DAYS if args.protect_data else UNPROTECTED_BACKUP_DAYS,
            deletion_protection=args.protect_data,
            skip_final_snapshot=not args.protect_data,
            final_snapshot_identifier=snapshot_name,
            delete_automated_backups=not args.protect_data,
            copy_tags_to_snapshot=True,
            # A pinned minor (17.6) stays pinned: once AWS upgraded it to 17.7, every `pulumi up` would
            # ask RDS to downgrade. A major alone (17) takes AWS's minor upgrades.
            auto_minor_version_upgrade=not pins_a_minor_version(args.engine_version),
            allow_major_version_upgrade=True,
            # A protected database applies changes in its maintenance window, not mid-day.
            apply_immediately=not args.protect_data,
            tags=naming.DATA_PROTECTION_TAGS if args.protect_data else None,
            opts=kept,
        )

        facts: list[tuple[naming.SsmParameter, pulumi.Input[str]]] = [
            (naming.DB_HOST, instance.address),
            (naming.DB_PORT, instance.port.apply(str)),
            (naming.DB_NAME, naming.TRACKING_DATABASE),
            (naming.DB_USERNAME, MASTER_USERNAME),
            (naming.DB_PASSWORD, password.result),
        ]
        put_parameters(name, args.ssm_prefix, facts, described_as="MLflow backend store", parent=self)

        self.instance_id = instance.identifier
        self.address = instance.address
        self.endpoint = instance.endpoint
        self.arn = instance.arn
        self.final_snapshot_identifier = snapshot_name
        self.register_outputs(
            {"instance_id": self.instance_id, "endpoint": self.endpoint, "arn": self.arn,
             "final_snapshot_identifier": snapshot_name}
        )
