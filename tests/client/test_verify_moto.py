"""`mlflow-aws verify` against moto: a locked-down stack passes every check; each weakness fails exactly its check."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest

from client import cli
from client.verify import runner
from client.verify.facts import Names, collect
from components.private_bucket import tls_only_policy
from naming import Outputs
from tests.client import moto_stack
from tests.support import servers

REGION = "eu-west-1"
ALL_CHECKS = [check.name for check in runner.CHECKS]


class HealthHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            status, body = 200, b"OK"
        elif self.path == "/broken/health":
            status, body = 503, b"upstream down"
        else:
            status, body = 404, b"not found"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        # moto's EC2 backend otherwise loads thousands of sample AMIs after every reset (seconds each).
        patch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        with servers.moto_endpoint() as endpoint:
            yield endpoint


@pytest.fixture(scope="module")
def health_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HealthHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """boto3 pointed at a freshly reset moto, with fake credentials and no other source of any."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    return moto_endpoint


@pytest.fixture
def stack(aws: str, health_server: str) -> dict[str, Any]:
    return moto_stack.build_locked_down_stack(REGION, health_server)


# Parsing botocore's service models takes most of a second per session; share the parsed models.
SERVICE_MODELS = botocore.loaders.create_loader()


def fresh_session() -> boto3.session.Session:
    core = botocore.session.get_session()
    core.register_component("data_loader", SERVICE_MODELS)
    return boto3.session.Session(botocore_session=core, region_name=REGION)


def check_results(outputs: dict[str, Any]) -> list[runner.Result]:
    return runner.run_checks(collect(runner.names_from(outputs, None), fresh_session()))


def failing_checks(outputs: dict[str, Any]) -> set[str]:
    return {result.name for result in check_results(outputs) if not result.outcome.passed}


def test_locked_down_stack_passes_every_check(stack: dict[str, Any]) -> None:
    results = check_results(stack)
    assert [result.name for result in results] == ALL_CHECKS
    assert [(result.name, result.outcome.detail) for result in results if not result.outcome.passed] == []


def test_verify_command_prints_the_table_and_exits_zero(
    stack: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(stack))
    assert cli.main(["verify", "--outputs", str(outputs_file)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["CHECK", "RESULT", "DETAIL"]
    rows = table[1:-1]
    assert len(rows) == len(ALL_CHECKS)
    for name, row in zip(ALL_CHECKS, rows, strict=True):
        assert row.startswith(name) and row[len(name):].split()[0] == "pass"
    assert table[-1] == f"{len(ALL_CHECKS)} checks: {len(ALL_CHECKS)} passed, 0 failed"


# Each weakening: a change to one resource, and the one check it must fail.


def region_clients() -> tuple[Any, Any, Any]:
    return (
        boto3.client("s3", region_name=REGION),
        boto3.client("ec2", region_name=REGION),
        boto3.client("rds", region_name=REGION),
    )


WEB_SG, DB_SG = Outputs.WEB_SECURITY_GROUP_ID, Outputs.DB_SECURITY_GROUP_ID


def public_bucket(outputs: dict[str, Any]) -> None:
    s3, _, _ = region_clients()
    s3.put_public_access_block(
        Bucket=outputs[Outputs.ARTIFACT_BUCKET],
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": False,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": True,
        },
    )


def no_public_access_block(outputs: dict[str, Any]) -> None:
    region_clients()[0].delete_public_access_block(Bucket=outputs[Outputs.ARTIFACT_BUCKET])


def versioning_suspended(outputs: dict[str, Any]) -> None:
    region_clients()[0].put_bucket_versioning(
        Bucket=outputs[Outputs.ARTIFACT_BUCKET], VersioningConfiguration={"Status": "Suspended"}
    )


def no_default_encryption(outputs: dict[str, Any]) -> None:
    region_clients()[0].delete_bucket_encryption(Bucket=outputs[Outputs.ARTIFACT_BUCKET])


def no_bucket_policy(outputs: dict[str, Any]) -> None:
    region_clients()[0].delete_bucket_policy(Bucket=outputs[Outputs.ARTIFACT_BUCKET])


def tls_policy_on_bucket_only(outputs: dict[str, Any]) -> None:
    bucket = outputs[Outputs.ARTIFACT_BUCKET]
    policy = json.loads(tls_only_policy(f"arn:aws:s3:::{bucket}"))
    policy["Statement"][0]["Resource"] = [f"arn:aws:s3:::{bucket}"]  # objects no longer covered
    region_clients()[0].put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def public_database(outputs: dict[str, Any]) -> None:
    region_clients()[2].modify_db_instance(
        DBInstanceIdentifier=outputs[Outputs.DB_INSTANCE_ID], PubliclyAccessible=True, ApplyImmediately=True
    )


def unencrypted_database(outputs: dict[str, Any]) -> None:
    # Encryption cannot be switched off in place: the weak database is a new one with the same name.
    rds = region_clients()[2]
    rds.delete_db_instance(DBInstanceIdentifier=outputs[Outputs.DB_INSTANCE_ID], SkipFinalSnapshot=True)
    moto_stack.create_database(rds, outputs[Outputs.DB_SECURITY_GROUP_ID], encrypted=False)


def no_backups(outputs: dict[str, Any]) -> None:
    region_clients()[2].modify_db_instance(
        DBInstanceIdentifier=outputs[Outputs.DB_INSTANCE_ID], BackupRetentionPeriod=0, ApplyImmediately=True
    )


def open_ingress(output: str, protocol: str, port: int, cidr: str) -> Callable[[dict[str, Any]], None]:
    def weaken(outputs: dict[str, Any]) -> None:
        ranges = {"Ipv6Ranges": [{"CidrIpv6": cidr}]} if ":" in cidr else {"IpRanges": [{"CidrIp": cidr}]}
        permission: dict[str, Any] = {"IpProtocol": protocol, **ranges}
        if protocol != "-1":
            permission.update(FromPort=port, ToPort=port)
        region_clients()[1].authorize_security_group_ingress(GroupId=outputs[output], IpPermissions=[permission])

    return weaken


def open_group(outputs: dict[str, Any], port: int) -> str:
    """A new group in the stack's VPC that admits the world on `port`."""
    ec2 = region_clients()[1]
    (web,) = ec2.describe_security_groups(GroupIds=[outputs[WEB_SG]])["SecurityGroups"]
    group = ec2.create_security_group(GroupName=f"hand-made-{port}", Description="added by hand", VpcId=web["VpcId"])
    ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    return str(group["GroupId"])


def prefix_list(*cidrs: str) -> str:
    ec2 = region_clients()[1]
    created = ec2.create_managed_prefix_list(
        PrefixListName=f"hand-made-{len(cidrs)}-{cidrs[0].replace('/', '-').replace(':', '-')}",
        AddressFamily="IPv6" if ":" in cidrs[0] else "IPv4", MaxEntries=5,
        Entries=[{"Cidr": cidr} for cidr in cidrs],
    )
    return str(created["PrefixList"]["PrefixListId"])


def ingress_from_prefix_list(output: str, port: int, *cidrs: str) -> Callable[[dict[str, Any]], None]:
    def weaken(outputs: dict[str, Any]) -> None:
        region_clients()[1].authorize_security_group_ingress(GroupId=outputs[output], IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
             "PrefixListIds": [{"PrefixListId": prefix_list(*cidrs)}]}])

    return weaken


