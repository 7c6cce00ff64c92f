"""The host's files outside the user data (DESIGN decision 16): the object the program uploads
(userdata.bundle), the bootstrap that fetches it (host_programs/bootstrap.py) and the two commands the user
data runs it with (userdata.bootstrap). tests/host/test_host_files_bootstrap.py runs it against moto with
authorization on; tests/boot boots with it."""

from __future__ import annotations

import ast
import dataclasses
import datetime
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
import yaml

import userdata
from host_programs import bootstrap
from userdata import layout
from userdata.bundle import KEY_PREFIX, bundle_of, files_of
from userdata.settings import HostSettings

SETTINGS = HostSettings(
    project="mlflow-aws",
    stack="dev",
    region="eu-west-1",
    ssm_prefix="/mlflow-aws/dev",
    artifact_bucket="mlflow-aws-dev-artifacts-1a2b3c",
    host_files_bucket="mlflow-aws-dev-host-files-1a2b3c",
    public_hostname="203.0.113.10",
    public_ip="203.0.113.10",
    mlflow_version="3.17.2",
    instance_memory_mib=2048,
    tls="letsencrypt",
)
CREDENTIALS = bootstrap.Credentials("ASIAEXAMPLEKEY", "c2VjcmV0LWtleS1vZi10aGUtcm9sZQ", "session/token+=")
NOW = datetime.datetime(2026, 12, 7, 4, 30, 15, tzinfo=datetime.timezone.utc)


def document(settings: HostSettings = SETTINGS) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(userdata.render(settings))
    return parsed


# -- the object ------------------------------------------------------------------------------------

def test_the_object_holds_every_host_file_in_order_and_its_key_is_its_sha256():
    bundle = userdata.host_bundle(SETTINGS)
    assert files_of(bundle) == userdata.host_files(SETTINGS)
    assert bundle.key == f"{KEY_PREFIX}{hashlib.sha256(bundle.body).hexdigest()}.json"


def test_the_object_is_the_same_bytes_for_the_same_files_and_changes_with_any_file():
    files = userdata.host_files(SETTINGS)
    assert bundle_of(files).body == bundle_of(list(files)).body
    changed = [*files[:-1], dataclasses.replace(files[-1], content=files[-1].content + "\n")]
    assert bundle_of(changed).sha256 != bundle_of(files).sha256


def test_a_change_to_any_host_file_changes_the_user_data_so_the_host_is_replaced():
    other = dataclasses.replace(SETTINGS, mlflow_version="3.17.3")
    assert userdata.host_bundle(other).sha256 != userdata.host_bundle(SETTINGS).sha256
    assert userdata.ec2_user_data_base64(other) != userdata.ec2_user_data_base64(SETTINGS)


# -- the user data ---------------------------------------------------------------------------------

def test_the_user_data_carries_no_host_file_only_the_bootstrap_and_the_objects_key_and_sha256():
    rendered = document()
    bundle = userdata.host_bundle(SETTINGS)
    assert "write_files" not in rendered
    install, early = rendered["bootcmd"]
    assert install.startswith(f"cat > {userdata.bootstrap.EXECUTABLE} <<'{userdata.bootstrap.HERE_DOCUMENT_END}'\n")
    expected = [userdata.bootstrap.EXECUTABLE, "--region", "eu-west-1", "--bucket", SETTINGS.host_files_bucket,
                "--key", bundle.key, "--sha256", bundle.sha256]
    assert early == [*expected, "early"]
    assert rendered["runcmd"][0] == [*expected, "deferred"]


