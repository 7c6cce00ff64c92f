"""What tests/support/moto_authorization.py asks moto to check for a request: the IAM actions AWS checks
(host_programs/aws_calls.py) on the resources the request names; and how it reads a presigned URL."""

from __future__ import annotations

import datetime
import json
from urllib.parse import parse_qs, urlparse

import boto3

from tests.support.moto_authorization import (
    deleted_keys,
    presigned_credentials,
    presigned_expired,
    required_permissions,
)

FACTS = {"partition": "aws", "region": "eu-west-1", "account": "111122223333"}
BUCKET = "arn:aws:s3:::team-artifacts"


def test_an_ssm_call_is_checked_on_every_parameter_it_names():
    body = json.dumps({"Names": ["/s/db/host", "/s/db/port"], "WithDecryption": True}).encode()
    assert required_permissions("ssm", "GetParameters", "*", body, **FACTS) == (
        ("ssm:GetParameters", "arn:aws:ssm:eu-west-1:111122223333:parameter/s/db/host"),
        ("ssm:GetParameters", "arn:aws:ssm:eu-west-1:111122223333:parameter/s/db/port"),
    )
    single = json.dumps({"Name": "relative/name"}).encode()
    assert required_permissions("ssm", "GetParameter", "*", single, **FACTS) == (
        ("ssm:GetParameter", "arn:aws:ssm:eu-west-1:111122223333:parameter/relative/name"),)


def test_s3_operations_are_checked_with_the_iam_actions_aws_uses_for_them():
    key = f"{BUCKET}/1/a/artifacts/x"
    assert required_permissions("s3", "HeadObject", key, b"", **FACTS) == (("s3:GetObject", key),)
    assert required_permissions("s3", "UploadPart", key, b"", **FACTS) == (("s3:PutObject", key),)
    assert required_permissions("s3", "ListObjectsV2", BUCKET, b"", **FACTS) == (("s3:ListBucket", BUCKET),)


def test_delete_objects_is_checked_on_each_key():
    body = (b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>1/a</Key></Object>'
            b"<Object><Key>1/b</Key></Object></Delete>")
    assert deleted_keys(body) == ["1/a", "1/b"]
    assert required_permissions("s3", "DeleteObjects", BUCKET, body, **FACTS) == (
        ("s3:DeleteObject", f"{BUCKET}/1/a"), ("s3:DeleteObject", f"{BUCKET}/1/b"))


def test_an_operation_the_host_never_calls_keeps_motos_own_action_name():
    assert required_permissions("s3", "GetObjectTagging", BUCKET, b"", **FACTS) == (
        ("s3:GetObjectTagging", BUCKET),)


def test_a_presigned_url_names_its_signer_and_expires():
    client = boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:1",
                          aws_access_key_id="ASIAEXAMPLE", aws_secret_access_key="secret",
                          aws_session_token="session-token")
    url = client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"}, ExpiresIn=60)
    query = parse_qs(urlparse(url).query)
    assert presigned_credentials(query) == ("ASIAEXAMPLE", "session-token", "s3")
    now = datetime.datetime.now(datetime.timezone.utc)
    assert not presigned_expired(query, now)
    assert presigned_expired(query, now + datetime.timedelta(seconds=120))
    assert presigned_credentials({}) is None
