"""ArtifactStore: the private S3 bucket MLflow's proxied artifacts live in.

Versioned, encrypted, every public access path blocked, TLS-only, noncurrent versions and abandoned
multipart uploads expired. With `protect_data`, `pulumi destroy` leaves the bucket and its objects
in the account (retained, never emptied); without it, destroy empties and deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

import naming
from components import private_bucket
from components.naming_rules import dns_safe

BUCKET_NAME_MAX = 63
SUFFIX_BYTES = 4  # 8 hex characters make the name globally unique
NONCURRENT_VERSION_DAYS = 30
ABORT_MULTIPART_DAYS = 7


@dataclass
class ArtifactStoreArgs:
    project: str
    stack: str
    protect_data: bool


class ArtifactStore(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ArtifactStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:storage:ArtifactStore", name, None, opts)
        # A retained bucket keeps its protections too: deleting BucketVersioning suspends versioning,
        # and deleting the others would leave the kept bucket open to ACLs and plain HTTP. Protected too, so
        # `pulumi destroy` stops at its preview instead of removing the rest of the stack first.
        child = pulumi.ResourceOptions(parent=self, retain_on_delete=args.protect_data, protect=args.protect_data)

        suffix = random.RandomId(f"{name}-suffix", byte_length=SUFFIX_BYTES, opts=child)
        stem = dns_safe(f"{args.project}-{args.stack}-artifacts", BUCKET_NAME_MAX - 2 * SUFFIX_BYTES - 1)
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=suffix.hex.apply(lambda hex_suffix: f"{stem}-{hex_suffix}"),
            force_destroy=not args.protect_data,
            tags=naming.DATA_PROTECTION_TAGS if args.protect_data else None,
            opts=child,
        )
        versioning = private_bucket.protect(name, bucket, child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions-and-abandoned-uploads",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=(
                        aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                            noncurrent_days=NONCURRENT_VERSION_DAYS
                        )
                    ),
                    abort_incomplete_multipart_upload=(
                        aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                            days_after_initiation=ABORT_MULTIPART_DAYS
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
