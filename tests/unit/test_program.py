"""The whole Pulumi program under mocks: one test per property the stack promises."""

from __future__ import annotations

import base64
import gzip
import ipaddress
import json
from typing import Any

import pytest

import config
import naming
import userdata
from components.database import final_snapshot_identifier
from host_settings import host_settings_for
from naming import Outputs
from tests.support.pulumi_program import (
    PROJECT_DIR,
    PUBLIC_IP,
    Account,
    ProgramFailed,
    ProgramRun,
    Record,
    RegisteredResource,
    run_program,
)

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
BUCKET = "aws:s3/bucket:Bucket"
RDS = "aws:rds/instance:Instance"
EC2 = "aws:ec2/instance:Instance"
PARAMETER = "aws:ssm/parameter:Parameter"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
RANDOM_ID = "random:index/randomId:RandomId"
SUBNET = "aws:ec2/subnet:Subnet"
ASSOCIATION = "aws:ssm/association:Association"
A_RECORD = "aws:route53/record:Record"


@pytest.fixture(scope="module")
def dev() -> ProgramRun:
    return run_program("dev")


@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    return run_program("prod")


def named(run: ProgramRun, type_token: str, suffix: str) -> RegisteredResource:
    matches = [r for r in run.of_type(type_token) if r.name.endswith(suffix)]
    assert len(matches) == 1, f"{type_token} ending in {suffix}: {[r.name for r in run.of_type(type_token)]}"
    return matches[0]


def security_group_urn(run: ProgramRun, suffix: str) -> str:
    return named(run, SECURITY_GROUP, suffix).urn


def artifact_store_children(run: ProgramRun) -> list[RegisteredResource]:
    store = run.one("mlflow-aws:storage:ArtifactStore").urn
    return [r for r in run.resources if r.parent == store]


def ingress_of(run: ProgramRun, group_suffix: str) -> list[RegisteredResource]:
    group = security_group_urn(run, group_suffix)
    return [rule for rule in run.of_type(INGRESS) if group in rule.property_dependencies.get("securityGroupId", set())]


# --- the network -------------------------------------------------------------------------------


def test_vpc_uses_the_configured_cidr(dev: ProgramRun) -> None:
    assert dev.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"] == "10.20.0.0/16"


def test_two_private_subnets_in_distinct_availability_zones_inside_the_vpc(dev: ProgramRun) -> None:
    private = [r for r in dev.of_type("aws:ec2/subnet:Subnet") if "private" in r.name]
    assert len(private) >= 2
    assert len({subnet.inputs["availabilityZone"] for subnet in private}) == len(private)
    vpc = ipaddress.ip_network("10.20.0.0/16")
    for subnet in private:
        assert ipaddress.ip_network(subnet.inputs["cidrBlock"]).subnet_of(vpc)  # type: ignore[arg-type]
        assert subnet.inputs["mapPublicIpOnLaunch"] is False


def test_availability_zones_come_from_the_data_source(dev: ProgramRun) -> None:
    zone_calls = [i for i in dev.invokes if i.token == "aws:index/getAvailabilityZones:getAvailabilityZones"]
    assert zone_calls and zone_calls[0].args["state"] == "available"
    zones = {r.inputs["availabilityZone"] for r in dev.of_type("aws:ec2/subnet:Subnet")}
    assert zones <= {"eu-west-1a", "eu-west-1b", "eu-west-1c"}


def test_only_the_public_route_table_routes_to_the_internet_gateway(dev: ProgramRun) -> None:
    routes = dev.of_type("aws:ec2/route:Route")
    assert len(routes) == 1
    assert routes[0].inputs["destinationCidrBlock"] == "0.0.0.0/0"
    public_table = named(dev, "aws:ec2/routeTable:RouteTable", "public-rt").urn
    assert public_table in routes[0].property_dependencies["routeTableId"]
    gateway = dev.one("aws:ec2/internetGateway:InternetGateway").urn
    assert gateway in routes[0].property_dependencies["gatewayId"]


# --- security groups ---------------------------------------------------------------------------


def test_web_group_admits_only_80_and_443_from_allowed_cidrs(dev: ProgramRun) -> None:
    rules = ingress_of(dev, "-web")
    assert sorted((r.inputs["fromPort"], r.inputs["toPort"], r.inputs["cidrIpv4"]) for r in rules) == [
        (80, 80, "0.0.0.0/0"),
        (443, 443, "0.0.0.0/0"),
    ]


def test_restricted_allowed_cidrs_are_the_only_web_sources() -> None:
    run = run_program(
        "dev",
        {
            "allowedCidrs": ["198.51.100.0/24", "203.0.113.7/32"],
            "domain": "mlflow.example.com",
            "hostedZoneId": "Z0123456789ABC",
        },
    )
    sources = {(r.inputs["fromPort"], r.inputs["cidrIpv4"]) for r in ingress_of(run, "-web")}
    assert sources == {(port, cidr) for port in (80, 443) for cidr in ("198.51.100.0/24", "203.0.113.7/32")}


