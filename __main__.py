"""mlflow-aws: read the config, build the components in order, export what clients need."""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_aws as aws

import config
from components import preflight
from components.address import PublicAddress, PublicAddressArgs
from components.alerts import Alerts, AlertsArgs, DatabaseFacts, burstable
from components.artifact_store import ArtifactStore, ArtifactStoreArgs
from components.client_access import ClientAccess, ClientAccessArgs
from components.dashboard import StackDashboard, StackDashboardArgs
from components.database import Database, DatabaseArgs
from components.fleet import HostFleet, HostFleetArgs
from components.host import TrackingHost, TrackingHostArgs
from components.host_files import HostFileStore, HostFileStoreArgs
from components.host_logs import HostLogs, HostLogsArgs
from components.identity import HostIdentity, host_identity_args
from components.launch_shape import LaunchShape, LaunchShapeArgs
from components.load_balancer import LoadBalancer, LoadBalancerArgs
from components.naming_rules import database_identifier
from components.network import Network, NetworkArgs
from components.reachability import ReachabilityCheck, ReachabilityCheckArgs
from components.server_restart import ServerRestart, ServerRestartArgs
from components.server_secrets import ServerSecrets, ServerSecretsArgs
from host_settings import host_settings_for
from naming import Outputs
from userdata import monitoring
from userdata.settings import HostSettings

# The first engine that honours `replacement_trigger` (pulumi/pulumi#20936): an older one ignores it, and
# an instanceType change across CPU architectures then fails in place. scripts/_setup.sh checks the same.
MIN_PULUMI_ENGINE = "3.208.0"
pulumi.require_pulumi_version(f">={MIN_PULUMI_ENGINE}")

try:
    cfg = config.from_pulumi()
except config.ConfigError as error:
    raise pulumi.RunError(str(error)) from None

stack_tags = {"Project": cfg.project, "Stack": cfg.stack, "ManagedBy": "pulumi"}
provider = aws.Provider("aws", region=cfg.region, default_tags=aws.ProviderDefaultTagsArgs(tags=stack_tags))
with_provider = pulumi.ResourceOptions(providers=[provider])
name = cfg.stack
# The dynamic resources (the recorded image, the single host's launch) call AWS with boto3 and the deployer's
# own credentials: the environment's, or the profile the stack's AWS provider is configured with.
deployer_profile = pulumi.Config("aws").get("profile") or ""

# Changes AWS would refuse half-way (it is asked what the stack deployed before), before any resource.
preflight.refuse_unsafe_changes(
    project=cfg.project,
    stack=cfg.stack,
    vpc_cidr=cfg.vpc_cidr,
    domain=cfg.domain,
    hosted_zone_id=cfg.hosted_zone_id,
    opts=pulumi.InvokeOptions(provider=provider),
)

network = Network(
    name,
    NetworkArgs(
        vpc_cidr=cfg.vpc_cidr,
        allowed_cidrs=cfg.allowed_cidrs,
        instance_type=cfg.instance_type.name,
        ssh_cidrs=cfg.ssh_cidrs,
        protect_data=cfg.protect_data,
        load_balanced=cfg.fleet,
    ),
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
    name,
    ServerSecretsArgs(
        ssm_prefix=cfg.ssm_prefix,
        admin_username=cfg.admin_username,
        # config.py has checked it is set, as a secret; its value is read only here, as a secret Output.
        oidc_client_secret=pulumi.Config().require_secret("oidcClientSecret") if cfg.auth == "oidc" else None,
    ),
    with_provider,
)
# The log groups the hosts write (the certificate's only where a host runs certbot), before the hosts'
# role, so an agent that starts finds its groups there.
certificate_on_host = monitoring.runs_certbot(tls=cfg.tls, behind_load_balancer=cfg.fleet)
logs = (
    HostLogs(
        name,
        HostLogsArgs(
            project=cfg.project, stack=cfg.stack, groups=monitoring.log_groups(certificate=certificate_on_host),
            retention_days=cfg.log_retention_days, protect_data=cfg.protect_data,
        ),
        with_provider,
    )
    if cfg.monitoring else None
)
# The host's files travel outside the user data (DESIGN decision 16), in a bucket of their own.
host_file_store = HostFileStore(
    name, HostFileStoreArgs(project=cfg.project, stack=cfg.stack, protect_data=cfg.protect_data), with_provider
)
identity = HostIdentity(
    name,
    host_identity_args(cfg, artifacts.bucket_arn, host_file_store.bucket_arn,
                       log_groups=logs.groups if logs else ()),
    with_provider,
)


