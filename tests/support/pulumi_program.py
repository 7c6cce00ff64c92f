"""Run the real Pulumi program (`__main__.py`) under `pulumi.runtime.set_mocks`, and record it.

Each run gets a fresh event loop and fresh Pulumi settings (pattern: pulumi/examples
`testing-unit-py`). The config comes from `Pulumi.<stack>.yaml` plus the project defaults, as the
Pulumi CLI would hand it over (every value a string, lists as JSON), with optional overrides.

The mock monitor records, for every resource the program registers, its type, name, inputs (as
the provider would receive them: camelCase keys), parent and the URNs it depends on, so tests can
assert properties of the resources and of the dependency graph; every invoke is answered by
`ProgramMocks.call` and recorded too. An `Account` stands for what AWS already holds (zones offering
each instance type, a deployed VPC, Elastic IPs, Route 53 records, SSM parameter versions); passing one
`Account` to several runs plays successive `pulumi up`s against the same account.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format  # type: ignore[import-untyped]
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings

import config

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[2]
ACCOUNT_ID = "123456789012"
PUBLIC_IP = "203.0.113.10"
AMI_ID = "ami-0123456789abcdef0"
INSTANCE_ID = "i-0123456789abcdef0"
RECORDED_IMAGE = "pulumi-python:dynamic/mlflow-aws:RecordedImage"
HOST_LAUNCH = "pulumi-python:dynamic/mlflow-aws:HostLaunch"


@dataclass
class RegisteredResource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    parent: str
    provider: str = ""
    retain_on_delete: bool = False
    protect: bool = False
    delete_before_replace: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    replacement_trigger: Any = None
    aliases: list[str] = field(default_factory=list)  # the URNs this resource was known by before
    dependencies: set[str] = field(default_factory=set)
    property_dependencies: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class Invoke:
    token: str
    args: dict[str, Any]


@dataclass
class ProgramRun:
    stack: str
    resources: list[RegisteredResource]
    invokes: list[Invoke]
    required_engine_ranges: list[str]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    generated_secrets: list[str]  # every RandomPassword result and IAM secret key the mocks handed out

    def of_type(self, type_token: str) -> list[RegisteredResource]:
        return [resource for resource in self.resources if resource.type == type_token]

    def one(self, type_token: str) -> RegisteredResource:
        found = self.of_type(type_token)
        assert len(found) == 1, f"expected one {type_token}, found {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> RegisteredResource:
        return next(resource for resource in self.resources if resource.urn == urn)

    def depends_on(self, resource: RegisteredResource, other: RegisteredResource) -> bool:
        """Whether `resource` waits, directly or transitively, for `other`."""
        seen: set[str] = set()
        pending = [resource.urn]
        while pending:
            urn = pending.pop()
            if urn in seen:
                continue
            seen.add(urn)
            current = next((r for r in self.resources if r.urn == urn), None)
            if current is None:
                continue
            edges = set(current.dependencies)
            for deps in current.property_dependencies.values():
                edges |= deps
            if other.urn in edges:
                return True
            pending.extend(edges)
        return False


class ProgramFailed(Exception):
    """The program raised; `resources` holds what it had registered by then."""

    def __init__(self, cause: BaseException, resources: list[RegisteredResource]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.resources = resources


@dataclass
class Record:
    name: str
    type: str
    values: list[str]
    set_identifier: str = ""
    alias: str = ""  # an alias record's target DNS name (then no values)


@dataclass
class Account:
    """What the AWS account holds before a run; SSM parameters keep their versions from run to run."""

    # Instance type -> the zone letters offering it; a type not listed is offered in every zone.
    offered_zones: dict[str, str] = field(default_factory=dict)
    deployed_vpc_cidr: str | None = None
    stack_public_ips: list[str] = field(default_factory=list)
    stack_load_balancer_dns_names: list[str] = field(default_factory=list)  # a fleet's, found by its tags
    records: list[Record] = field(default_factory=list)
    pulumi_cli_version: str = "3.272.0"  # the engine the program runs under
    # RandomPassword names whose next result is a new one, as after `pulumi up --replace <its urn>`.
    rotated_passwords: set[str] = field(default_factory=set)
    parameters: dict[str, tuple[str, int]] = field(default_factory=dict)  # SSM name -> (value, version)

    def put_parameter(self, name: str, value: str) -> int:
        """What SSM does on PutParameter with Overwrite: a new value gets the next version."""
        old_value, version = self.parameters.get(name, (None, 0))
        if old_value != value:
            version += 1
        self.parameters[name] = (value, version)
        return version


class ProgramMocks(pulumi.runtime.Mocks):
    """Plausible provider answers: ids and the computed attributes the program reads."""

    def __init__(self, region: str, account: Account | None = None) -> None:
        self.region = region
        self.account = account or Account()
        self.invokes: list[Invoke] = []
        self.generated_secrets: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        name = args.name
        computed: dict[str, Any] = {}
        arn = f"arn:aws:mock:{self.region}:{ACCOUNT_ID}:{name}"
        if args.typ == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket", name)
            computed = {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "id": bucket}
            return bucket, {**inputs, **computed}
        if args.typ == "random:index/randomId:RandomId":
            computed = {"hex": "1a2b3c4d", "b64Url": "Gis8TQ", "dec": "439041101"}
        elif args.typ == "random:index/randomPassword:RandomPassword":
            length = int(inputs.get("length", 16))
            stem = ("R0tated" if name in self.account.rotated_passwords else "S3cr3t") + name.replace("-", "")
            computed = {"result": stem[:length].ljust(length, "x")}
            self.generated_secrets.append(computed["result"])
        elif args.typ == "aws:ec2/eip:Eip":
            computed = {"publicIp": PUBLIC_IP, "allocationId": "eipalloc-0abc", "arn": arn}
        elif args.typ == "aws:rds/instance:Instance":
            address = f"{inputs.get('identifier', name)}.abcdefgh.{self.region}.rds.amazonaws.com"
            computed = {"address": address, "endpoint": f"{address}:5432", "port": 5432, "arn": arn}
        elif args.typ in ("aws:iam/instanceProfile:InstanceProfile", "aws:iam/role:Role", "aws:iam/user:User"):
            computed = {"name": f"{name}-abc123", "arn": arn}
        elif args.typ == "aws:iam/accessKey:AccessKey":
            computed = {"secret": "mock/secret+access+key", "id": "AKIAMOCKACCESSKEY"}
            self.generated_secrets.append(computed["secret"])
            return "AKIAMOCKACCESSKEY", {**inputs, **computed}
        elif args.typ == "aws:rds/subnetGroup:SubnetGroup":
            computed = {"name": f"{name}-abc123", "arn": arn}
        elif args.typ == "aws:lb/loadBalancer:LoadBalancer":
            computed = {"arn": arn, "arnSuffix": f"app/{name}/0123456789abcdef",
                        "dnsName": f"{name}-1234567890.{self.region}.elb.amazonaws.com", "zoneId": "Z32O12XQLNTSW2"}
        elif args.typ == "aws:lb/targetGroup:TargetGroup":
            computed = {"arn": arn, "arnSuffix": f"targetgroup/{name}/0123456789abcdef"}
        elif args.typ == "aws:acm/certificate:Certificate":
            domain = inputs.get("domainName", "")
            computed = {"arn": arn, "domainValidationOptions": [{
                "domainName": domain, "resourceRecordName": f"_0123abcd.{domain}.",
                "resourceRecordType": "CNAME", "resourceRecordValue": "_4567efgh.acm-validations.aws.",
            }]}
        elif args.typ == "aws:route53/record:Record":
            computed = {"fqdn": str(inputs.get("name", "")).rstrip(".")}
        elif args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            computed = {"arn": arn, "latestVersion": 1}
            return "lt-0123456789abcdef0", {**inputs, **computed}
        elif args.typ == "aws:autoscaling/group:Group":
            computed = {"arn": arn, "name": f"{name}-abc123"}
        elif args.typ == "aws:ec2/instance:Instance":
            computed = {"arn": arn, "publicIp": PUBLIC_IP}
            return INSTANCE_ID, {**inputs, **computed}
        elif args.typ == RECORDED_IMAGE:
            # The newest image of the architecture, as the provider's create would find it (recorded once).
            computed = {"image_id": AMI_ID, "image_name": inputs["name_pattern"].replace("*", "20261120")}
            return AMI_ID, {**inputs, **computed}
        elif args.typ == HOST_LAUNCH:
            computed = {"instance_id": INSTANCE_ID, "private_ip": "10.20.0.10", "report": "healthy"}
            return INSTANCE_ID, {**inputs, **computed}
        elif args.typ == "aws:ssm/parameter:Parameter":
            computed = {"arn": arn, "version": self.account.put_parameter(inputs["name"], str(inputs["value"]))}
        else:
            computed = {"arn": arn}
        return f"{name}-id", {**inputs, **computed}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.invokes.append(Invoke(args.token, dict(args.args)))
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{letter}" for letter in "abc"]
            return {"names": names, "zoneIds": [f"euw1-az{i}" for i in (1, 2, 3)], "id": self.region}, []
        if args.token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            [wanted] = [value for f in args.args["filters"] if f["name"] == "instance-type" for value in f["values"]]
            assert args.args["locationType"] == "availability-zone"
            letters = self.account.offered_zones.get(wanted, "abc")
            locations = [f"{self.region}{letter}" for letter in letters]
            return {"instanceTypes": [wanted] * len(locations), "locations": locations,
                    "locationTypes": ["availability-zone"] * len(locations), "id": self.region}, []
        if args.token == "aws:ec2/getVpcs:getVpcs":
            found = self.account.deployed_vpc_cidr is not None and args.args["tags"].get("Name", "").endswith("-vpc")
            return {"ids": ["vpc-0deployed"] if found else [], "id": self.region}, []
        if args.token == "aws:ec2/getVpc:getVpc":
            assert args.args["id"] == "vpc-0deployed"
            return {"id": "vpc-0deployed", "cidrBlock": self.account.deployed_vpc_cidr}, []
        if args.token == "aws:ec2/getEips:getEips":
            ips = self.account.stack_public_ips
            return {"publicIps": ips, "allocationIds": [f"eipalloc-{i}" for i in range(len(ips))], "id": "eips"}, []
        if args.token == "aws:route53/getRecords:getRecords":
            sets = [
                {"name": f"{record.name}.", "type": record.type, "setIdentifier": record.set_identifier,
                 "resourceRecords": [{"value": value} for value in record.values], "ttl": 300,
                 "aliasTarget": {"dnsName": f"{record.alias}." if record.alias else "", "evaluateTargetHealth": True,
                                 "hostedZoneId": "Z32O12XQLNTSW2" if record.alias else ""}}
                for record in self.account.records
            ]
            return {"resourceRecordSets": sets, "zoneId": args.args["zoneId"], "id": args.args["zoneId"]}, []
        if args.token == "aws:resourcegroupstaggingapi/getResources:getResources":
            assert args.args["resourceTypeFilters"] == ["elasticloadbalancing:loadbalancer"]
            mappings = [{"resourceArn": f"arn:aws:elasticloadbalancing:{self.region}:{ACCOUNT_ID}:loadbalancer/app/{i}",
                         "tags": {}, "complianceDetails": []}
                        for i in range(len(self.account.stack_load_balancer_dns_names))]
            return {"resourceTagMappingLists": mappings, "id": self.region}, []
        if args.token == "aws:lb/getLoadBalancer:getLoadBalancer":
            index = int(args.args["arn"].rsplit("/", 1)[1])
            return {"arn": args.args["arn"], "dnsName": self.account.stack_load_balancer_dns_names[index]}, []
        if args.token == "aws:ec2/getAmi:getAmi":
            return {"id": AMI_ID, "architecture": "x86_64", "name": "ubuntu-noble-24.04"}, []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT_ID, "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/ci", "userId": "AIDA"}, []
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}, []
        raise AssertionError(f"the program made an invoke the mocks do not know: {args.token}")


class VersionedEngine(pulumi_mocks.MockEngine):
    """The SDK's mock engine, as a Pulumi CLI of `version`: it answers RequirePulumiVersion like the real one
    for ranges of the form >=X.Y.Z, and records every range the program asked for."""

    def __init__(self, version: str) -> None:
        super().__init__(None)
        self.version = version
        self.required_ranges: list[str] = []

    def RequirePulumiVersion(self, request: Any) -> None:
        wanted = request.pulumi_version_range
        self.required_ranges.append(wanted)
        assert wanted.startswith(">="), f"the mock engine knows only >= ranges, not {wanted!r}"

        def key(version: str) -> tuple[int, ...]:
            return tuple(int(part) for part in version.split("."))

        if key(self.version) < key(wanted[2:]):
            raise RuntimeError(f"Pulumi CLI version {self.version} does not satisfy the version range {wanted!r}")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping each registration's parent and dependencies."""

    def __init__(self, mocks: ProgramMocks) -> None:
        super().__init__(mocks)
        self.registered: list[RegisteredResource] = []

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type != "pulumi:pulumi:Stack":
            self.registered.append(
                RegisteredResource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    inputs=rpc.deserialize_properties(request.object),
                    parent=request.parent,
                    provider=request.provider,
                    retain_on_delete=bool(request.retainOnDelete),
                    protect=request.HasField("protect") and bool(request.protect),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    ignore_changes=list(request.ignoreChanges),
                    replacement_trigger=(
                        rpc.deserialize_property(json_format.MessageToDict(request.replacement_trigger))
                        if request.HasField("replacement_trigger") else None
                    ),
                    aliases=[*request.aliasURNs, *(alias.urn for alias in request.aliases if alias.urn)],
                    dependencies=set(request.dependencies),
                    property_dependencies={
                        key: set(value.urns) for key, value in request.propertyDependencies.items()
                    },
                )
            )
        return response