def host_given_an_open_group(outputs: dict[str, Any]) -> None:
    region_clients()[1].modify_instance_attribute(
        InstanceId=outputs[Outputs.INSTANCE_ID], Groups=[outputs[WEB_SG], open_group(outputs, 22)]
    )


def database_given_an_open_group(outputs: dict[str, Any]) -> None:
    region_clients()[2].modify_db_instance(
        DBInstanceIdentifier=outputs[Outputs.DB_INSTANCE_ID],
        VpcSecurityGroupIds=[outputs[DB_SG], open_group(outputs, 5432)], ApplyImmediately=True,
    )


def imds_v1_allowed(outputs: dict[str, Any]) -> None:
    region_clients()[1].modify_instance_metadata_options(
        InstanceId=outputs[Outputs.INSTANCE_ID], HttpTokens="optional", HttpEndpoint="enabled"
    )


def no_instance_profile(outputs: dict[str, Any]) -> None:
    ec2 = region_clients()[1]
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [outputs[Outputs.INSTANCE_ID]]}]
    )["IamInstanceProfileAssociations"]
    for association in associations:
        ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])


def elastic_ip_detached(outputs: dict[str, Any]) -> None:
    ec2 = region_clients()[1]
    (address,) = ec2.describe_addresses(PublicIps=[outputs[Outputs.PUBLIC_IP]])["Addresses"]
    ec2.disassociate_address(AssociationId=address["AssociationId"])


def unhealthy_server(outputs: dict[str, Any]) -> None:
    outputs[Outputs.TRACKING_URI] += "/broken"


def unreachable_server(outputs: dict[str, Any]) -> None:
    outputs[Outputs.TRACKING_URI] = "http://127.0.0.1:1"


