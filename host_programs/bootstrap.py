"""mlflow-host-files: the bootstrap the user data carries (DESIGN decision 16). It fetches the host's files,
one S3 object named by its sha256, refuses an object whose sha256 is not the one the user data names, and
writes the files as cloud-init's write_files would have.

It runs with nothing but the image's python3 and its standard library (Ubuntu 24.04 has no boto3 and no AWS
CLI), twice on a first boot (userdata/bootstrap.py renders both commands):
  early     from bootcmd, in cloud-init's init stage, before the packages: fetches and checks the object,
            keeps it (root's, 0600) and writes the files that are not deferred (the nginx sandbox drop-in
            must exist before the nginx package first starts it)
  deferred  first in runcmd, in the final stage, after the packages and the users: writes the deferred files
            from the object kept (checked again), fetched again if it is missing
A stage that has written its files leaves a marker next to the object kept, so a reboot (bootcmd runs on
every boot) writes nothing and fetches nothing.

The object is read as botocore would read it: the instance role's credentials from the instance metadata
service (IMDSv2: a session token first), a SigV4-signed GET, and botocore's endpoints: the metadata service at
AWS_EC2_METADATA_SERVICE_ENDPOINT (else 169.254.169.254), S3 at AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL
(neither when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true), else the region's own; path-style addressing for
an endpoint named by an IP address, virtual-hosted otherwise. A failed fetch and an object whose hash differs
are each one log line, then retried with back-off a bounded number of times; nothing is written from an
object that was not checked, and a stage writes none of its files until all of them can be written
(every owner resolves).
"""

from __future__ import annotations

import argparse
import datetime
import grp
import hashlib
import hmac
import ipaddress
import json
import os
import pwd
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PROGRAM = "mlflow-host-files"
STAGES = ("early", "deferred")
# Under --root: the object kept after its check, and one marker per stage written.
STATE_DIR = "var/lib/mlflow-aws/host-files"
# Fetch attempts, waiting 2, 4, 8 ... seconds between them (at most a minute): about five minutes in all,
# which covers a role whose policy IAM has not yet propagated when the instance first boots.
ATTEMPTS = 10
FIRST_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 10.0
METADATA_ENDPOINT = "http://169.254.169.254/"
METADATA_TOKEN_TTL_SECONDS = "300"
EMPTY_PAYLOAD_SHA256 = hashlib.sha256(b"").hexdigest()


def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


class FetchError(Exception):
    """Worth another attempt: the metadata service or S3 did not answer as expected, or the hash differs."""


class BundleError(Exception):
    """Not worth another attempt: the checked object or the host cannot be written as it says."""


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str


@dataclass(frozen=True)
class HostFile:
    path: str
    content: str
    permissions: int
    owner: str
    defer: bool


def metadata_endpoint(environ: Mapping[str, str]) -> str:
    return (environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or METADATA_ENDPOINT).rstrip("/") + "/"


def s3_endpoint(environ: Mapping[str, str]) -> str:
    """The configured S3 endpoint, botocore's way; "" for the region's own."""
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return ""
    return environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or ""


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def object_url(bucket: str, key: str, region: str, endpoint: str) -> str:
    path = urllib.parse.quote(key, safe="/~")
    if not endpoint:
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://{bucket}.s3.{region}.{suffix}/{path}"
    parts = urllib.parse.urlsplit(endpoint)
    prefix = parts.path.rstrip("/")
    if _is_ip_address(parts.hostname or ""):
        return f"{parts.scheme}://{parts.netloc}{prefix}/{bucket}/{path}"
    return f"{parts.scheme}://{bucket}.{parts.netloc}{prefix}/{path}"