def watch(tracking_uri: pulumi.Input[str], target_group: tuple[pulumi.Input[str], pulumi.Input[str]] | None) -> (
        Alerts | None):
    """With monitoring: the health check from outside and the dashboard; with alertEmail, the alarms.
    Returns the alerts, whose topic the hosts' own alarms notify too."""
    if not cfg.monitoring:
        return None
    reachability = ReachabilityCheck(name, ReachabilityCheckArgs(tracking_uri=tracking_uri), with_provider)
    dashboard = StackDashboard(
        name,
        StackDashboardArgs(
            project=cfg.project, stack=cfg.stack, region=cfg.region,
            health_check_id=reachability.health_check_id, db_instance_id=database.instance_id,
            db_burstable=burstable(cfg.db_instance_class), certificate=certificate_on_host,
            target_group=target_group,
        ),
        with_provider,
    )
    pulumi.export(Outputs.DASHBOARD_URL, dashboard.url)
    if not cfg.alert_email:
        return None
    return Alerts(
        name,
        AlertsArgs(
            project=cfg.project, stack=cfg.stack, region=cfg.region, email=cfg.alert_email,
            health_check_id=reachability.health_check_id,
            database=DatabaseFacts(instance_id=database.instance_id, instance_class=cfg.db_instance_class,
                                   allocated_storage_gb=cfg.db_allocated_storage_gb),
            certificate=certificate_on_host, target_group=target_group,
        ),
        with_provider,
    )


def launch_shape(settings: pulumi.Output[HostSettings], subnet_id: pulumi.Output[str] | None = None) -> LaunchShape:
    """What every host of the stack is launched as, in either shape (one resource name, one recorded image)."""
    return LaunchShape(
        name,
        LaunchShapeArgs(
            instance_type=cfg.instance_type,
            region=cfg.region,
            instance_profile_name=identity.instance_profile_name,
            security_group_id=network.web_security_group_id,
            settings=settings,
            tags=stack_tags,
            subnet_id=subnet_id,
            ssh_key_name=cfg.ssh_key_name,
            image_refresh=cfg.image_refresh,
            profile=deployer_profile,
        ),
        with_provider,
    )


def admin_restart() -> None:
    """A new admin name or password in SSM reaches the running server: the hosts restart MLflow, one at a time."""
    ServerRestart(name, ServerRestartArgs(host_tag_value=name, revision=secrets.restart_revision), with_provider)


def deploy_fleet() -> None:
    """hosts >= 2: an Auto Scaling group behind an Application Load Balancer. No Elastic IP, and no
    recovery alarms: the group replaces a host the load balancer finds unhealthy."""
    assert network.alb_security_group_id is not None
    # The name moves to the load balancer only once the group has its hosts healthy behind it.
    serving: pulumi.Output[str]
    fleet_serves: Callable[[pulumi.Output[str]], None]
    serving, fleet_serves = pulumi.deferred_output()
    balancer = LoadBalancer(
        name,
        LoadBalancerArgs(
            serving=serving,
            domain=cfg.domain,
            hosted_zone_id=cfg.hosted_zone_id,
            vpc_id=network.vpc_id,
            subnet_ids=network.public_subnet_ids,
            security_group_id=network.alb_security_group_id,
        ),
        with_provider,
    )
    settings = pulumi.Output.all(artifacts.bucket_name, host_file_store.bucket_name).apply(
        lambda buckets: host_settings_for(cfg, artifact_bucket=buckets[0], host_files_bucket=buckets[1], public_ip="")
    )
    watch(settings.apply(lambda s: s.tracking_uri), (balancer.target_group_arn_suffix, balancer.arn_suffix))
    fleet = HostFleet(
        name,
        HostFleetArgs(
            hosts=cfg.hosts,
            shape=launch_shape(settings),
            subnet_ids=network.public_subnet_ids,
            target_group_arn=balancer.target_group_arn,
            role_name=identity.role_name,
        ),
        with_provider,
    )
    fleet_serves(fleet.group_name)
    admin_restart()
    pulumi.export(Outputs.TRACKING_URI, settings.apply(lambda s: s.tracking_uri))
    pulumi.export(Outputs.HOSTNAME, cfg.domain)
    pulumi.export(Outputs.LOAD_BALANCER_DNS_NAME, balancer.dns_name)
    pulumi.export(Outputs.AUTOSCALING_GROUP_NAME, fleet.group_name)
    pulumi.export(Outputs.LOAD_BALANCER_SECURITY_GROUP_ID, network.alb_security_group_id)


