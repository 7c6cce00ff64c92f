"""The AWS check `scripts/deploy` and `scripts/destroy` run before Pulumi: `python -m client.aws_check REGION`.

It asks STS who the shell's credentials belong to, through the credential chain the Pulumi AWS
provider uses too, and when that fails it says which of two different problems it is: the network
(no route to STS, DNS, a proxy refusing, timeouts: the credentials were never tried) or AWS refusing
the credentials (unknown key, wrong secret, expired session, none found). Each gets its own fix.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Bounded: a firewall that drops packets fails the check in well under a minute, not after botocore's
# defaults (60 s per connect and per read, several attempts).
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 20
MAX_ATTEMPTS = 2

CREDENTIALS_FIX = (
    "Give this shell working credentials, then run the script again: `aws configure` (an access key), "
    "`aws sso login --profile NAME` and `export AWS_PROFILE=NAME` (IAM Identity Center), or "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in the environment. "
    "`aws sts get-caller-identity` must work first."
)
PROXY_FIX = (
    "behind a proxy, export HTTPS_PROXY=http://proxy.example.com:3128 (boto3 and Pulumi both read it; "
    "NO_PROXY lists the hosts to reach directly)"
)

# How the credentials were found (botocore's credential provider `method`), in the user's words.
SOURCES = {
    "env": "the environment (AWS_ACCESS_KEY_ID)",
    "shared-credentials-file": "~/.aws/credentials",
    "config-file": "~/.aws/config",
    "sso": "IAM Identity Center (aws sso login)",
    "assume-role": "a role the profile assumes",
    "assume-role-with-web-identity": "a web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "custom-process": "the profile's credential_process",
    "container-role": "the container's role",
    "iam-role": "this machine's instance role",
}

# STS error codes that mean AWS refused the credentials themselves, with the fix for each.
REFUSED = {
    "InvalidClientTokenId": "AWS knows no such access key (deleted, mistyped, or of another partition): "
    "create a new access key, or sign in again",
    "UnrecognizedClientException": "AWS knows no such access key: create a new access key, or sign in again",
    "SignatureDoesNotMatch": "the secret access key does not belong to the access key ID: enter both again "
    "(`aws configure`), or check that nothing between you and AWS rewrites requests",
    "ExpiredToken": "the session has expired: sign in again (`aws sso login --profile NAME`) or fetch new "
    "temporary credentials",
    "ExpiredTokenException": "the session has expired: sign in again (`aws sso login --profile NAME`) or fetch "
    "new temporary credentials",
    "RequestExpired": "the request's signature was too old when it arrived: this machine's clock is off; "
    "set it right (e.g. `timedatectl set-ntp true`)",
    "InvalidAccessKeyId": "AWS knows no such access key: create a new access key, or sign in again",
}


@dataclass(frozen=True)
class Verdict:
    network: bool  # True: the credentials were never tried
    message: str


def _endpoint(error: Any, region: str) -> str:
    kwargs = getattr(error, "kwargs", {}) or {}
    return str(kwargs.get("endpoint_url") or f"https://sts.{region}.amazonaws.com")


def _underlying(error: Any) -> BaseException | None:
    inner = (getattr(error, "kwargs", {}) or {}).get("error")
    return inner if isinstance(inner, BaseException) else None


def _name_does_not_resolve(error: BaseException) -> bool:
    inner = _underlying(error)
    chain = [item for item in (inner, getattr(inner, "__cause__", None), getattr(inner, "__context__", None)) if item]
    if any(isinstance(item, socket.gaierror) or type(item).__name__ == "NameResolutionError" for item in chain):
        return True
    text = " ".join(str(item) for item in chain)
    return any(marker in text for marker in ("Name or service not known", "nodename nor servname",
                                             "Temporary failure in name resolution", "getaddrinfo failed"))


def network_verdict(error: BaseException, region: str) -> Verdict | None:
    """What a connection-level failure means, or None when `error` is not one."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ProxyConnectionError,
        ReadTimeoutError,
        SSLError,
    )

    endpoint = _endpoint(error, region)
    if isinstance(error, ProxyConnectionError):
        proxy = (getattr(error, "kwargs", {}) or {}).get("proxy_url", "the proxy")
        cause = (f"the proxy {proxy} refused or failed the connection; check HTTPS_PROXY / https_proxy "
                 "(its address and port), or list amazonaws.com in NO_PROXY if AWS is reached directly")
    elif isinstance(error, ConnectTimeoutError):
        cause = (f"no connection within {CONNECT_TIMEOUT_SECONDS} s: a firewall that drops the traffic, or a "
                 f"network that only a proxy leaves; {PROXY_FIX}")
    elif isinstance(error, ReadTimeoutError):
        cause = (f"connected, but no answer within {READ_TIMEOUT_SECONDS} s: a proxy or firewall that holds the "
                 f"connection; {PROXY_FIX}")
    elif isinstance(error, SSLError):
        cause = (f"the TLS connection failed ({_underlying(error) or error}): a proxy that intercepts TLS needs "
                 "its CA certificate, export AWS_CA_BUNDLE=/path/to/ca.pem")
    elif isinstance(error, EndpointConnectionError) and _name_does_not_resolve(error):
        cause = (f"the name of {endpoint} does not resolve: this machine has no DNS for it (offline, or only a "
                 f"proxy reaches out); {PROXY_FIX}")
    elif isinstance(error, EndpointConnectionError):
        cause = f"the connection was refused or there is no route to it (offline, VPN, firewall); {PROXY_FIX}"
    elif isinstance(error, ConnectionClosedError):
        cause = f"the connection closed before AWS answered (a proxy or firewall in between); {PROXY_FIX}"
    else:
        return None
    return Verdict(
        network=True,
        message=(
            f"cannot reach AWS STS at {endpoint} to check the credentials: {cause}. "
            "This is the network, not the credentials: they were never tried."
        ),
    )


