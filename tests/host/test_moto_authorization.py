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
from tests.support.host_role import RoleCredentials
from tests.support.loopback import MotoServer, loopback_settings

pytestmark = pytest.mark.host

SETTINGS = loopback_settings(tls="letsencrypt")
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
