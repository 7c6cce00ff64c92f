"""The stack's AWS resources built in moto the way the Pulumi program builds them, and its outputs.

Bucket with public access block, versioning, SSE and the TLS-only deny policy (the program's own
`tls_only_policy`); private, encrypted PostgreSQL with backups; a web security group open on 80/443
and a db security group admitting 5432 from the web group only; an instance with IMDSv2 required and
an instance profile; an Elastic IP associated with it.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from components.private_bucket import tls_only_policy
from naming import Outputs

BUCKET = "mlflow-aws-dev-artifacts-1a2b3c4d"
DB_INSTANCE_ID = "mlflow-aws-dev-db"
PROFILE = "mlflow-aws-dev-host"


def create_database(rds: Any, security_group_id: str, *, encrypted: bool = True) -> None:
    rds.create_db_instance(
        DBInstanceIdentifier=DB_INSTANCE_ID,
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        EngineVersion="17.6",
        MasterUsername="mlflow",
        MasterUserPassword="not-a-real-password-1",
        AllocatedStorage=20,
        PubliclyAccessible=False,
        StorageEncrypted=encrypted,
        BackupRetentionPeriod=1,
        VpcSecurityGroupIds=[security_group_id],
    )


def build_locked_down_stack(region: str, tracking_uri: str) -> dict[str, Any]:
    s3 = boto3.client("s3", region_name=region)
    ec2 = boto3.client("ec2", region_name=region)
    rds = boto3.client("rds", region_name=region)
    iam = boto3.client("iam", region_name=region)

    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
    s3.put_public_access_block(
        Bucket=BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_policy(Bucket=BUCKET, Policy=tls_only_policy(f"arn:aws:s3:::{BUCKET}"))

    vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.0.0/18")["Subnet"]["SubnetId"]
    web_sg = ec2.create_security_group(GroupName="mlflow-aws-dev-web", Description="web", VpcId=vpc_id)["GroupId"]
    db_sg = ec2.create_security_group(GroupName="mlflow-aws-dev-db", Description="db", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=web_sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
            for port in (80, 443)
        ],
    )
    ec2.authorize_security_group_ingress(
        GroupId=db_sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": web_sg}]}
        ],
    )
    create_database(rds, db_sg)

    iam.create_role(
        RoleName=PROFILE,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )
    iam.create_instance_profile(InstanceProfileName=PROFILE)
    iam.add_role_to_instance_profile(InstanceProfileName=PROFILE, RoleName=PROFILE)
    image_id = "ami-0123456789abcdef0"  # moto does not validate AMI ids by default
    instance_id = ec2.run_instances(
        ImageId=image_id,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.small",
        SubnetId=subnet_id,
        SecurityGroupIds=[web_sg],
        IamInstanceProfile={"Name": PROFILE},
        MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
    )["Instances"][0]["InstanceId"]
    address = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(InstanceId=instance_id, AllocationId=address["AllocationId"])

    return {
        Outputs.TRACKING_URI: tracking_uri,
        Outputs.PUBLIC_IP: address["PublicIp"],
        Outputs.ARTIFACT_BUCKET: BUCKET,
        Outputs.DB_INSTANCE_ID: DB_INSTANCE_ID,
        Outputs.INSTANCE_ID: instance_id,
        Outputs.WEB_SECURITY_GROUP_ID: web_sg,
        Outputs.DB_SECURITY_GROUP_ID: db_sg,
        Outputs.REGION: region,
        Outputs.ADMIN_USERNAME: "admin",
        Outputs.ADMIN_PASSWORD: "Zq8-x_Y.2k~Lm",
    }
