"""HostFileStore: the private bucket the host's files travel in (DESIGN decision 16), and `upload_host_files`,
the one object of them that a TrackingHost or a HostFleet boots from.

The files leave the user data because EC2 takes at most 16 KiB of it: the program uploads them as one object
named by its sha256 (userdata.bundle), and the user data keeps a small bootstrap with the object's key and
sha256 (userdata.bootstrap). A bucket of its own, not the artifact bucket: MLflow's artifact proxy serves any
path of the artifact bucket that names no experiment at the default permission
(mlflow/server/auth/__init__.py, _artifact_proxy_child falls through to the default), so every logged-in
user could read the host's files there. Only the host's role reads it, and only under
userdata.bundle.KEY_PREFIX (components/identity.py).

It holds nothing but what the program generates, so destroy empties it (force_destroy) unless the stack
protects its data: the policy pack then requires force_destroy off for every bucket of the stack, and
turning protectData off (the README's destroy path) turns it on again. The pack also requires versioning of
every bucket; an object is never overwritten with other bytes (its key is its hash), so noncurrent versions
are only the same bytes put again, expired after a day.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

import userdata
from components import private_bucket
from components.naming_rules import dns_safe
from userdata.bundle import HostBundle
from userdata.settings import HostSettings

BUCKET_NAME_MAX = 63
SUFFIX_BYTES = 4
NONCURRENT_VERSION_DAYS = 1


@dataclass
class HostFileStoreArgs:
    project: str
    stack: str
    protect_data: bool


class HostFileStore(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]

    def __init__(self, name: str, args: HostFileStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:storage:HostFileStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = f"{name}-host-files"

        suffix = random.RandomId(f"{prefix}-suffix", byte_length=SUFFIX_BYTES, opts=child)
        stem = dns_safe(f"{args.project}-{args.stack}-host-files", BUCKET_NAME_MAX - 2 * SUFFIX_BYTES - 1)
        bucket = aws.s3.Bucket(
            f"{prefix}-bucket",
            bucket=suffix.hex.apply(lambda hex_suffix: f"{stem}-{hex_suffix}"),
            force_destroy=not args.protect_data,
            opts=child,
        )
        versioning = private_bucket.protect(prefix, bucket, child)
        aws.s3.BucketLifecycleConfiguration(
            f"{prefix}-lifecycle",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=(
                        aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                            noncurrent_days=NONCURRENT_VERSION_DAYS
                        )
                    ),
                )
            ],
            # S3 rejects a lifecycle configuration with noncurrent rules until versioning exists.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[versioning])),
        )

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn})


def upload_host_files(name: str, settings: pulumi.Output[HostSettings], parent: pulumi.Resource,
                      ) -> aws.s3.BucketObjectv2:
    """The object of the host's files for `settings`, in settings.host_files_bucket, a child of `parent`.
    What boots from it must depend on it (the user data names it, the object must exist first)."""
    bundle: pulumi.Output[HostBundle] = settings.apply(userdata.host_bundle)
    return aws.s3.BucketObjectv2(
        f"{name}-host-files",
        bucket=settings.apply(lambda s: s.host_files_bucket),
        # A new key replaces the object (bucket and key are ForceNew in the provider:
        # terraform-provider-aws internal/service/s3/object.go), created before the old one goes.
        key=bundle.apply(lambda b: b.key),
        # Uploaded as UTF-8 text (BucketObjectv2's `content`); the body is ASCII, so S3 stores exactly the
        # bytes whose sha256 the user data names.
        content=bundle.apply(lambda b: b.text),
        content_type="application/json",
        opts=pulumi.ResourceOptions(
            parent=parent,
            # The object a replaced host or an older launch template version booted from stays: an instance
            # refresh that rolls back (components/fleet.py, auto_rollback) boots the older version's hosts
            # after `pulumi up` has moved on. The bucket's force_destroy removes them all with the stack.
            retain_on_delete=True,
        ),
    )
