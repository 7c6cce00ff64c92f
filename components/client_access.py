"""ClientAccess (optional): a read-only IAM user for clients that read the artifact bucket directly.

Most clients need no AWS keys at all (artifacts are proxied through the server); this is for tools
that read `s3://` artifact URIs themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

READ_BUCKET_ACTIONS = ["s3:ListBucket", "s3:GetBucketLocation"]
READ_OBJECT_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion"]


@dataclass
class ClientAccessArgs:
    bucket_arn: pulumi.Input[str]


def read_only_policy(bucket_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "ListArtifacts", "Effect": "Allow", "Action": READ_BUCKET_ACTIONS, "Resource": bucket_arn},
                {
                    "Sid": "ReadArtifacts",
                    "Effect": "Allow",
                    "Action": READ_OBJECT_ACTIONS,
                    "Resource": f"{bucket_arn}/*",
                },
            ],
        }
    )


class ClientAccess(pulumi.ComponentResource):
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]

    def __init__(self, name: str, args: ClientAccessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:identity:ClientAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        user = aws.iam.User(f"{name}-user", opts=child)
        aws.iam.UserPolicy(
            f"{name}-read-artifacts",
            user=user.name,
            policy=pulumi.Output.from_input(args.bucket_arn).apply(read_only_policy),
            opts=child,
        )
        key = aws.iam.AccessKey(f"{name}-key", user=user.name, opts=child)

        self.access_key_id = key.id
        self.secret_access_key = pulumi.Output.secret(key.secret)
        self.register_outputs({"access_key_id": self.access_key_id})
