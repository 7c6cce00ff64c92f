"""moto as the loopback and boot tests run it (tests/support/moto_process.py, moto_authorization.py):
authorization on, the host's role carrying the policy the program renders. What the role may and may not
do there is what AWS would allow it, for the calls the host makes."""

from __future__ import annotations

import datetime
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

import naming
from tests.support import host_role
from tests.support.host_role import RoleCredentials
from tests.support.loopback import MotoServer, loopback_settings

pytestmark = pytest.mark.host

SETTINGS = loopback_settings(tls="letsencrypt", monitoring=True)
OTHER_BUCKET = "mlflow-aws-other-stack-artifacts"
OTHER_PARAMETER = "/mlflow-aws/other-stack/db/password"
OBJECT = "1/0123abcd/artifacts/notes.txt"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    try:
        s3 = server.client("s3")
        for bucket in (SETTINGS.artifact_bucket, OTHER_BUCKET):
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=OBJECT, Body=b"artifact")
        ssm = server.client("ssm")
        for name in (naming.parameter_name(SETTINGS.ssm_prefix, naming.DB_PASSWORD), OTHER_PARAMETER):
            ssm.put_parameter(Name=name, Value="a-secret-value", Type="SecureString")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def role(moto: MotoServer) -> RoleCredentials:
    return moto.start_host_role(SETTINGS)


def as_host(moto: MotoServer, role: RoleCredentials, service: str) -> Any:
    return boto3.client(service, region_name=SETTINGS.region, endpoint_url=moto.endpoint,  # type: ignore[call-overload]
                        aws_access_key_id=role.access_key_id, aws_secret_access_key=role.secret_access_key,
                        aws_session_token=role.session_token)


def error_code(call: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        call()
    code: str = refused.value.response["Error"]["Code"]
    return code


def fetch(url: str, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, method="PUT" if data is not None else "GET")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_host_role_reads_its_stacks_parameters_and_no_other(moto, role):
    ssm = as_host(moto, role, "ssm")
    name = naming.parameter_name(SETTINGS.ssm_prefix, naming.DB_PASSWORD)
    found = ssm.get_parameters(Names=[name], WithDecryption=True)["Parameters"]
    assert [parameter["Value"] for parameter in found] == ["a-secret-value"]
    assert error_code(lambda: ssm.get_parameters(Names=[OTHER_PARAMETER], WithDecryption=True)) == (
        "AccessDeniedException")
    # One name outside the stack refuses the whole call, as on AWS.
    assert error_code(lambda: ssm.get_parameters(Names=[name, OTHER_PARAMETER])) == "AccessDeniedException"


def test_a_refusal_names_the_role_the_action_and_the_parameter(moto, role):
    ssm = as_host(moto, role, "ssm")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        ssm.get_parameter(Name=OTHER_PARAMETER)
    message = refused.value.response["Error"]["Message"]
    assert "assumed-role/mlflow-aws-host/" in message
    assert f"ssm:GetParameter on arn:aws:ssm:us-east-1:123456789012:parameter{OTHER_PARAMETER}" in message


def test_the_host_role_puts_metrics_in_its_stacks_namespace_and_no_other(moto, role):
    cloudwatch = as_host(moto, role, "cloudwatch")
    namespace = naming.metrics_namespace(SETTINGS.project, SETTINGS.stack)
    datum = [{"MetricName": "Probe", "Value": 1.0}]
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=datum)
    listed = moto.client("cloudwatch", SETTINGS.region).list_metrics(Namespace=namespace)["Metrics"]
    assert [metric["MetricName"] for metric in listed] == ["Probe"]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        cloudwatch.put_metric_data(Namespace="mlflow-aws/other-stack", MetricData=datum)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert ("no identity-based policy allows cloudwatch:PutMetricData on * with "
            "cloudwatch:namespace=mlflow-aws/other-stack") in refused.value.response["Error"]["Message"]


def test_the_host_role_uses_its_bucket_with_the_iam_actions_aws_checks(moto, role):
    s3 = as_host(moto, role, "s3")
    # ListObjectsV2 is s3:ListBucket, HeadObject s3:GetObject: the names moto alone would have checked differ.
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=SETTINGS.artifact_bucket)["Contents"]] == [OBJECT]
    assert s3.head_object(Bucket=SETTINGS.artifact_bucket, Key=OBJECT)["ContentLength"] == len(b"artifact")
    s3.put_object(Bucket=SETTINGS.artifact_bucket, Key="1/0123abcd/artifacts/new.txt", Body=b"x")
    s3.delete_objects(Bucket=SETTINGS.artifact_bucket, Delete={"Objects": [{"Key": "1/0123abcd/artifacts/new.txt"}]})
    assert error_code(lambda: s3.get_object(Bucket=OTHER_BUCKET, Key=OBJECT)) == "AccessDenied"
    assert error_code(lambda: s3.list_objects_v2(Bucket=OTHER_BUCKET)) == "AccessDenied"