def credentials_verdict(error: BaseException, source: str) -> Verdict | None:
    """What AWS refusing the credentials (or finding none) means, or None when `error` is not that."""
    from botocore.exceptions import (
        ClientError,
        CredentialRetrievalError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        SSOError,
        TokenRetrievalError,
    )

    kwargs = getattr(error, "kwargs", {}) or {}
    if isinstance(error, NoCredentialsError):
        return Verdict(False, f"no AWS credentials found in this shell. {CREDENTIALS_FIX}")
    if isinstance(error, PartialCredentialsError):
        return Verdict(False, f"the AWS credentials from {kwargs.get('provider', 'the environment')} lack "
                              f"{kwargs.get('cred_var', 'a value')}. {CREDENTIALS_FIX}")
    if isinstance(error, ProfileNotFound):
        return Verdict(False, f"the AWS profile {kwargs.get('profile')!r} (AWS_PROFILE) is not in ~/.aws/config; "
                              "list the profiles with `aws configure list-profiles`, or unset AWS_PROFILE")
    if isinstance(error, (SSOError, TokenRetrievalError)):
        return Verdict(False, f"the IAM Identity Center session has expired or was never opened ({error}); "
                              "run `aws sso login --profile NAME` with this shell's AWS_PROFILE")
    if isinstance(error, CredentialRetrievalError):
        return Verdict(False, f"could not get AWS credentials from {kwargs.get('provider', 'a provider')}: "
                              f"{kwargs.get('error_msg', error)}. {CREDENTIALS_FIX}")
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code, text = str(details.get("Code", "Unknown")), str(details.get("Message", ""))
        fix = REFUSED.get(code)
        if fix is None:
            return Verdict(False, f"AWS refused GetCallerIdentity for the credentials from {source} ({code}: "
                                  f"{text}). {CREDENTIALS_FIX}")
        return Verdict(False, f"AWS refused the credentials from {source} ({code}: {text}): {fix}.")
    return None


def diagnose(error: BaseException, region: str, source: str) -> Verdict:
    verdict = network_verdict(error, region) or credentials_verdict(error, source)
    if verdict is not None:
        return verdict
    return Verdict(False, f"the AWS check failed ({type(error).__name__}: {error}). {CREDENTIALS_FIX}")


def credential_source(session: Any) -> str:
    """Where the chain found the credentials (and the profile, when one is named), for the messages."""
    credentials = session.get_credentials()
    method = getattr(credentials, "method", "") if credentials is not None else ""
    where = SOURCES.get(method, method or "the default credential chain")
    profile = session.profile_name
    return f"{where}, profile {profile!r}" if profile and profile != "default" else where


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1 or arguments[0] in ("-h", "--help"):
        print("usage: python -m client.aws_check REGION  (scripts/deploy runs it before pulumi)", file=sys.stderr)
        return 0 if arguments[:1] in (["-h"], ["--help"]) else 2
    region = arguments[0]

    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    config = Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    )
    source = "the default credential chain"
    try:
        session = boto3.Session(region_name=region)
        source = credential_source(session)
        identity = session.client("sts", config=config).get_caller_identity()
    except (BotoCoreError, ClientError) as error:
        print(f"error: {diagnose(error, region, source).message}", file=sys.stderr)
        return 1
    print(f"==> AWS account {identity['Account']} as {identity['Arn']}, region {region}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
