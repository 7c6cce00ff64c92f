"""The boot harness's own pieces that need no container: the metadata stand-in as botocore reads it,
the test-only drop-ins, the seed, and the guard on ports 80 and 443."""

from __future__ import annotations

import base64
import datetime
import gzip
import os
import shutil
import socket

import botocore.session
import pytest

import userdata
from tests.support import boot
from tests.support.boot_stack import boot_settings
from tests.support.host_role import RoleCredentials
from tests.support.imds import running_instance_metadata

# What the stand-in hands out; the loopback and boot stacks give it a session of the host role in moto.
CREDENTIALS = RoleCredentials("ASIAEXAMPLEEXAMPLE01", "secret-of-the-session", "token-of-the-session",
                              datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=6))


def test_botocores_credential_chain_finds_the_role_credentials_of_the_stand_in(monkeypatch, tmp_path):
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(key)
    # No shared credentials or config file of this machine: the chain must reach the metadata service.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with running_instance_metadata("host-role", CREDENTIALS) as metadata:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.endpoint)
        credentials = botocore.session.get_session().get_credentials()
        assert credentials is not None
        assert credentials.method == "iam-role"
        frozen = credentials.get_frozen_credentials()
        assert (frozen.access_key, frozen.secret_key, frozen.token) == (
            CREDENTIALS.access_key_id, CREDENTIALS.secret_access_key, CREDENTIALS.session_token)
        assert metadata.credential_reads == 1 and metadata.refused == 0


def test_the_stand_in_refuses_a_request_without_a_token():
    import urllib.error
    import urllib.request

    with running_instance_metadata("host-role", CREDENTIALS) as metadata:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(f"{metadata.endpoint}latest/meta-data/iam/security-credentials/host-role", timeout=5)
        assert refused.value.code == 401
        assert metadata.refused == 1 and metadata.credential_reads == 0


def test_the_seed_is_the_ec2_user_data_byte_for_byte_and_cloud_init_reads_nocloud_only(tmp_path):
    settings = boot_settings(tls="off")
    root = boot.BootRoot(tmp_path)
    root.seed(userdata.ec2_user_data_base64(settings), instance_id="i-0123", hostname="h")
    seeded = root.path(f"{boot.SEED_DIR}/user-data").read_bytes()
    assert seeded == base64.b64decode(userdata.ec2_user_data_base64(settings))
    assert gzip.decompress(seeded).decode() == userdata.render(settings)
    assert "instance-id: i-0123" in root.read(f"{boot.SEED_DIR}/meta-data")
    assert "datasource_list: [NoCloud]" in root.read(boot.CLOUD_CFG_TEST)


def test_a_drop_in_sets_only_environment_and_says_it_is_test_only():
    path, text = boot.drop_in("mlflow.service", "90-test", {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, "why")
    assert path == "/etc/systemd/system/mlflow.service.d/90-test.conf"
    assert text.splitlines() == ["# Test-only (tests/support/boot.py), never part of the user data: why",
                                 "[Service]", "Environment=AWS_ENDPOINT_URL=http://127.0.0.1:1"]


def test_the_root_file_system_cache_key_follows_the_package_list(monkeypatch):
    key = boot.rootfs_key()
    monkeypatch.setattr(boot, "ROOTFS_PACKAGES", (*boot.ROOTFS_PACKAGES, "nginx"))
    assert boot.rootfs_key() != key


def test_a_port_something_listens_on_is_reported_in_use():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        assert boot.ports_in_use([port]) == [port]
    assert boot.ports_in_use([port]) == []


def test_a_machine_without_the_boot_packages_is_told_which_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda command: None if command == "systemd-nspawn" else "/bin/x")
    assert "systemd-nspawn (Debian package systemd-container)" in boot.boot_requirements_missing()