def test_removing_an_allowed_cidr_leaves_the_other_rules_untouched() -> None:
    zone = {"domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABC"}
    both = run_program("dev", {"allowedCidrs": ["198.51.100.0/24", "203.0.113.7/32"], **zone})
    second_only = run_program("dev", {"allowedCidrs": ["203.0.113.7/32"], **zone})

    def rules(run: ProgramRun) -> dict[str, str]:
        return {rule.name: rule.inputs["cidrIpv4"] for rule in ingress_of(run, "-web")}

    kept = rules(second_only)
    assert kept and set(kept.values()) == {"203.0.113.7/32"}
    # Same names and CIDRs as before: `pulumi up` deletes the removed CIDR's rules and changes nothing else.
    assert kept.items() <= rules(both).items()


def test_host_waits_for_its_security_group_rules(dev: ProgramRun) -> None:
    host = dev.one(EC2)
    egress = dev.one("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    assert egress.inputs["cidrIpv4"] == "0.0.0.0/0" and egress.inputs["ipProtocol"] == "-1"
    for rule in (egress, *ingress_of(dev, "-web")):
        assert dev.depends_on(host, rule), f"the host boots before {rule.name} exists"


def test_no_ssh_rule_by_default(dev: ProgramRun) -> None:
    assert not [r for r in dev.of_type(INGRESS) if r.inputs.get("fromPort") == 22]


def test_ssh_opens_only_to_ssh_cidrs_when_asked() -> None:
    run = run_program("dev", {"sshCidrs": ["198.51.100.4/32"], "sshKeyName": "ops"})
    ssh = [r for r in run.of_type(INGRESS) if r.inputs.get("fromPort") == 22]
    assert [(r.inputs["cidrIpv4"], r.inputs["toPort"]) for r in ssh] == [("198.51.100.4/32", 22)]
    assert run.one(EC2).inputs["keyName"] == "ops"


def test_database_group_admits_5432_only_from_the_web_group(dev: ProgramRun) -> None:
    rules = ingress_of(dev, "-db")
    assert len(rules) == 1
    rule = rules[0]
    assert (rule.inputs["fromPort"], rule.inputs["toPort"], rule.inputs["ipProtocol"]) == (5432, 5432, "tcp")
    assert "cidrIpv4" not in rule.inputs
    assert security_group_urn(dev, "-web") in rule.property_dependencies["referencedSecurityGroupId"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_nothing_opens_5000_or_5432_or_22_to_the_world(stack: str) -> None:
    run = run_program(stack)
    for rule in run.of_type(INGRESS):
        cidr = rule.inputs.get("cidrIpv4")
        if cidr is None:
            continue
        ports = range(int(rule.inputs.get("fromPort", 0)), int(rule.inputs.get("toPort", 65535)) + 1)
        if ipaddress.ip_network(cidr).prefixlen == 0:
            assert set(ports) <= {80, 443}, f"{rule.name} opens {ports} to the world"
    assert not [g for g in run.of_type(SECURITY_GROUP) if g.inputs.get("ingress")], "no inline rules"


# --- the artifact store ------------------------------------------------------------------------


# Each bucket of the stack by the prefix of its resources' names: the artifacts', and the one the host's files
# travel in (components/host_files.py, DESIGN decision 16).
BUCKET_PREFIXES = {"artifacts": ("{stack}", "mlflow-aws-dev-artifacts-1a2b3c4d"),
                   "host files": ("{stack}-host-files", "mlflow-aws-dev-host-files-1a2b3c4d")}
each_bucket = pytest.mark.parametrize("which", sorted(BUCKET_PREFIXES))


def of_bucket(run: ProgramRun, type_token: str, which: str, what: str, stack: str = "dev") -> RegisteredResource:
    prefix = BUCKET_PREFIXES[which][0].format(stack=stack)
    (found,) = [resource for resource in run.of_type(type_token) if resource.name == f"{prefix}-{what}"]
    return found


@each_bucket
def test_bucket_name_is_unique_and_valid(dev: ProgramRun, which: str) -> None:
    _, expected = BUCKET_PREFIXES[which]
    bucket = of_bucket(dev, BUCKET, which, "bucket")
    name = bucket.inputs["bucket"]
    assert name == expected  # the mocks' RandomId hex
    assert len(name) <= 63 and name == name.lower()
    assert "random:index/randomId:RandomId" in {dev.by_urn(u).type for u in bucket.property_dependencies["bucket"]}
    exported = {"artifacts": Outputs.ARTIFACT_BUCKET, "host files": Outputs.HOST_FILES_BUCKET}[which]
    assert dev.outputs[exported] == expected


@each_bucket
def test_bucket_versioning_is_enabled(dev: ProgramRun, which: str) -> None:
    versioning = of_bucket(dev, "aws:s3/bucketVersioning:BucketVersioning", which, "versioning")
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"


@each_bucket
def test_bucket_is_encrypted_at_rest(dev: ProgramRun, which: str) -> None:
    sse = of_bucket(dev, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                    which, "encryption")
    rule = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert rule["sseAlgorithm"] in ("AES256", "aws:kms")


@each_bucket
def test_bucket_blocks_every_kind_of_public_access(dev: ProgramRun, which: str) -> None:
    block = of_bucket(dev, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", which,
                      "public-access-block").inputs
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert all(block[flag] is True for flag in flags)


@each_bucket
def test_bucket_policy_denies_non_tls_access(dev: ProgramRun, which: str) -> None:
    policy = json.loads(of_bucket(dev, "aws:s3/bucketPolicy:BucketPolicy", which, "tls-only").inputs["policy"])
    bucket_arn = f"arn:aws:s3:::{BUCKET_PREFIXES[which][1]}"
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(statement["Resource"]) == {bucket_arn, f"{bucket_arn}/*"}


def test_lifecycle_expires_noncurrent_versions_and_aborts_multipart_uploads(dev: ProgramRun) -> None:
    lifecycle = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    (rule,) = of_bucket(dev, lifecycle, "artifacts", "lifecycle").inputs["rules"]
    assert rule["status"] == "Enabled"
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] > 0
    assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] > 0
    # The host files' objects are never overwritten with other bytes (the key is their hash): a noncurrent
    # version is the same bytes put again, kept a day.
    (rule,) = of_bucket(dev, lifecycle, "host files", "lifecycle").inputs["rules"]
    assert rule["status"] == "Enabled" and rule["noncurrentVersionExpiration"]["noncurrentDays"] == 1