WEAKENINGS = [
    pytest.param(public_bucket, "bucket: public access blocked", id="public-bucket"),
    pytest.param(no_public_access_block, "bucket: public access blocked", id="no-public-access-block"),
    pytest.param(versioning_suspended, "bucket: versioning", id="versioning-suspended"),
    pytest.param(no_default_encryption, "bucket: default encryption", id="no-bucket-encryption"),
    pytest.param(no_bucket_policy, "bucket: TLS-only policy", id="no-bucket-policy"),
    pytest.param(tls_policy_on_bucket_only, "bucket: TLS-only policy", id="tls-policy-misses-objects"),
    pytest.param(public_database, "database: not public", id="public-db"),
    pytest.param(unencrypted_database, "database: encrypted", id="unencrypted-db"),
    pytest.param(no_backups, "database: backups", id="no-db-backups"),
    pytest.param(open_ingress(DB_SG, "tcp", 5432, "0.0.0.0/0"), "db security groups: no 22/5000/5432 from world",
                 id="db-sg-5432-open"),
    pytest.param(open_ingress(WEB_SG, "tcp", 22, "0.0.0.0/0"), "host security groups: no 22/5000/5432 from world",
                 id="web-sg-22-open"),
    pytest.param(open_ingress(WEB_SG, "tcp", 5000, "::/0"), "host security groups: no 22/5000/5432 from world",
                 id="web-sg-5000-open-ipv6"),
    pytest.param(open_ingress(WEB_SG, "-1", 0, "0.0.0.0/0"), "host security groups: no 22/5000/5432 from world",
                 id="web-sg-all-traffic-open"),
    pytest.param(ingress_from_prefix_list(WEB_SG, 22, "198.51.100.0/24", "0.0.0.0/0"),
                 "host security groups: no 22/5000/5432 from world", id="web-sg-22-open-through-a-prefix-list"),
    pytest.param(ingress_from_prefix_list(DB_SG, 5432, "0.0.0.0/0"),
                 "db security groups: no 22/5000/5432 from world", id="db-sg-5432-open-through-a-prefix-list"),
    pytest.param(host_given_an_open_group, "host security groups: no 22/5000/5432 from world",
                 id="host-given-a-hand-made-open-group"),
    pytest.param(database_given_an_open_group, "db security groups: no 22/5000/5432 from world",
                 id="db-given-a-hand-made-open-group"),
    pytest.param(imds_v1_allowed, "instance: IMDSv2 required", id="imdsv1"),
    pytest.param(no_instance_profile, "instance: instance profile", id="no-instance-profile"),
    pytest.param(elastic_ip_detached, "instance: Elastic IP attached", id="eip-detached"),
    pytest.param(unhealthy_server, "server: /health over the tracking URI", id="health-503"),
    pytest.param(unreachable_server, "server: /health over the tracking URI", id="server-unreachable"),
]


@pytest.mark.parametrize(("weaken", "check"), WEAKENINGS)
def test_each_weakened_resource_fails_exactly_its_check(
    stack: dict[str, Any], weaken: Callable[[dict[str, Any]], None], check: str
) -> None:
    assert check in ALL_CHECKS
    weaken(stack)
    assert failing_checks(stack) == {check}


def test_ssh_open_to_an_office_range_is_not_a_failure(stack: dict[str, Any]) -> None:
    open_ingress(Outputs.WEB_SECURITY_GROUP_ID, "tcp", 22, "203.0.113.0/24")(stack)
    assert failing_checks(stack) == set()


def test_ssh_from_a_prefix_list_of_office_ranges_is_not_a_failure(stack: dict[str, Any]) -> None:
    ingress_from_prefix_list(WEB_SG, 22, "198.51.100.0/24", "203.0.113.0/24")(stack)
    results = {result.name: result.outcome for result in check_results(stack)}
    assert all(outcome.passed for outcome in results.values()), results


def test_a_world_entry_of_a_prefix_list_is_named_in_the_failure(stack: dict[str, Any]) -> None:
    ingress_from_prefix_list(WEB_SG, 22, "0.0.0.0/0")(stack)
    outcome = next(r.outcome for r in check_results(stack) if r.name.startswith("host security groups"))
    assert "22 from 0.0.0.0/0 (prefix list pl-" in outcome.detail


def test_weakened_stack_makes_verify_exit_non_zero_and_mark_the_row(
    stack: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public_database(stack)
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(stack))
    assert cli.main(["verify", "--outputs", str(outputs_file)]) == 1
    rows = capsys.readouterr().out.splitlines()
    failing = [row for row in rows if "FAIL" in row.split()]
    assert len(failing) == 1 and failing[0].startswith("database: not public")


def test_resources_missing_from_the_account_fail_with_the_reason(stack: dict[str, Any]) -> None:
    gone = {**stack, Outputs.DB_INSTANCE_ID: "no-such-db"}
    results = check_results(gone)
    failing = {result.name: result.outcome.detail for result in results if not result.outcome.passed}
    assert set(failing) == {"database: not public", "database: encrypted", "database: backups"}
    assert all("DBInstanceNotFound" in detail for detail in failing.values())


def test_region_option_overrides_the_outputs_region(stack: dict[str, Any]) -> None:
    names = runner.names_from({**stack, Outputs.REGION: "us-east-1"}, REGION)
    assert names.region == REGION
    assert isinstance(names, Names)
    assert failing_checks({**stack, Outputs.REGION: REGION}) == set()


def test_missing_output_is_named_and_nothing_is_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps({Outputs.TRACKING_URI: "https://x.sslip.io", Outputs.REGION: REGION}))
    assert cli.main(["verify", "--outputs", str(outputs_file)]) == 2
    captured = capsys.readouterr()
    assert "artifact_bucket" in captured.err and captured.out == ""


def test_missing_aws_credentials_give_one_clear_line(
    stack: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(stack))
    assert cli.main(["verify", "--outputs", str(outputs_file)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no AWS credentials" in error