def test_the_bootstrap_travels_as_the_module_itself_and_runs_on_a_bare_python3(tmp_path):
    install = document()["bootcmd"][0]
    text = install.split("\n", 1)[1].rsplit(f"{userdata.bootstrap.HERE_DOCUMENT_END}\n", 1)[0]
    assert text.startswith("#!/usr/bin/python3\n")
    program = tmp_path / bootstrap.PROGRAM
    program.write_text(text, encoding="utf-8")
    # -I -S: no site-packages, no user site, no environment: what Ubuntu's python3 has without boto3.
    ran = subprocess.run([sys.executable, "-I", "-S", str(program), "--help"], capture_output=True, text=True,
                         timeout=30, check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith(f"usage: {bootstrap.PROGRAM} ")


def test_the_bootstrap_imports_nothing_but_the_standard_library():
    # Ubuntu 24.04's cloud image has no boto3 and no AWS CLI: the bootstrap signs its request itself.
    tree = ast.parse(Path(bootstrap.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported - set(sys.stdlib_module_names)


def test_a_file_left_in_no_stage_would_be_lost_so_only_the_nginx_sandbox_is_written_before_the_packages():
    files = userdata.host_files(SETTINGS)
    early = [file.path for file in files if not file.defer]
    assert early == [layout.NGINX_HARDENING_DROP_IN]
    assert len(files) == len({file.path for file in files})


# -- where it reads the object, botocore's way ------------------------------------------------------

@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "https://bucket-1.s3.eu-west-1.amazonaws.com/host-files/abc.json"),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, "http://127.0.0.1:5000/bucket-1/host-files/abc.json"),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_ENDPOINT_URL_S3": "https://s3.internal:8443"},
     "https://bucket-1.s3.internal:8443/host-files/abc.json"),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
     "https://bucket-1.s3.eu-west-1.amazonaws.com/host-files/abc.json"),
], ids=["region", "endpoint-url-ip-path-style", "s3-endpoint-first", "ignored"])
def test_the_object_url_honours_the_endpoint_variables_as_botocore_does(environ, expected):
    url = bootstrap.object_url("bucket-1", "host-files/abc.json", "eu-west-1", bootstrap.s3_endpoint(environ))
    assert url == expected


def test_the_metadata_service_is_the_link_local_one_unless_the_variable_names_another():
    assert bootstrap.metadata_endpoint({}) == "http://169.254.169.254/"
    assert bootstrap.metadata_endpoint({"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:8111"}) == (
        "http://127.0.0.1:8111/")


@pytest.mark.parametrize("url", ["https://bucket-1.s3.eu-west-1.amazonaws.com/host-files/abc.json",
                                 "http://127.0.0.1:5000/bucket-1/host-files/abc.json"])
def test_the_signature_is_the_one_botocore_computes_for_the_same_get(url, monkeypatch):
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    request = botocore.awsrequest.AWSRequest(method="GET", url=url)
    botocore.auth.S3SigV4Auth(
        botocore.credentials.Credentials(CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key,
                                         CREDENTIALS.session_token), "s3", "eu-west-1",
    ).add_auth(request)

    ours = bootstrap.signed_headers(url, "eu-west-1", CREDENTIALS, NOW)

    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-security-token"] == CREDENTIALS.session_token


# -- what it refuses ---------------------------------------------------------------------------------

def test_an_object_whose_sha256_differs_is_refused_naming_both_hashes():
    body = userdata.host_bundle(SETTINGS).body
    tampered = body.replace(b"nginx", b"NGINX", 1)
    with pytest.raises(bootstrap.FetchError) as refused:
        bootstrap.check(tampered, hashlib.sha256(body).hexdigest(), "s3://bucket/key")
    assert str(refused.value) == (f"refused s3://bucket/key: its sha256 is {hashlib.sha256(tampered).hexdigest()}, "
                                  f"the user data names {hashlib.sha256(body).hexdigest()}; nothing written")


@pytest.mark.parametrize("path", ["etc/relative", "/etc/../root/.ssh/authorized_keys", "/etc/nginx/.."])
def test_a_checked_object_naming_a_path_outside_its_place_is_refused(path):
    body = (b'{"files":[{"path":"' + path.encode() + b'","owner":"root:root","permissions":"0644",'
            b'"defer":false,"content":"x"}]}')
    with pytest.raises(bootstrap.BundleError, match="will not write"):
        bootstrap.parse(body)


def test_the_parsed_files_are_the_uploaded_ones_with_octal_permissions():
    parsed = bootstrap.parse(userdata.host_bundle(SETTINGS).body)
    uploaded = userdata.host_files(SETTINGS)
    assert [(file.path, file.content, file.owner, file.defer) for file in parsed] == [
        (file.path, file.content, file.owner, file.defer) for file in uploaded]
    assert [file.permissions for file in parsed] == [int(file.permissions, 8) for file in uploaded]