@each_bucket
def test_bucket_has_no_inline_v6_style_blocks(dev: ProgramRun, which: str) -> None:
    inputs = of_bucket(dev, BUCKET, which, "bucket").inputs
    for legacy in ("versioning", "serverSideEncryptionConfiguration", "lifecycleRules", "policy", "acl"):
        assert legacy not in inputs


# --- the database ------------------------------------------------------------------------------


def test_rds_is_private_and_encrypted(dev: ProgramRun) -> None:
    rds = dev.one(RDS).inputs
    assert rds["publiclyAccessible"] is False
    assert rds["storageEncrypted"] is True
    assert rds["engine"] == "postgres" and rds["engineVersion"] == "17"


def test_a_major_version_takes_aws_minor_upgrades_and_a_pinned_minor_stays_pinned(dev: ProgramRun) -> None:
    assert dev.one(RDS).inputs["autoMinorVersionUpgrade"] is True
    pinned = run_program("dev", {"dbEngineVersion": "17.6"}).one(RDS).inputs
    assert pinned["engineVersion"] == "17.6" and pinned["autoMinorVersionUpgrade"] is False


@pytest.mark.parametrize(
    ("allocated", "autoscaling_limit"), [(20, 100), (13107, 65535), (20000, 65536), (65536, None)]
)
def test_storage_grows_up_to_five_times_within_the_rds_ceiling(allocated: int, autoscaling_limit: int | None) -> None:
    rds = run_program("dev", {"dbAllocatedStorageGb": allocated}).one(RDS).inputs
    assert rds["allocatedStorage"] == allocated
    assert rds.get("maxAllocatedStorage") == autoscaling_limit


def test_rds_lives_in_the_private_subnets(dev: ProgramRun) -> None:
    group = dev.one("aws:rds/subnetGroup:SubnetGroup")
    private = {r.urn for r in dev.of_type("aws:ec2/subnet:Subnet") if "private" in r.name}
    assert group.property_dependencies["subnetIds"] == private
    assert group.urn in dev.one(RDS).property_dependencies["dbSubnetGroupName"]


def test_rds_password_comes_from_random_password(dev: ProgramRun) -> None:
    rds = dev.one(RDS)
    sources = {dev.by_urn(urn).type for urn in rds.property_dependencies["password"]}
    assert sources == {RANDOM_PASSWORD}


def test_db_connection_facts_are_in_ssm_with_the_password_secure(dev: ProgramRun) -> None:
    parameters = {r.inputs["name"]: r.inputs["type"] for r in dev.of_type(PARAMETER)}
    for fact in ("host", "port", "name", "username"):
        assert parameters[f"/mlflow-aws/dev/db/{fact}"] == "String"
    assert parameters["/mlflow-aws/dev/db/password"] == "SecureString"
    assert parameters["/mlflow-aws/dev/mlflow/admin-password"] == "SecureString"
    assert parameters["/mlflow-aws/dev/mlflow/flask-secret-key"] == "SecureString"


def test_the_gateway_passphrase_is_generated_and_kept_as_a_securestring_the_host_may_read(dev: ProgramRun) -> None:
    name = "/mlflow-aws/dev/mlflow/gateway-kek-passphrase"
    (parameter,) = [r for r in dev.of_type(PARAMETER) if r.inputs["name"] == name]
    assert parameter.inputs["type"] == "SecureString"
    assert {dev.by_urn(urn).type for urn in parameter.property_dependencies["value"]} == {RANDOM_PASSWORD}
    value = parameter.inputs["value"]
    assert (value["value"] if isinstance(value, dict) else value) in dev.generated_secrets  # dict: marked secret
    readable = {resource for statement in host_policy(dev)["Statement"]
                if "ssm:GetParameters" in statement["Action"] for resource in [statement["Resource"]]}
    assert readable == {"arn:aws:ssm:eu-west-1:123456789012:parameter/mlflow-aws/dev/*"}


# --- identity ----------------------------------------------------------------------------------


def host_policy(run: ProgramRun) -> dict[str, Any]:
    return json.loads(run.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])  # type: ignore[no-any-return]


def test_role_is_trusted_by_ec2_only(dev: ProgramRun) -> None:
    trust = json.loads(dev.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "ec2.amazonaws.com"}]


