"""The deploy scripts' AWS check (client/aws_check.py) tells a network failure from credentials AWS refused.

The faults are real: botocore talks to endpoints on 127.0.0.1 that refuse the connection, stand in for a
proxy that is not there, never answer, or answer as STS does when it refuses credentials. A name that does
not resolve is built from the exception botocore raises for it, without asking a DNS server.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    SSLError,
    UnauthorizedSSOTokenError,
)

from client import aws_check
from tests.support import fake_sts

REGION = "eu-west-1"
NETWORK = "This is the network, not the credentials: they were never tried."


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Static test credentials, no profile files, no proxies, no metadata service."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS",
                 "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                 "no_proxy", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def check(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = aws_check.main([REGION])
    return code, capsys.readouterr().err


# ---------------------------------------------------------------- the network, through botocore


def test_a_refused_connection_is_reported_as_the_network_not_the_credentials(aws_environment, capsys) -> None:
    endpoint = fake_sts.closed_endpoint()
    aws_environment.setenv("AWS_ENDPOINT_URL", endpoint)
    code, err = check(capsys)
    assert code == 1
    assert f"cannot reach AWS STS at {endpoint}" in err and "refused or there is no route" in err
    assert NETWORK in err and "HTTPS_PROXY" in err
    assert "aws configure" not in err


def test_a_proxy_that_is_not_there_is_named_with_the_variable_to_check(aws_environment, capsys) -> None:
    proxy = fake_sts.closed_endpoint()
    aws_environment.setenv("AWS_ENDPOINT_URL", "http://sts.example.test")
    aws_environment.setenv("HTTP_PROXY", proxy)
    code, err = check(capsys)
    assert code == 1
    assert f"the proxy {proxy}" in err and "HTTPS_PROXY / https_proxy" in err and "NO_PROXY" in err
    assert NETWORK in err


def test_an_endpoint_that_never_answers_times_out_quickly_as_the_network(aws_environment, capsys) -> None:
    aws_environment.setattr(aws_check, "READ_TIMEOUT_SECONDS", 1)
    with fake_sts.silent_endpoint() as endpoint:
        aws_environment.setenv("AWS_ENDPOINT_URL", endpoint)
        code, err = check(capsys)
    assert code == 1
    assert "connected, but no answer within 1 s" in err and NETWORK in err


def test_a_name_that_does_not_resolve_is_dns_not_the_credentials() -> None:
    error = EndpointConnectionError(
        endpoint_url="https://sts.eu-west-1.amazonaws.com/",
        error=socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    )
    verdict = aws_check.diagnose(error, REGION, "the environment")
    assert verdict.network
    assert "the name of https://sts.eu-west-1.amazonaws.com/ does not resolve" in verdict.message
    assert "HTTPS_PROXY" in verdict.message


def test_a_connect_timeout_suggests_a_firewall_or_a_proxy() -> None:
    error = ConnectTimeoutError(endpoint_url="https://sts.eu-west-1.amazonaws.com/")
    verdict = aws_check.diagnose(error, REGION, "the environment")
    assert verdict.network
    assert f"no connection within {aws_check.CONNECT_TIMEOUT_SECONDS} s" in verdict.message
    assert "firewall" in verdict.message and "HTTPS_PROXY" in verdict.message


def test_a_proxy_refusing_the_tunnel_is_the_network() -> None:
    verdict = aws_check.diagnose(ProxyConnectionError(proxy_url="http://proxy.corp:3128", error="403"), REGION, "")
    assert verdict.network and "the proxy http://proxy.corp:3128 refused or failed" in verdict.message


def test_a_tls_interception_names_the_ca_bundle_setting() -> None:
    error = SSLError(endpoint_url="https://sts.eu-west-1.amazonaws.com/", error=Exception("certificate verify failed"))
    verdict = aws_check.diagnose(error, REGION, "")
    assert verdict.network and "AWS_CA_BUNDLE" in verdict.message


# ---------------------------------------------------------------- credentials AWS refused, or none


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        ("InvalidClientTokenId", "AWS knows no such access key"),
        ("SignatureDoesNotMatch", "the secret access key does not belong to the access key ID"),
        ("ExpiredToken", "the session has expired: sign in again"),
    ],
)
def test_credentials_sts_refuses_are_named_with_their_fix(aws_environment, capsys, code: str, fix: str) -> None:
    with fake_sts.refusing_sts(code) as endpoint:
        aws_environment.setenv("AWS_ENDPOINT_URL", endpoint)
        exit_code, err = check(capsys)
    assert exit_code == 1
    assert f"AWS refused the credentials from the environment (AWS_ACCESS_KEY_ID) ({code}: " in err
    assert fix in err
    assert "network" not in err


def test_no_credentials_at_all_says_how_to_give_the_shell_some(aws_environment, capsys) -> None:
    aws_environment.delenv("AWS_ACCESS_KEY_ID")
    aws_environment.delenv("AWS_SECRET_ACCESS_KEY")
    code, err = check(capsys)
    assert code == 1
    assert "no AWS credentials found in this shell" in err
    assert "aws configure" in err and "aws sso login --profile NAME" in err


def test_a_profile_that_does_not_exist_is_named(aws_environment, capsys) -> None:
    aws_environment.setenv("AWS_PROFILE", "team-dev")
    code, err = check(capsys)
    assert code == 1
    assert "the AWS profile 'team-dev' (AWS_PROFILE) is not in ~/.aws/config" in err


def test_the_credential_errors_botocore_raises_before_any_request_are_not_the_network() -> None:
    for error in (NoCredentialsError(), ProfileNotFound(profile="x"), UnauthorizedSSOTokenError()):
        assert not aws_check.diagnose(error, REGION, "").network


def test_an_expired_identity_center_session_says_aws_sso_login() -> None:
    verdict = aws_check.diagnose(UnauthorizedSSOTokenError(), REGION, "")
    assert "aws sso login --profile NAME" in verdict.message


# ---------------------------------------------------------------- success


def test_working_credentials_print_the_account_and_identity(aws_environment, capsys) -> None:
    from tests.support import servers

    with servers.moto_endpoint() as endpoint:
        aws_environment.setenv("AWS_ENDPOINT_URL", endpoint)
        code, err = check(capsys)
    assert code == 0
    assert "==> AWS account 123456789012 as arn:aws:sts::123456789012:user/moto, region eu-west-1" in err


def test_help_prints_usage_and_exits_0(capsys) -> None:
    assert aws_check.main(["--help"]) == 0
    assert "usage: python -m client.aws_check REGION" in capsys.readouterr().err