def test_a_fetch_that_keeps_failing_gives_up_after_the_attempts_with_a_line_per_attempt(monkeypatch, capsys):
    def unreachable(url: str, region: str, environ: object) -> bytes:
        raise bootstrap.FetchError("the instance metadata service at http://169.254.169.254/: timed out")

    waits: list[float] = []
    monkeypatch.setattr(bootstrap, "fetch", unreachable)
    monkeypatch.setattr("host_programs.bootstrap.time.sleep", waits.append)
    with pytest.raises(bootstrap.FetchError, match=r"^gave up after 4 attempts: the instance metadata service"):
        bootstrap.fetch_checked("https://b/k", "eu-west-1", "0" * 64, 4, {})
    assert waits == [2.0, 4.0, 8.0]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == ("mlflow-host-files: attempt 1 of 4: the instance metadata service at "
                        "http://169.254.169.254/: timed out; again in 2 s")
    assert len(lines) == 3


def test_the_back_off_is_bounded_by_a_minute():
    delays, delay = [], bootstrap.FIRST_DELAY_SECONDS
    for _ in range(bootstrap.ATTEMPTS - 1):
        delays.append(delay)
        delay = min(2 * delay, bootstrap.MAX_DELAY_SECONDS)
    assert max(delays) == bootstrap.MAX_DELAY_SECONDS
    assert 240 <= sum(delays) <= 360  # about five minutes: IAM's propagation of a new role's policy


# -- what it writes ----------------------------------------------------------------------------------

def test_each_stage_writes_its_own_files_with_their_modes_then_a_reboot_writes_and_fetches_nothing(
        tmp_path, monkeypatch, capsys):
    bundle = userdata.host_bundle(SETTINGS)
    fetched: list[str] = []

    def from_s3(url: str, region: str, environ: object) -> bytes:
        fetched.append(url)
        return bundle.body

    monkeypatch.setattr(bootstrap, "fetch", from_s3)
    monkeypatch.setattr(bootstrap, "owner_ids", lambda owner: (os.getuid(), os.getgid()))  # mlflow: the host's only
    arguments = ["--region", "eu-west-1", "--bucket", "b", "--key", bundle.key, "--sha256", bundle.sha256,
                 "--root", str(tmp_path)]

    assert bootstrap.main(["early", *arguments], {}) == 0
    written_early = {str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file()
                     and bootstrap.STATE_DIR not in str(path)}
    assert written_early == {layout.NGINX_HARDENING_DROP_IN.lstrip("/")}
    assert bootstrap.main(["deferred", *arguments], {}) == 0
    assert len(fetched) == 1  # the deferred stage reads the object the early one kept (checked again)
    for file in userdata.host_files(SETTINGS):
        written = tmp_path / file.path.lstrip("/")
        assert written.read_text(encoding="utf-8") == file.content
        assert oct(written.stat().st_mode & 0o7777) == oct(int(file.permissions, 8))

    capsys.readouterr()
    assert bootstrap.main(["early", *arguments], {}) == 0
    assert bootstrap.main(["deferred", *arguments], {}) == 0
    assert len(fetched) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"mlflow-host-files: the early files of {bundle.sha256} are already written",
        f"mlflow-host-files: the deferred files of {bundle.sha256} are already written",
    ]


def test_a_stage_whose_owner_is_missing_writes_none_of_its_files(tmp_path, monkeypatch, capsys):
    bundle = userdata.host_bundle(SETTINGS)
    monkeypatch.setattr(bootstrap, "fetch", lambda url, region, environ: bundle.body)
    arguments = ["deferred", "--region", "eu-west-1", "--bucket", "b", "--key", bundle.key,
                 "--sha256", bundle.sha256, "--root", str(tmp_path)]

    def no_such_owner(owner: str) -> tuple[int, int]:
        raise bootstrap.BundleError(f"owner {owner!r} does not exist on this host")

    monkeypatch.setattr(bootstrap, "owner_ids", no_such_owner)
    assert bootstrap.main(arguments, {}) == 1
    assert not [path for path in tmp_path.rglob("*") if path.is_file() and bootstrap.STATE_DIR not in str(path)]
    assert not (tmp_path / bootstrap.STATE_DIR / f"{bundle.sha256}.deferred").exists()
    assert "does not exist on this host; none of the deferred files written" in capsys.readouterr().err