def deploy_single_host() -> None:
    # The domain's record (with a zone) moves to the address only once a healthy host has it.
    serving: pulumi.Output[str]
    address_serves: Callable[[pulumi.Output[str]], None]
    serving, address_serves = pulumi.deferred_output()
    address = PublicAddress(
        name,
        PublicAddressArgs(serving=serving, domain=cfg.domain, hosted_zone_id=cfg.hosted_zone_id),
        with_provider,
    )
    settings = pulumi.Output.all(artifacts.bucket_name, host_file_store.bucket_name, address.public_ip).apply(
        lambda facts: host_settings_for(cfg, artifact_bucket=facts[0], host_files_bucket=facts[1], public_ip=facts[2])
    )
    alerts = watch(settings.apply(lambda s: s.tracking_uri), None)
    # The host takes nothing from `database`: it reads the DB facts from SSM at boot (design decision 2).
    host = TrackingHost(
        name,
        TrackingHostArgs(
            region=cfg.region,
            shape=launch_shape(settings, subnet_id=network.public_subnet_id),
            eip_allocation_id=address.allocation_id,
            database_identifier=database_identifier(cfg.project, cfg.stack),
            stack_tags=stack_tags,
            ready_timeout_seconds=cfg.host_ready_timeout_minutes * 60.0,
            profile=deployer_profile,
            notify=[alerts.topic_arn] if alerts else [],
        ),
        with_provider,
    )
    address_serves(host.association_id)
    admin_restart()

    pulumi.export(Outputs.TRACKING_URI, settings.apply(lambda s: s.tracking_uri))
    pulumi.export(Outputs.PUBLIC_IP, address.public_ip)
    pulumi.export(Outputs.HOSTNAME, settings.apply(lambda s: s.public_hostname))
    pulumi.export(Outputs.INSTANCE_ID, host.instance_id)
    pulumi.export(
        Outputs.SSM_SESSION_COMMAND,
        host.instance_id.apply(lambda instance: f"aws ssm start-session --target {instance} --region {cfg.region}"),
    )


if cfg.fleet:
    deploy_fleet()
else:
    deploy_single_host()

pulumi.export(Outputs.ARTIFACT_BUCKET, artifacts.bucket_name)
pulumi.export(Outputs.ARTIFACT_DESTINATION, artifacts.bucket_name.apply(lambda bucket: f"s3://{bucket}/"))
pulumi.export(Outputs.HOST_FILES_BUCKET, host_file_store.bucket_name)
pulumi.export(Outputs.DB_ENDPOINT, database.endpoint)
pulumi.export(Outputs.DB_INSTANCE_ID, database.instance_id)
if database.final_snapshot_identifier is not None:
    pulumi.export(Outputs.DB_FINAL_SNAPSHOT, database.final_snapshot_identifier)
pulumi.export(Outputs.REGION, cfg.region)
pulumi.export(Outputs.AUTH, cfg.auth)
pulumi.export(Outputs.ADMIN_USERNAME, secrets.admin_username)
pulumi.export(Outputs.ADMIN_PASSWORD, secrets.admin_password)
pulumi.export(Outputs.WEB_SECURITY_GROUP_ID, network.web_security_group_id)
pulumi.export(Outputs.DB_SECURITY_GROUP_ID, network.db_security_group_id)

if cfg.client_access:
    client = ClientAccess(name, ClientAccessArgs(bucket_arn=artifacts.bucket_arn), with_provider)
    pulumi.export(Outputs.CLIENT_ACCESS_KEY_ID, client.access_key_id)
    pulumi.export(Outputs.CLIENT_SECRET_ACCESS_KEY, client.secret_access_key)