def test_a_multipart_upload_is_put_object_and_its_abort_needs_its_own_action(moto, role):
    s3 = as_host(moto, role, "s3")
    key = "1/0123abcd/artifacts/large.bin"
    upload = s3.create_multipart_upload(Bucket=SETTINGS.artifact_bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=SETTINGS.artifact_bucket, Key=key, UploadId=upload, PartNumber=1,
                          Body=b"p" * 1024)["ETag"]
    s3.complete_multipart_upload(Bucket=SETTINGS.artifact_bucket, Key=key, UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    second = s3.create_multipart_upload(Bucket=SETTINGS.artifact_bucket, Key=key)["UploadId"]
    s3.abort_multipart_upload(Bucket=SETTINGS.artifact_bucket, Key=key, UploadId=second)


def test_a_call_the_host_never_makes_is_refused_even_where_the_policy_would_allow_it(moto, role):
    s3 = as_host(moto, role, "s3")
    # DeleteObject (one key) needs s3:DeleteObject, which the role has for MLflow's DeleteObjects; but the
    # host never calls it, so it is not in host_programs/aws_calls.py.
    assert error_code(lambda: s3.delete_object(Bucket=SETTINGS.artifact_bucket, Key=OBJECT)) == "AccessDenied"
    refusal = "s3:DeleteObject is not among the host's AWS calls (host_programs/aws_calls.py)"
    assert refusal in moto.log.read_text()


def test_a_url_the_host_role_presigns_works_for_its_bucket_only(moto, role):
    s3 = as_host(moto, role, "s3")
    mine = s3.generate_presigned_url("get_object", Params={"Bucket": SETTINGS.artifact_bucket, "Key": OBJECT})
    other = s3.generate_presigned_url("get_object", Params={"Bucket": OTHER_BUCKET, "Key": OBJECT})
    upload = s3.generate_presigned_url("put_object", Params={"Bucket": SETTINGS.artifact_bucket,
                                                             "Key": "1/0123abcd/artifacts/up.txt"})
    assert (fetch(mine), fetch(other), fetch(upload, b"uploaded")) == (200, 403, 200)


def test_an_expired_or_unsigned_url_is_refused(moto, role):
    s3 = as_host(moto, role, "s3")
    expired = s3.generate_presigned_url("get_object", Params={"Bucket": SETTINGS.artifact_bucket, "Key": OBJECT},
                                        ExpiresIn=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and fetch(expired) == 200:
        time.sleep(0.5)
    assert fetch(expired) == 403
    assert fetch(f"{moto.endpoint}/{SETTINGS.artifact_bucket}/{OBJECT}") == 403


def test_keys_moto_never_issued_are_refused(moto):
    stranger = boto3.client("ssm", region_name=SETTINGS.region, endpoint_url=moto.endpoint,
                            aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="wJalrXUtnFEMI")
    assert error_code(lambda: stranger.get_parameters(Names=[OTHER_PARAMETER])) == "UnrecognizedClientException"


def test_the_tests_admin_may_do_anything(moto):
    assert moto.client("ssm").get_parameter(Name=OTHER_PARAMETER, WithDecryption=True)["Parameter"]["Value"]
    assert moto.client("s3").get_object(Bucket=OTHER_BUCKET, Key=OBJECT)["Body"].read() == b"artifact"


def test_the_host_role_session_outlives_a_test_session(role):
    left = role.expiration - datetime.datetime.now(datetime.timezone.utc)
    assert left > datetime.timedelta(hours=6)


def test_every_decision_is_logged(moto: MotoServer, role: RoleCredentials, tmp_path: Path):
    as_host(moto, role, "ssm").get_parameters(Names=[naming.parameter_name(SETTINGS.ssm_prefix, naming.DB_PASSWORD)])
    lines = [line for line in moto.log.read_text().splitlines() if line.startswith("moto-authorization:")]
    assert any(line.startswith("moto-authorization: allowed arn:aws:sts::123456789012:assumed-role/mlflow-aws-host/")
               and " ssm:GetParameters: ssm:GetParameters on " in line for line in lines)


def test_the_single_host_tags_its_own_instance_with_the_health_key_and_nothing_else(moto, role):
    ec2 = as_host(moto, role, "ec2")
    own, other = host_role.INSTANCE_ID, "i-0fedcba9876543210"
    ec2.create_tags(Resources=[own], Tags=[{"Key": naming.HEALTH_TAG, "Value": "healthy"}])
    assert error_code(lambda: ec2.create_tags(Resources=[other], Tags=[{"Key": naming.HEALTH_TAG,
                                                                         "Value": "healthy"}])) == "AccessDenied"
    assert error_code(lambda: ec2.create_tags(Resources=[own], Tags=[{"Key": "Name", "Value": "x"}])) == (
        "AccessDenied")
    tags = moto.client("ec2", SETTINGS.region).describe_tags(
        Filters=[{"Name": "resource-id", "Values": [own, other]}])["Tags"]
    assert [(tag["ResourceId"], tag["Key"]) for tag in tags] == [(own, naming.HEALTH_TAG)]


def test_the_host_role_snapshots_its_own_database_under_the_upgrade_prefix_only(moto, role):
    admin = moto.client("rds", SETTINGS.region)
    for identifier in (SETTINGS.db_identifier, "mlflow-aws-other-stack"):
        admin.create_db_instance(DBInstanceIdentifier=identifier, DBInstanceClass="db.t4g.micro", Engine="postgres",
                                 MasterUsername="mlflow", MasterUserPassword="Secret123456", AllocatedStorage=20)
    rds = as_host(moto, role, "rds")
    upgrade = f"{SETTINGS.db_identifier}-upgrade-3-16-1-to-3-17-2-20261207t043000z"
    rds.create_db_snapshot(DBSnapshotIdentifier=upgrade, DBInstanceIdentifier=SETTINGS.db_identifier)
    assert rds.describe_db_snapshots(DBSnapshotIdentifier=upgrade)["DBSnapshots"][0]["Status"] == "available"
    assert error_code(lambda: rds.create_db_snapshot(DBSnapshotIdentifier="mlflow-aws-other-stack-upgrade-x",
                                                     DBInstanceIdentifier="mlflow-aws-other-stack")) == "AccessDenied"
    assert error_code(lambda: rds.create_db_snapshot(DBSnapshotIdentifier=f"{SETTINGS.db_identifier}-nightly",
                                                     DBInstanceIdentifier=SETTINGS.db_identifier)) == "AccessDenied"
