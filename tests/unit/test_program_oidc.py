"""The program with `auth: oidc`: the identity provider's client secret reaches the host only as an SSM
SecureString its role may read, never the user data, the host's files (the one S3 object of DESIGN decision
16) or a plain output, and a new secret restarts MLflow."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

import naming
from naming import Outputs
from tests.support.pulumi_program import ProgramRun, run_program

TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"  # the single host launches from it (HostLaunch)
PARAMETER = "aws:ssm/parameter:Parameter"
ASSOCIATION = "aws:ssm/association:Association"
HOST_FILES = "aws:s3/bucketObjectv2:BucketObjectv2"
CLIENT_SECRET = "idp-client-secret-4711"
OIDC = {
    "auth": "oidc",
    "oidcIssuer": "https://login.example.com/tenant/v2.0",
    "oidcClientId": "mlflow-client-id",
    "oidcAdminGroup": "mlflow-admins",
    "oidcAllowedGroups": ["mlflow-users"],
}
SECRET_NAME = naming.parameter_name("/mlflow-aws/dev", naming.OIDC_CLIENT_SECRET)


@pytest.fixture(scope="module")
def oidc() -> ProgramRun:
    return run_program("dev", OIDC, secrets={"oidcClientSecret": CLIENT_SECRET})


def user_data(run: ProgramRun) -> str:
    return gzip.decompress(base64.b64decode(run.one(TEMPLATE).inputs["userData"])).decode()


def host_files_object(run: ProgramRun) -> str:
    (uploaded,) = run.of_type(HOST_FILES)
    return str(uploaded.inputs["content"])


def client_secret_parameter(run: ProgramRun) -> dict[str, Any]:
    (parameter,) = [r.inputs for r in run.of_type(PARAMETER) if r.inputs["name"] == SECRET_NAME]
    return parameter


def test_the_client_secret_is_a_securestring_marked_secret(oidc: ProgramRun) -> None:
    parameter = client_secret_parameter(oidc)
    assert parameter["type"] == "SecureString"
    assert isinstance(parameter["value"], dict) and parameter["value"]["value"] == CLIENT_SECRET  # dict: secret


def test_the_client_secret_is_in_no_user_data_no_host_file_and_no_plain_output(oidc: ProgramRun) -> None:
    assert CLIENT_SECRET not in user_data(oidc)
    files = host_files_object(oidc)
    assert "mlflow-oidc-auth==" in files and CLIENT_SECRET not in files  # the oidc host's files, not its secret
    plain = json.dumps({key: value for key, value in oidc.outputs.items() if key not in oidc.secret_outputs})
    assert CLIENT_SECRET not in plain


def test_the_host_role_may_read_the_client_secret(oidc: ProgramRun) -> None:
    policy = json.loads(oidc.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    readable = [statement["Resource"] for statement in policy["Statement"]
                if "ssm:GetParameters" in statement["Action"]]
    assert readable == ["arn:aws:ssm:eu-west-1:123456789012:parameter/mlflow-aws/dev/*"]
    assert SECRET_NAME.startswith("/mlflow-aws/dev/")


def test_a_new_client_secret_restarts_mlflow_on_the_host(oidc: ProgramRun) -> None:
    command = oidc.one(ASSOCIATION).inputs["parameters"]["commands"]
    assert "client-secret=v" in command and CLIENT_SECRET not in command


def test_the_auth_output_says_how_people_sign_in(oidc: ProgramRun) -> None:
    assert oidc.outputs[Outputs.AUTH] == "oidc"
    assert run_program("dev").outputs[Outputs.AUTH] == "basic"


def test_basic_auth_creates_no_client_secret_parameter() -> None:
    run = run_program("dev", {"oidcIssuer": "https://login.example.com"}, secrets={"oidcClientSecret": "unused"})
    assert SECRET_NAME not in [r.inputs["name"] for r in run.of_type(PARAMETER)]