def host_policy_resources(run: ProgramRun) -> dict[str, set[str]]:
    """Action -> every resource the host policy allows it on."""
    resources: dict[str, set[str]] = {}
    for statement in host_policy(run)["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in statement["Action"]:
            resources.setdefault(action, set()).update(listed)
    return resources


def test_host_policy_reaches_only_the_bucket_and_the_stacks_parameters(dev: ProgramRun) -> None:
    bucket_arn = "arn:aws:s3:::mlflow-aws-dev-artifacts-1a2b3c4d"
    resources = host_policy_resources(dev)
    assert resources["s3:ListBucket"] == {bucket_arn}
    for action in ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"):
        assert resources[action] == {f"{bucket_arn}/*"}
    # and the host's files, only under their prefix (DESIGN decision 16)
    host_files = "arn:aws:s3:::mlflow-aws-dev-host-files-1a2b3c4d/host-files/*"
    assert resources["s3:GetObject"] == {f"{bucket_arn}/*", host_files}
    assert resources["ssm:GetParameters"] == {"arn:aws:ssm:eu-west-1:123456789012:parameter/mlflow-aws/dev/*"}
    assert all("*" not in action for action in resources)
    assert all(arn != "*" for arns in resources.values() for arn in arns)


def test_host_may_read_and_write_exactly_its_saved_acme_account_and_certificate(dev: ProgramRun) -> None:
    resources = host_policy_resources(dev)
    saved = {
        "arn:aws:ssm:eu-west-1:123456789012:parameter/mlflow-aws/dev/tls/acme-account",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/mlflow-aws/dev/tls/certificate",
    }
    assert resources["ssm:PutParameter"] == saved
    assert resources["ssm:GetParameter"] == saved
    writes = {action for action in resources if not action.startswith(("ssm:Get", "s3:List", "s3:Get"))}
    assert writes == {"ssm:PutParameter", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}


def test_with_tls_off_the_host_writes_no_parameter() -> None:
    run = run_program("dev", {"tls": "off"})
    assert "ssm:PutParameter" not in host_policy_resources(run)
    assert "ssm:GetParameter" not in host_policy_resources(run)
    assert not [r for r in run.of_type(PARAMETER) if "/tls/" in r.inputs["name"]]


def test_the_stack_owns_the_parameters_the_host_saves_its_certificate_in(dev: ProgramRun) -> None:
    """Created empty-handed (destroy then deletes the saved private key), before the host boots."""
    saved = {r.inputs["name"]: r for r in dev.of_type(PARAMETER) if "/tls/" in r.inputs["name"]}
    assert sorted(saved) == ["/mlflow-aws/dev/tls/acme-account", "/mlflow-aws/dev/tls/certificate"]
    host = dev.one(EC2)
    for parameter in saved.values():
        value = parameter.inputs["value"]  # pulumi-aws marks a SecureString's value secret
        assert (parameter.inputs["type"], value.get("value") if isinstance(value, dict) else value) == (
            "SecureString", naming.UNSAVED_STATE)
        assert dev.depends_on(host, parameter)


def test_the_ssm_agents_policy_without_parameter_reads_is_attached(dev: ProgramRun) -> None:
    attachment = dev.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedEC2InstanceDefaultPolicy"


def test_role_uses_no_inline_or_managed_policy_lists(dev: ProgramRun) -> None:
    role = dev.one("aws:iam/role:Role").inputs
    assert "inlinePolicies" not in role and "managedPolicyArns" not in role


def test_instance_profile_carries_the_role(dev: ProgramRun) -> None:
    profile = dev.one("aws:iam/instanceProfile:InstanceProfile")
    assert dev.one("aws:iam/role:Role").urn in profile.property_dependencies["role"]
    assert profile.urn in dev.one(EC2).property_dependencies["iamInstanceProfile"]


def test_host_boots_with_its_permissions_already_attached(dev: ProgramRun) -> None:
    host = dev.one(EC2)
    assert dev.depends_on(host, dev.one("aws:iam/rolePolicy:RolePolicy"))
    assert dev.depends_on(host, dev.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment"))


# --- address and host --------------------------------------------------------------------------


def test_elastic_ip_is_a_vpc_address_associated_with_the_hosts_interface(dev: ProgramRun) -> None:
    eip = dev.one("aws:ec2/eip:Eip")
    assert eip.inputs["domain"] == "vpc"
    association = dev.one("aws:ec2/eipAssociation:EipAssociation")
    interface = dev.one("aws:ec2/networkInterface:NetworkInterface")
    assert eip.urn in association.property_dependencies["allocationId"]
    assert interface.urn in association.property_dependencies["networkInterfaceId"]
    host = dev.one(EC2)
    assert interface.urn in host.property_dependencies["primaryNetworkInterface"]
    assert association.urn in host.dependencies, "the address must be attached before the host boots"


def test_address_and_host_wait_for_the_public_subnets_route_to_the_internet(dev: ProgramRun) -> None:
    gateway = dev.one("aws:ec2/internetGateway:InternetGateway")
    route = named(dev, "aws:ec2/route:Route", "-public-default")
    association = named(dev, "aws:ec2/routeTableAssociation:RouteTableAssociation", "-public-rta")
    for waiter in (dev.one("aws:ec2/eipAssociation:EipAssociation"), dev.one(EC2)):
        for needed in (gateway, route, association):
            assert dev.depends_on(waiter, needed), f"{waiter.name} does not wait for {needed.name}"


def test_a_change_of_cpu_architecture_replaces_the_host(dev: ProgramRun) -> None:
    graviton = run_program("dev", {"instanceType": "t4g.small"})
    assert dev.one(EC2).ignore_changes == ["ami"]
    assert (dev.one(EC2).replacement_trigger, graviton.one(EC2).replacement_trigger) == ("amd64", "arm64")


def test_host_requires_imdsv2(dev: ProgramRun) -> None:
    assert dev.one(EC2).inputs["metadataOptions"]["httpTokens"] == "required"


def test_host_root_volume_is_encrypted_gp3(dev: ProgramRun) -> None:
    volume = dev.one(EC2).inputs["rootBlockDevice"]
    assert volume["encrypted"] is True and volume["volumeType"] == "gp3"


def test_host_disk_has_room_for_the_artifacts_mlflow_spools(dev: ProgramRun) -> None:
    # Ubuntu and the venv take ~5 GB; MLflow writes each proxied artifact whole to its temporary directory.
    assert dev.one(EC2).inputs["rootBlockDevice"]["volumeSize"] >= 30


def test_host_runs_ubuntu_2404_from_canonical(dev: ProgramRun) -> None:
    (ami_call,) = [i for i in dev.invokes if i.token == "aws:ec2/getAmi:getAmi"]
    assert ami_call.args["owners"] == ["099720109477"]
    filters = {f["name"]: f["values"] for f in ami_call.args["filters"]}
    assert filters["name"] == ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]
    assert filters["architecture"] == ["x86_64"]
    assert "ami" in dev.one(EC2).ignore_changes, "a new AMI release must not replace the server"


def test_graviton_instance_types_get_the_arm64_image() -> None:
    run = run_program("dev", {"instanceType": "t4g.small"})
    (ami_call,) = [i for i in run.invokes if i.token == "aws:ec2/getAmi:getAmi"]
    filters = {f["name"]: f["values"] for f in ami_call.args["filters"]}
    assert filters["architecture"] == ["arm64"]
    assert "arm64" in filters["name"][0]


def test_user_data_is_exactly_what_userdata_render_returns(dev: ProgramRun) -> None:
    cfg = config.from_stack_files(".", "dev")
    expected = userdata.render(
        host_settings_for(cfg, artifact_bucket=dev.outputs[Outputs.ARTIFACT_BUCKET],
                          host_files_bucket=dev.outputs[Outputs.HOST_FILES_BUCKET], public_ip=PUBLIC_IP)
    )
    host = dev.one(EC2).inputs
    assert gzip.decompress(base64.b64decode(host["userDataBase64"])).decode() == expected
    assert host["userDataReplaceOnChange"] is True


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_generated_secret_reaches_user_data_or_plain_outputs(stack: str) -> None:
    run = run_program(stack, {"clientAccess": True})
    secrets = run.generated_secrets
    assert len(secrets) == 5  # DB password, admin password, Flask secret key, gateway passphrase, client secret key
    user_data = gzip.decompress(base64.b64decode(run.one(EC2).inputs["userDataBase64"])).decode()
    plain_outputs = json.dumps({k: v for k, v in run.outputs.items() if k not in run.secret_outputs})
    for secret in secrets:
        assert secret not in user_data
        assert secret not in plain_outputs


def test_instance_does_not_wait_for_the_database(dev: ProgramRun) -> None:
    host = dev.one(EC2)
    rds = dev.one(RDS)
    assert not dev.depends_on(host, rds)
    # The parameters the program writes (the database's among them); the two the host writes itself
    # exist, with nothing in them, before it boots (test_the_stack_owns_the_parameters_...).
    host_written = {naming.parameter_name("/mlflow-aws/dev", p) for p in naming.HOST_WRITTEN_PARAMETERS}
    program_written = [p for p in dev.of_type(PARAMETER) if p.inputs["name"] not in host_written]
    assert len(program_written) == len(naming.HOST_PARAMETERS)
    for parameter in program_written:
        assert not dev.depends_on(host, parameter), f"the host waits for {parameter.name}"
    assert not dev.depends_on(rds, host)


def test_host_heals_itself_through_status_check_alarms(dev: ProgramRun) -> None:
    alarms = {a.inputs["metricName"]: a for a in dev.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert alarms["StatusCheckFailed_System"].inputs["alarmActions"] == ["arn:aws:automate:eu-west-1:ec2:recover"]
    assert alarms["StatusCheckFailed_Instance"].inputs["alarmActions"] == ["arn:aws:automate:eu-west-1:ec2:reboot"]
    host = dev.one(EC2).urn
    for alarm in alarms.values():
        assert host in alarm.property_dependencies["dimensions"]


# --- domain and DNS ----------------------------------------------------------------------------


def test_default_hostname_is_the_elastic_ip_itself(dev: ProgramRun) -> None:
    assert dev.outputs[Outputs.HOSTNAME] == "203.0.113.10"
    assert dev.outputs[Outputs.TRACKING_URI] == "https://203.0.113.10"
    assert not dev.of_type("aws:route53/record:Record")


def test_an_sslip_name_is_an_explicit_domain_like_any_other() -> None:
    run = run_program("dev", {"domain": "203-0-113-10.sslip.io"})
    assert run.outputs[Outputs.HOSTNAME] == "203-0-113-10.sslip.io"
    assert run.outputs[Outputs.TRACKING_URI] == "https://203-0-113-10.sslip.io"


def test_hosted_zone_creates_the_a_record_and_allows_dns01() -> None:
    run = run_program("dev", {"domain": "MLflow.Example.com.", "hostedZoneId": "Z0123456789ABC"})
    record = run.one("aws:route53/record:Record").inputs
    assert (record["name"], record["type"], record["zoneId"]) == ("mlflow.example.com", "A", "Z0123456789ABC")
    assert record["records"] == [PUBLIC_IP]
    assert run.outputs[Outputs.TRACKING_URI] == "https://mlflow.example.com"
    change = [s for s in host_policy(run)["Statement"] if "route53:ChangeResourceRecordSets" in s["Action"]]
    assert change[0]["Resource"] == "arn:aws:route53:::hostedzone/Z0123456789ABC"


def test_tls_off_gives_an_http_tracking_uri() -> None:
    run = run_program("dev", {"tls": "off"})
    assert run.outputs[Outputs.TRACKING_URI] == "http://203.0.113.10"


# --- outputs, provider, tags -------------------------------------------------------------------


def test_design_outputs_are_all_exported(dev: ProgramRun) -> None:
    expected = {
        "tracking_uri", "public_ip", "hostname", "artifact_bucket", "artifact_destination", "db_endpoint",
        "instance_id", "ssm_session_command", "region", "admin_username", "admin_password",
    }
    assert expected <= set(dev.outputs)
    assert dev.secret_outputs == {"admin_password"}
    assert dev.outputs[Outputs.ARTIFACT_DESTINATION] == "s3://mlflow-aws-dev-artifacts-1a2b3c4d/"
    assert dev.outputs[Outputs.SSM_SESSION_COMMAND].startswith("aws ssm start-session --target i-")
    assert "client_access_key_id" not in dev.outputs


def test_client_access_creates_a_read_only_user_and_secret_keys() -> None:
    run = run_program("dev", {"clientAccess": True})
    assert run.outputs[Outputs.CLIENT_ACCESS_KEY_ID] == "AKIAMOCKACCESSKEY"
    assert {"admin_password", "client_secret_access_key"} == run.secret_outputs
    policy = json.loads(run.one("aws:iam/userPolicy:UserPolicy").inputs["policy"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions <= {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject", "s3:GetObjectVersion"}


def test_every_aws_resource_uses_the_one_explicit_provider_with_default_tags(dev: ProgramRun) -> None:
    (provider,) = dev.of_type("pulumi:providers:aws")
    tags = json.loads(provider.inputs["defaultTags"])["tags"] if isinstance(
        provider.inputs["defaultTags"], str
    ) else provider.inputs["defaultTags"]["tags"]
    assert tags == {"Project": "mlflow-aws", "Stack": "dev", "ManagedBy": "pulumi"}
    assert provider.inputs["region"] == "eu-west-1"
    for resource in dev.resources:
        if resource.type.startswith("aws:"):
            assert resource.provider.startswith(provider.urn), f"{resource.name} uses {resource.provider}"


def test_only_pulumi_aws_v7_resource_names(dev: ProgramRun) -> None:
    assert not [r.type for r in dev.resources if "V2" in r.type or "/bucketV2" in r.type]


def test_every_resource_is_parented_to_a_component(dev: ProgramRun) -> None:
    components = {r.urn for r in dev.resources if r.type.startswith("mlflow-aws:")}
    for resource in dev.resources:
        if resource.type.startswith(("aws:", "random:")):
            assert resource.parent in components, f"{resource.name} is not parented to a component"


# --- teardown per stack ------------------------------------------------------------------------


def test_dev_tears_down_cleanly(dev: ProgramRun) -> None:
    rds = dev.one(RDS).inputs
    assert rds["deletionProtection"] is False and rds["skipFinalSnapshot"] is True
    assert "finalSnapshotIdentifier" not in rds
    for which in BUCKET_PREFIXES:
        bucket = of_bucket(dev, BUCKET, which, "bucket")
        assert bucket.inputs["forceDestroy"] is True and not bucket.retain_on_delete, which
    assert not [r.name for r in artifact_store_children(dev) if r.retain_on_delete]


def test_prod_keeps_its_data(prod: ProgramRun) -> None:
    rds = prod.one(RDS).inputs
    assert rds["deletionProtection"] is True
    assert rds["skipFinalSnapshot"] is False
    assert rds["finalSnapshotIdentifier"] == "mlflow-aws-prod-final-1a2b3c4d"
    assert rds["backupRetentionPeriod"] >= 7
    assert rds["multiAz"] is True
    bucket = of_bucket(prod, BUCKET, "artifacts", "bucket", stack="prod")
    assert bucket.inputs["forceDestroy"] is False
    assert bucket.retain_on_delete, "destroy must leave the bucket and its objects in place"


def test_prod_keeps_the_bucket_with_every_protection_it_had(prod: ProgramRun) -> None:
    companions = {r.type for r in artifact_store_children(prod) if r.type.startswith("aws:s3/")} - {BUCKET}
    assert {"aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketPolicy:BucketPolicy",
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"} <= companions
    deleted_on_destroy = [r.name for r in artifact_store_children(prod) if not r.retain_on_delete]
    assert deleted_on_destroy == [], "destroy would suspend versioning or lift the access block of the kept bucket"


# --- bad config --------------------------------------------------------------------------------


def test_bad_config_fails_before_any_resource_is_registered() -> None:
    with pytest.raises(ProgramFailed) as failure:
        run_program("dev", {"allowedCidrs": "10.0.0.0/8", "tls": "maybe"})
    assert failure.value.resources == []
    message = str(failure.value)
    assert "allowedCidrs" in message and "tls: 'maybe'" in message


def cloud_resources(resources: list[RegisteredResource]) -> list[str]:
    """What a run would create in AWS: everything but the provider and the components."""
    return [r.name for r in resources if not r.type.startswith(("pulumi:providers:", "mlflow-aws:"))]


# --- lifecycle: destroy ------------------------------------------------------------------------


def test_prod_protects_the_database_the_bucket_and_what_they_cannot_live_without(prod: ProgramRun) -> None:
    protected = {r.type for r in prod.resources if r.protect}
    assert {RDS, BUCKET, "aws:rds/subnetGroup:SubnetGroup", "aws:ec2/vpc:Vpc"} <= protected
    assert named(prod, RANDOM_PASSWORD, "prod-password").protect, "the database's master password"
    assert named(prod, SECURITY_GROUP, "-db").protect
    assert all(subnet.protect for subnet in prod.of_type(SUBNET) if "private" in subnet.name)
    assert all(r.protect for r in artifact_store_children(prod)), "the bucket's own protections and name"


def test_prod_leaves_what_upgrades_replace_unprotected(prod: ProgramRun) -> None:
    # mlflowVersion and instanceType changes replace these: protect would refuse those updates.
    for type_token in (EC2, "aws:ec2/networkInterface:NetworkInterface", "aws:ec2/eipAssociation:EipAssociation"):
        assert not prod.one(type_token).protect
    assert not named(prod, SUBNET, "-public").protect


def test_dev_protects_nothing_so_destroy_takes_it_all(dev: ProgramRun) -> None:
    assert [r.name for r in dev.resources if r.protect] == []


def test_turning_protect_data_off_lifts_every_protect_so_the_readme_destroy_path_goes_through() -> None:
    # The README's path: `pulumi config set protectData false && pulumi up`, then destroy. The engine
    # records the protect flag each run registers, so this run leaves nothing protected in state.
    run = run_program("prod", {"protectData": "false"})
    assert [r.name for r in run.resources if r.protect] == []
    assert run.one(RDS).inputs["deletionProtection"] is False


def test_the_final_snapshot_is_named_for_this_database_and_exported(prod: ProgramRun) -> None:
    rds = prod.one(RDS)
    suffix = named(prod, RANDOM_ID, "-final-snapshot-suffix")
    assert suffix.urn in rds.property_dependencies["finalSnapshotIdentifier"]
    assert suffix.protect
    assert prod.outputs[Outputs.DB_FINAL_SNAPSHOT] == rds.inputs["finalSnapshotIdentifier"]
    assert Outputs.DB_FINAL_SNAPSHOT not in run_program("dev").outputs


def test_a_long_stack_name_keeps_the_whole_snapshot_suffix() -> None:
    name = final_snapshot_identifier("mlflow-aws", "team-" + "x" * 80, "1a2b3c4d")
    assert name.endswith("-final-1a2b3c4d") and len(name) <= 63 and name[0].isalpha() and "--" not in name


# --- lifecycle: config changes on a running stack ----------------------------------------------


def test_a_changed_vpc_cidr_is_refused_before_anything_is_created() -> None:
    with pytest.raises(ProgramFailed) as failure:
        run_program("prod", {"vpcCidr": "10.40.0.0/16"}, Account(deployed_vpc_cidr="10.30.0.0/16"))
    message = str(failure.value)
    assert message.startswith("vpcCidr: this stack's VPC is 10.30.0.0/16")
    assert "pulumi config set vpcCidr 10.30.0.0/16" in message
    assert cloud_resources(failure.value.resources) == []


def test_the_deployed_vpc_cidr_unchanged_goes_ahead() -> None:
    run = run_program("prod", {"vpcCidr": "10.30.0.0/16"}, Account(deployed_vpc_cidr="10.30.0.0/16"))
    assert run.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"] == "10.30.0.0/16"
    lookup = next(invoke for invoke in run.invokes if invoke.token == "aws:ec2/getVpcs:getVpcs")
    assert lookup.args["tags"] == {"Project": "mlflow-aws", "Stack": "prod", "Name": "prod-vpc"}


HOSTED = {"domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}


def test_a_hand_made_record_pointing_at_the_stacks_address_is_adopted() -> None:
    account = Account(stack_public_ips=[PUBLIC_IP], records=[Record("mlflow.example.com", "A", [PUBLIC_IP])])
    record = run_program("dev", HOSTED, account).one(A_RECORD)
    assert record.inputs["allowOverwrite"] is True
    assert record.inputs["records"] == [PUBLIC_IP]


@pytest.mark.parametrize("existing", [
    Record("mlflow.example.com", "A", ["198.51.100.7"]),
    Record("mlflow.example.com", "CNAME", ["lb.example.net"]),
    Record("mlflow.example.com", "A", [PUBLIC_IP], set_identifier="weighted-1"),
], ids=["another-address", "cname", "routing-policy"])
def test_a_record_the_stack_does_not_own_is_refused_before_anything_is_created(existing: Record) -> None:
    account = Account(stack_public_ips=[PUBLIC_IP], records=[existing, Record("other.example.com", "A", ["192.0.2.1"])])
    with pytest.raises(ProgramFailed) as failure:
        run_program("dev", HOSTED, account)
    message = str(failure.value)
    assert message.startswith(f"hostedZoneId: zone Z0123456789ABCDEFGHIJ already has a {existing.type} record")
    assert "pulumi config rm hostedZoneId" in message
    assert cloud_resources(failure.value.resources) == []


def test_other_names_in_the_zone_do_not_stop_the_record() -> None:
    account = Account(records=[Record("other.example.com", "A", ["192.0.2.1"])])
    assert run_program("dev", HOSTED, account).one(A_RECORD).inputs["name"] == "mlflow.example.com"


def test_the_host_subnet_is_in_a_zone_that_offers_the_instance_type() -> None:
    run = run_program("dev", {"instanceType": "t4g.small"}, Account(offered_zones={"t4g.small": "bc"}))
    public = named(run, SUBNET, "-public")
    assert public.inputs["availabilityZone"] == "eu-west-1b"
    assert public.delete_before_replace, "a new zone needs the old subnet (same range) gone first"
    private = [s.inputs["availabilityZone"] for s in run.of_type(SUBNET) if "private" in s.name]
    assert len(set(private)) == len(private) == 2
    offerings = next(i for i in run.invokes if i.token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings")
    assert offerings.args["filters"] == [{"name": "instance-type", "values": ["t4g.small"]}]


def test_an_instance_type_no_zone_offers_fails_naming_it_before_anything_is_created() -> None:
    with pytest.raises(ProgramFailed) as failure:
        run_program("dev", {"instanceType": "m7i.large"}, Account(offered_zones={"m7i.large": ""}))
    message = str(failure.value)
    assert message.startswith("instanceType: m7i.large is not offered in any availability zone")
    assert "eu-west-1a, eu-west-1b, eu-west-1c" in message
    assert cloud_resources(failure.value.resources) == []


# --- lifecycle: the admin's name and password ---------------------------------------------------


def restart_command(run: ProgramRun) -> str:
    association = run.one(ASSOCIATION)
    assert association.inputs["name"] == "AWS-RunShellScript"
    assert association.inputs["targets"] == [{"key": "InstanceIds", "values": [run.outputs[Outputs.INSTANCE_ID]]}]
    command: str = association.inputs["parameters"]["commands"]
    return command


def test_the_host_restarts_mlflow_when_asked_by_the_association(dev: ProgramRun) -> None:
    command = restart_command(dev)
    assert dev.one(ASSOCIATION).inputs["associationName"] == "dev-mlflow-admin-restart"  # the README names it
    assert "if systemctl is-active --quiet mlflow.service; then systemctl restart mlflow.service; fi" in command
    assert "admin-username=v1 admin-password=v1" in command
    assert not [secret for secret in dev.generated_secrets if secret in command]


def test_renaming_the_admin_reruns_the_restart_on_the_next_up() -> None:
    account = Account()
    first = restart_command(run_program("dev", account=account))
    renamed = run_program("dev", {"adminUsername": "mlops"}, account)
    assert renamed.outputs[Outputs.ADMIN_USERNAME] == "mlops"
    assert restart_command(renamed) != first
    assert "admin-username=v2 admin-password=v1" in restart_command(renamed)
    assert restart_command(run_program("dev", {"adminUsername": "mlops"}, account)) == restart_command(renamed)


def test_rotating_the_admin_password_reruns_the_restart_on_the_next_up() -> None:
    account = Account()
    first = restart_command(run_program("dev", account=account))
    account.rotated_passwords.add("dev-admin-password")
    rotated = run_program("dev", account=account)
    assert restart_command(rotated) != first
    assert "admin-username=v1 admin-password=v2" in restart_command(rotated)
    assert not [secret for secret in rotated.generated_secrets if secret in restart_command(rotated)]


def test_the_host_may_read_the_admin_names_history_and_nothing_elses(dev: ProgramRun) -> None:
    statements = [s for s in host_policy(dev)["Statement"] if "ssm:GetParameterHistory" in s["Action"]]
    assert statements == [{
        "Sid": "ReadAdminNameHistory", "Effect": "Allow", "Action": ["ssm:GetParameterHistory"],
        "Resource": "arn:aws:ssm:eu-west-1:123456789012:parameter/mlflow-aws/dev/mlflow/admin-username",
    }]


# --- the Pulumi engine -------------------------------------------------------------------------


def test_the_program_requires_an_engine_that_honours_replacement_trigger(dev: ProgramRun) -> None:
    assert dev.required_engine_ranges == [">=3.208.0"]


def test_an_older_pulumi_cli_stops_the_program_before_any_resource() -> None:
    with pytest.raises(ProgramFailed) as failure:
        run_program("dev", account=Account(pulumi_cli_version="3.207.0"))
    assert "3.207.0 does not satisfy the version range '>=3.208.0'" in str(failure.value)
    assert failure.value.resources == []


def test_the_deploy_scripts_accept_the_same_oldest_cli_as_the_program() -> None:
    setup = (PROJECT_DIR / "scripts" / "_setup.sh").read_text()
    assert 'PULUMI_MIN_VERSION="3.208.0"' in setup
