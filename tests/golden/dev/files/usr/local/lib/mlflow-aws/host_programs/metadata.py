from __future__ import annotations

import os
import urllib.error
import urllib.request

DEFAULT_ENDPOINT = "http://169.254.169.254/"
ENDPOINT_VARIABLE = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
TOKEN_TTL_SECONDS = 300
TIMEOUT_SECONDS = 2.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MetadataUnavailable(Exception):
    pass


def endpoint() -> str:
    return os.environ.get(ENDPOINT_VARIABLE, DEFAULT_ENDPOINT).rstrip("/") + "/"


def read(path: str) -> str:
    base = endpoint()
    try:
        token_request = urllib.request.Request(
            f"{base}latest/api/token", method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)})
        with _OPENER.open(token_request, timeout=TIMEOUT_SECONDS) as response:
            token = response.read().decode()
        value_request = urllib.request.Request(f"{base}latest/meta-data/{path}",
                                               headers={"X-aws-ec2-metadata-token": token})
        with _OPENER.open(value_request, timeout=TIMEOUT_SECONDS) as response:
            return str(response.read().decode()).strip()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return ""
        raise MetadataUnavailable(f"the instance metadata service answered HTTP {error.code} for {path}") from None
    except (urllib.error.URLError, OSError) as error:
        raise MetadataUnavailable(f"the instance metadata service at {base} did not answer: {error}") from None


def instance_id() -> str:
    found = read("instance-id")
    if not found:
        raise MetadataUnavailable("the instance metadata service has no instance-id")
    return found


def public_ipv4() -> str:
    return read("public-ipv4")