def _read(opener: urllib.request.OpenerDirector, request: urllib.request.Request, what: str) -> bytes:
    try:
        with opener.open(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as error:
        detail = error.read()[:2000].decode("utf-8", "replace")
        code = re.search(r"<Code>([^<]+)</Code>", detail)
        raise FetchError(f"{what}: HTTP {error.code} {code.group(1) if code else error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise FetchError(f"{what}: {getattr(error, 'reason', error)}") from None


def instance_credentials(endpoint: str) -> Credentials:
    """The instance role's credentials, IMDSv2 (never through a proxy, as botocore)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    what = f"the instance metadata service at {endpoint}"
    token = _read(opener, urllib.request.Request(
        f"{endpoint}latest/api/token", method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": METADATA_TOKEN_TTL_SECONDS}), what).decode()
    roles_url = f"{endpoint}latest/meta-data/iam/security-credentials/"
    header = {"X-aws-ec2-metadata-token": token}
    roles = _read(opener, urllib.request.Request(roles_url, headers=header), what).decode().split()
    if not roles:
        raise FetchError(f"{what}: the instance has no role (no instance profile)")
    document = _read(opener, urllib.request.Request(roles_url + roles[0], headers=header), what)
    try:
        values = json.loads(document)
        return Credentials(values["AccessKeyId"], values["SecretAccessKey"], values.get("Token", ""))
    except (ValueError, KeyError, TypeError):
        raise FetchError(f"{what}: the role {roles[0]}'s credentials are not a credentials document") from None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signed_headers(url: str, region: str, credentials: Credentials, now: datetime.datetime) -> dict[str, str]:
    """The headers of a SigV4-signed GET of `url` from S3 (AWS's "Signature Version 4" for S3: the
    payload's hash is sent, here the empty body's)."""
    parts = urllib.parse.urlsplit(url)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    headers = {"host": parts.netloc, "x-amz-content-sha256": EMPTY_PAYLOAD_SHA256, "x-amz-date": stamp}
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    names = sorted(headers)
    canonical = "\n".join(["GET", parts.path or "/", parts.query, *(f"{name}:{headers[name]}" for name in names),
                           "", ";".join(names), EMPTY_PAYLOAD_SHA256])
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + credentials.secret_access_key).encode()
    for part in (stamp[:8], region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope}, "
                                f"SignedHeaders={';'.join(names)}, Signature={signature}")
    del headers["host"]  # urllib sends it, from the same URL
    return headers


def fetch(url: str, region: str, environ: Mapping[str, str]) -> bytes:
    credentials = instance_credentials(metadata_endpoint(environ))
    headers = signed_headers(url, region, credentials, datetime.datetime.now(datetime.timezone.utc))
    return _read(urllib.request.build_opener(), urllib.request.Request(url, headers=headers), f"GET {url}")


def check(body: bytes, sha256: str, url: str) -> None:
    found = hashlib.sha256(body).hexdigest()
    if found != sha256:
        raise FetchError(f"refused {url}: its sha256 is {found}, the user data names {sha256}; nothing written")


def fetch_checked(url: str, region: str, sha256: str, attempts: int, environ: Mapping[str, str]) -> bytes:
    delay = FIRST_DELAY_SECONDS
    for attempt in range(1, attempts + 1):
        try:
            body = fetch(url, region, environ)
            check(body, sha256, url)
            return body
        except FetchError as error:
            if attempt == attempts:
                raise FetchError(f"gave up after {attempts} attempts: {error}") from None
            log(f"attempt {attempt} of {attempts}: {error}; again in {delay:.0f} s")
            time.sleep(delay)
            delay = min(2 * delay, MAX_DELAY_SECONDS)
    raise FetchError("no attempt made (--attempts must be at least 1)")


def parse(body: bytes) -> list[HostFile]:
    try:
        entries = json.loads(body)["files"]
        files = [HostFile(entry["path"], entry["content"], int(entry["permissions"], 8), entry["owner"],
                          bool(entry["defer"])) for entry in entries]
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(f"the object is not a list of host files: {error!r}") from None
    for file in files:
        if not file.path.startswith("/") or "/../" in f"{file.path}/" or not isinstance(file.content, str):
            raise BundleError(f"the object names a file this program will not write: {file.path!r}")
    return files


def owner_ids(owner: str) -> tuple[int, int]:
    user, _, group = owner.partition(":")
    try:
        return pwd.getpwnam(user).pw_uid, grp.getgrnam(group or user).gr_gid
    except KeyError:
        raise BundleError(f"owner {owner!r} does not exist on this host") from None


def write_file(root: str, file: HostFile, uid: int, gid: int) -> None:
    """Like cloud-init's write_files: parent directories made, content, owner and mode, in one rename."""
    target = os.path.join(root, file.path.lstrip("/"))
    directory = os.path.dirname(target)
    os.makedirs(directory, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{PROGRAM}-", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(file.content)
        os.chown(temporary, uid, gid)
        os.chmod(temporary, file.permissions)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def keep(path: str, body: bytes) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path))
    with os.fdopen(descriptor, "wb") as out:
        out.write(body)
    os.replace(temporary, path)


def checked_object(arguments: argparse.Namespace, kept: str, url: str, environ: Mapping[str, str]) -> bytes:
    """The object kept by an earlier stage if it still has its hash, else fetched and checked (and kept)."""
    if os.path.exists(kept):
        with open(kept, "rb") as source:
            body = source.read()
        if hashlib.sha256(body).hexdigest() == arguments.sha256:
            return body
        log(f"{kept} no longer has sha256 {arguments.sha256}; fetching it again")
    body = fetch_checked(url, arguments.region, arguments.sha256, arguments.attempts, environ)
    keep(kept, body)
    return body


def main(arguments: Sequence[str], environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="Fetch the host's files from S3, check their "
                                     "sha256 and write those of one stage.")
    parser.add_argument("stage", choices=STAGES, help="early: the files not deferred; deferred: the others")
    parser.add_argument("--region", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--sha256", required=True, help="the object's, as the user data names it")
    parser.add_argument("--root", default="/", help="write the files below this directory (default: /)")
    parser.add_argument("--attempts", type=int, default=ATTEMPTS, help=f"fetch attempts (default {ATTEMPTS})")
    args = parser.parse_args(arguments)
    state = os.path.join(args.root, STATE_DIR)
    marker = os.path.join(state, f"{args.sha256}.{args.stage}")
    if os.path.exists(marker):
        log(f"the {args.stage} files of {args.sha256} are already written")
        return 0
    url = object_url(args.bucket, args.key, args.region, s3_endpoint(environ))
    try:
        files = [file for file in parse(checked_object(args, os.path.join(state, f"{args.sha256}.json"), url,
                                                       environ))
                 if file.defer == (args.stage == "deferred")]
        owners = {file.owner: owner_ids(file.owner) for file in files}
    except (FetchError, BundleError) as error:
        log(f"{error}; none of the {args.stage} files written")
        return 1
    for file in files:
        write_file(args.root, file, *owners[file.owner])
    with open(marker, "w", encoding="utf-8") as done:
        done.write(f"{len(files)} files\n")
    log(f"wrote the {len(files)} {args.stage} files of {args.key}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