def stack_config(stack: str, overrides: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The config the Pulumi CLI would pass: project defaults, then Pulumi.<stack>.yaml, as strings."""
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    values: dict[str, Any] = {
        f"{config.PROJECT}:{key}": spec.get("default") for key, spec in project["config"].items()
    }
    stack_file = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())
    values.update(stack_file.get("config") or {})
    for key, value in (overrides or {}).items():
        values[key if ":" in key else f"{config.PROJECT}:{key}"] = value

    def as_cli_string(value: Any) -> str:
        if isinstance(value, str):
            return value
        return json.dumps(value)

    return {key: as_cli_string(value) for key, value in values.items() if value is not None}


def run_program(
    stack: str, overrides: Mapping[str, Any] | None = None, account: Account | None = None,
    secrets: Mapping[str, str] | None = None,
) -> ProgramRun:
    """Run __main__.py for `stack` under mocks against `account` (an empty one by default); resolve every
    stack output and note which are secret. `secrets`: config values set as `pulumi config set --secret`."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        all_config = stack_config(stack, {**(overrides or {}), **(secrets or {})})
        secret_keys = [key if ":" in key else f"{config.PROJECT}:{key}" for key in (secrets or {})]
        region = all_config.get("aws:region", "eu-west-1")
        mocks = ProgramMocks(region, account)
        monitor = RecordingMonitor(mocks)
        settings.set_root_resource(None)  # type: ignore[arg-type]
        pulumi.runtime.set_mocks(mocks, project=config.PROJECT, stack=stack, preview=False, monitor=monitor)
        engine = VersionedEngine(mocks.account.pulumi_cli_version)
        settings.SETTINGS.engine = engine
        pulumi.runtime.set_all_config(all_config, secret_keys=secret_keys)
        try:
            runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")
        except Exception as error:
            # Let the registrations already under way finish, so no coroutine is left unawaited.
            with contextlib.suppress(Exception):
                loop.run_until_complete(pulumi.runtime.stack.wait_for_rpcs())
            raise ProgramFailed(error, list(monitor.registered)) from error
        root = settings.get_root_resource()
        assert root is not None
        exported: dict[str, Any] = dict(root.outputs)  # type: ignore[attr-defined]

        async def resolve() -> tuple[dict[str, Any], set[str]]:
            values: dict[str, Any] = {}
            secret: set[str] = set()
            for key, value in exported.items():
                output = pulumi.Output.from_input(value)
                values[key] = await output.future()
                if await output.is_secret():
                    secret.add(key)
            await pulumi.runtime.stack.wait_for_rpcs()
            return values, secret

        values, secret = loop.run_until_complete(resolve())
        return ProgramRun(
            stack, list(monitor.registered), list(mocks.invokes), list(engine.required_ranges), values, secret,
            list(mocks.generated_secrets),
        )
    finally:
        pulumi.runtime.set_all_config({}, secret_keys=[])
        settings.set_root_resource(None)  # type: ignore[arg-type]
        loop.close()
        asyncio.set_event_loop(None)
