"""mlflow-aws: read the config, build the components in order, export what clients need."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

import config
from components.address import PublicAddress, PublicAddressArgs
from components.artifact_store import ArtifactStore, ArtifactStoreArgs
from components.client_access import ClientAccess, ClientAccessArgs
from components.database import Database, DatabaseArgs
from components.host import TrackingHost, TrackingHostArgs
from components.identity import HostIdentity, HostIdentityArgs
from components.network import Network, NetworkArgs
from components.server_secrets import ServerSecrets, ServerSecretsArgs
from host_settings import host_settings_for
from naming import Outputs

try:
    cfg = config.from_pulumi()
except config.ConfigError as error:
    raise pulumi.RunError(str(error)) from None

provider = aws.Provider(
    "aws",
    region=cfg.region,
    default_tags=aws.ProviderDefaultTagsArgs(
        tags={"Project": cfg.project, "Stack": cfg.stack, "ManagedBy": "pulumi"}
    ),
)
with_provider = pulumi.ResourceOptions(providers=[provider])
name = cfg.stack

network = Network(
    name,
    NetworkArgs(vpc_cidr=cfg.vpc_cidr, allowed_cidrs=cfg.allowed_cidrs, ssh_cidrs=cfg.ssh_cidrs),
    with_provider,
)
artifacts = ArtifactStore(
    name, ArtifactStoreArgs(project=cfg.project, stack=cfg.stack, protect_data=cfg.protect_data), with_provider
)
database = Database(
    name,
    DatabaseArgs(
        project=cfg.project,
        stack=cfg.stack,
        ssm_prefix=cfg.ssm_prefix,
        private_subnet_ids=network.private_subnet_ids,
        security_group_id=network.db_security_group_id,
        instance_class=cfg.db_instance_class,
        engine_version=cfg.db_engine_version,
        allocated_storage_gb=cfg.db_allocated_storage_gb,
        multi_az=cfg.db_multi_az,
        protect_data=cfg.protect_data,
    ),
    with_provider,
)
secrets = ServerSecrets(
    name, ServerSecretsArgs(ssm_prefix=cfg.ssm_prefix, admin_username=cfg.admin_username), with_provider
)
identity = HostIdentity(
    name,
    HostIdentityArgs(
        region=cfg.region,
        ssm_prefix=cfg.ssm_prefix,
        bucket_arn=artifacts.bucket_arn,
        hosted_zone_id=cfg.hosted_zone_id,
        saves_certificate=cfg.tls == "letsencrypt",
    ),
    with_provider,
)
address = PublicAddress(
    name, PublicAddressArgs(domain=cfg.domain, hosted_zone_id=cfg.hosted_zone_id), with_provider
)
settings = pulumi.Output.all(artifacts.bucket_name, address.public_ip).apply(
    lambda facts: host_settings_for(cfg, artifact_bucket=facts[0], public_ip=facts[1])
)
# The host takes nothing from `database`: it reads the DB facts from SSM at boot (design decision 2).
host = TrackingHost(
    name,
    TrackingHostArgs(
        instance_type=cfg.instance_type,
        region=cfg.region,
        subnet_id=network.public_subnet_id,
        security_group_id=network.web_security_group_id,
        instance_profile_name=identity.instance_profile_name,
        eip_allocation_id=address.allocation_id,
        settings=settings,
        ssh_key_name=cfg.ssh_key_name,
    ),
    with_provider,
)

pulumi.export(Outputs.TRACKING_URI, settings.apply(lambda s: s.tracking_uri))
pulumi.export(Outputs.PUBLIC_IP, address.public_ip)
pulumi.export(Outputs.HOSTNAME, settings.apply(lambda s: s.public_hostname))
pulumi.export(Outputs.ARTIFACT_BUCKET, artifacts.bucket_name)
pulumi.export(Outputs.ARTIFACT_DESTINATION, artifacts.bucket_name.apply(lambda bucket: f"s3://{bucket}/"))
pulumi.export(Outputs.DB_ENDPOINT, database.endpoint)
pulumi.export(Outputs.DB_INSTANCE_ID, database.instance_id)
pulumi.export(Outputs.INSTANCE_ID, host.instance_id)
pulumi.export(
    Outputs.SSM_SESSION_COMMAND,
    host.instance_id.apply(lambda instance: f"aws ssm start-session --target {instance} --region {cfg.region}"),
)
pulumi.export(Outputs.REGION, cfg.region)
pulumi.export(Outputs.ADMIN_USERNAME, secrets.admin_username)
pulumi.export(Outputs.ADMIN_PASSWORD, secrets.admin_password)
pulumi.export(Outputs.WEB_SECURITY_GROUP_ID, network.web_security_group_id)
pulumi.export(Outputs.DB_SECURITY_GROUP_ID, network.db_security_group_id)

if cfg.client_access:
    client = ClientAccess(name, ClientAccessArgs(bucket_arn=artifacts.bucket_arn), with_provider)
    pulumi.export(Outputs.CLIENT_ACCESS_KEY_ID, client.access_key_id)
    pulumi.export(Outputs.CLIENT_SECRET_ACCESS_KEY, client.secret_access_key)
