"""The rendered mlflow-certificate-state program on its own: what it saves to SSM (moto), and which
saved states it refuses to restore. It runs as on the host, with the certbot venv's Python (the
pinned release, tests/support/tls_loopback.certbot_venv()), on a certbot tree made here; the whole
round trip with real certbot and pebble is tests/host/test_tls_acme.py."""

from __future__ import annotations

import base64
import datetime
import gzip
import io
import ipaddress
import os
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

import naming
from tests.support.host_role import HOST_ROLE
from tests.support.imds import InstanceMetadata, running_instance_metadata
from tests.support.loopback import MotoServer, host_file_contents, loopback_settings, remap
from tests.support.tls_loopback import certbot_venv
from userdata import layout, tls
from userdata.settings import HostSettings

pytestmark = pytest.mark.host

ADDRESS = "203.0.113.10"
DIRECTORY = "https://acme.test/directory"
SETTINGS = loopback_settings(tls="letsencrypt", public_hostname=ADDRESS, public_ip=ADDRESS,
                             acme_directory=DIRECTORY)
TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def imds(moto: MotoServer) -> Iterator[InstanceMetadata]:
    """The metadata stand-in, handing out a session of the host's role with the policy rendered for SETTINGS."""
    with running_instance_metadata(HOST_ROLE, moto.start_host_role(SETTINGS)) as metadata:
        yield metadata


@dataclass
class StateHost:
    """A host's certbot tree under `root`, and the rendered state program (its executable, the modules it
    imports and its settings file, under `programs`) pointed at that tree and at moto."""

    root: Path
    moto: MotoServer
    imds: InstanceMetadata
    settings: HostSettings = SETTINGS

    @property
    def config(self) -> Path:
        return self.root / "etc" / "letsencrypt"

    @property
    def live(self) -> Path:
        return self.config / "live" / self.settings.public_hostname

    @property
    def programs(self) -> Path:
        return self.root.parent / f"{self.root.name}-programs"

    def script(self) -> Path:
        moved = {d: f"{self.root}{d}" for d in (tls.LETSENCRYPT_DIR, str(Path(tls.SAVED_STATE_MARKER).parent))}
        installed = {d: f"{self.programs}{d}" for d in (layout.HOST_PROGRAMS_DIR, layout.HOST_SETTINGS_DIR,
                                                        layout.SBIN_DIR)}
        replacements = {tls.CERTBOT_VENV: str(certbot_venv()), **moved, **installed}
        path = Path(remap(tls.STATE_SCRIPT, replacements))
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            for host_path, content in host_file_contents(self.settings).items():
                if host_path.startswith((layout.HOST_PROGRAMS_DIR, layout.HOST_SETTINGS_DIR, tls.STATE_SCRIPT)):
                    target = Path(remap(host_path, replacements))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(remap(content, replacements))
            path.chmod(0o755)
        return path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": self.moto.endpoint,
               "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds.endpoint,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_CONFIG_FILE": os.devnull}
        return subprocess.run([str(self.script()), *args], env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_SECONDS)

    def issue(self, *, hours_left: float = 150, name: str = ADDRESS, server: str = DIRECTORY, version: int = 1) -> int:
        """What certbot leaves after an issuance: an account, the archive, live links, a renewal conf."""
        account = self.config / "accounts" / "acme.test" / "directory" / "0123abcd"
        account.mkdir(parents=True, exist_ok=True)
        for file in ("meta.json", "private_key.json", "regr.json"):
            (account / file).write_text(f'{{"{file}": "account secret {os.urandom(8).hex()}"}}')
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(x509.Name([]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=hours_left))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]), critical=True)
            .sign(key, hashes.SHA256())
        )
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        archive = self.config / "archive" / self.settings.public_hostname
        archive.mkdir(parents=True, exist_ok=True)
        contents = {"cert": pem, "chain": pem, "fullchain": pem + pem, "privkey": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())}
        self.live.mkdir(parents=True, exist_ok=True)
        for kind, content in contents.items():
            (archive / f"{kind}{version}.pem").write_bytes(content)
            link = self.live / f"{kind}.pem"
            link.unlink(missing_ok=True)
            link.symlink_to(f"../../archive/{self.settings.public_hostname}/{kind}{version}.pem")
        renewal = self.config / "renewal" / f"{self.settings.public_hostname}.conf"
        renewal.parent.mkdir(parents=True, exist_ok=True)
        renewal.write_text(f"version = 5.8.0\narchive_dir = {archive}\n[renewalparams]\nserver = {server}\n")
        return certificate.serial_number


def ssm(moto: MotoServer) -> Any:
    return moto.client("ssm", SETTINGS.region)


def parameter(moto: MotoServer, which: naming.SsmParameter) -> dict[str, Any]:
    found: dict[str, Any] = ssm(moto).get_parameter(
        Name=naming.parameter_name(SETTINGS.ssm_prefix, which), WithDecryption=True)["Parameter"]
    return found


@pytest.fixture
def clean_ssm(moto: MotoServer) -> Iterator[None]:
    yield
    names = [naming.parameter_name(SETTINGS.ssm_prefix, p) for p in naming.HOST_WRITTEN_PARAMETERS]
    ssm(moto).delete_parameters(Names=names)


@pytest.fixture
def first(tmp_path: Path, moto: MotoServer, imds: InstanceMetadata, clean_ssm: None) -> StateHost:
    return StateHost(tmp_path / "first", moto, imds)


@pytest.fixture
def second(tmp_path: Path, moto: MotoServer, imds: InstanceMetadata) -> StateHost:
    return StateHost(tmp_path / "second", moto, imds)


def test_with_nothing_saved_restore_writes_nothing_and_says_so(first: StateHost) -> None:
    result = first.run("restore")
    assert result.returncode == 0, result.stderr
    assert "nothing saved" in result.stdout
    assert not first.live.exists()


def test_the_stacks_unsaved_placeholder_counts_as_nothing_saved(first: StateHost, moto: MotoServer) -> None:
    for which in naming.HOST_WRITTEN_PARAMETERS:
        ssm(moto).put_parameter(Name=naming.parameter_name(SETTINGS.ssm_prefix, which), Value=naming.UNSAVED_STATE,
                                Type="SecureString")
    result = first.run("restore")
    assert (result.returncode, "nothing saved" in result.stdout) == (0, True), result.stdout + result.stderr
    assert not first.live.exists()


def test_save_then_restore_on_a_fresh_host_gives_the_same_lineage(first: StateHost, second: StateHost) -> None:
    serial = first.issue()
    saved = first.run("save")
    assert saved.returncode == 0, saved.stderr
    restored = second.run("restore")
    assert restored.returncode == 0, restored.stderr
    assert f"serial {serial:x}" in restored.stdout
    for kind in ("cert", "chain", "fullchain", "privkey"):
        link = second.live / f"{kind}.pem"
        assert os.readlink(link) == os.readlink(first.live / f"{kind}.pem")  # relative, as certbot makes them
        assert link.read_bytes() == (first.live / f"{kind}.pem").read_bytes()
    accounts = sorted(p.relative_to(first.config) for p in (first.config / "accounts").rglob("*") if p.is_file())
    assert accounts == sorted(p.relative_to(second.config) for p in (second.config / "accounts").rglob("*")
                              if p.is_file())
    assert (second.live / "privkey.pem").stat().st_mode & 0o077 == 0


def test_the_saved_values_are_securestrings_and_hold_only_the_current_version(
    first: StateHost, moto: MotoServer
) -> None:
    first.issue(version=1)
    first.issue(version=2)
    assert first.run("save").returncode == 0
    certificate = parameter(moto, naming.TLS_CERTIFICATE)
    assert certificate["Type"] == "SecureString"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(certificate["Value"])))) as archive:
        names = archive.getnames()
    assert f"archive/{ADDRESS}/privkey2.pem" in names and f"archive/{ADDRESS}/privkey1.pem" not in names
    assert parameter(moto, naming.ACME_ACCOUNT)["Type"] == "SecureString"


def test_save_prints_no_value(first: StateHost, moto: MotoServer) -> None:
    first.issue()
    result = first.run("save")
    values = [parameter(moto, which)["Value"] for which in naming.HOST_WRITTEN_PARAMETERS]
    key = (first.live / "privkey.pem").read_text().splitlines()[1]
    for printed in (result.stdout, result.stderr):
        assert key not in printed and not any(value[:40] in printed for value in values)
    assert "bytes)" in result.stdout


def test_save_unless_saved_puts_nothing_when_the_state_is_unchanged(first: StateHost, moto: MotoServer) -> None:
    first.issue()
    assert first.run("save").returncode == 0
    version = parameter(moto, naming.TLS_CERTIFICATE)["Version"]
    assert first.run("save", "--unless-saved").returncode == 0
    assert parameter(moto, naming.TLS_CERTIFICATE)["Version"] == version
    first.issue(version=2)  # a renewal whose deploy-hook save failed
    assert first.run("save", "--unless-saved").returncode == 0
    assert parameter(moto, naming.TLS_CERTIFICATE)["Version"] == version + 1


def test_a_certificate_from_another_acme_server_is_not_restored(first: StateHost, second: StateHost) -> None:
    first.issue(server="https://acme-staging.test/directory")
    assert first.run("save").returncode == 0
    result = second.run("restore")
    assert result.returncode == 0
    assert "another ACME server" in result.stdout
    assert not second.config.joinpath("live").exists() and not second.config.joinpath("accounts").exists()


def test_a_certificate_expiring_within_the_hour_is_not_restored(first: StateHost, second: StateHost) -> None:
    first.issue(hours_left=0.5)
    assert first.run("save").returncode == 0
    result = second.run("restore")
    assert result.returncode == 0
    assert "expires within the hour" in result.stdout
    assert not second.live.exists()


def test_a_certificate_for_another_address_is_not_restored(first: StateHost, second: StateHost) -> None:
    first.issue(name="198.51.100.7")  # saved under this host's name, but issued for another address
    assert first.run("save").returncode == 0
    result = second.run("restore")
    assert result.returncode == 0
    assert "does not cover the name" in result.stdout
    assert not second.live.exists()


@pytest.mark.parametrize("member", ["../../outside", "/etc/cron.d/evil", "live/203.0.113.10/../../../x",
                                    "renewal/other.conf"])
def test_a_saved_archive_with_paths_outside_its_own_is_refused_and_nothing_is_written(
    second: StateHost, moto: MotoServer, clean_ssm: None, member: str
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(member)
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    value = base64.b64encode(buffer.getvalue()).decode()
    for which in naming.HOST_WRITTEN_PARAMETERS:
        ssm(moto).put_parameter(Name=naming.parameter_name(SETTINGS.ssm_prefix, which), Value=value,
                                Type="SecureString", Overwrite=True)
    result = second.run("restore")
    assert result.returncode == 1
    assert "restore failed" in result.stderr
    assert set(second.root.rglob("*")) <= {second.config.parent, second.config}
    assert not (second.root.parent / "outside").exists()


def test_a_symlink_leaving_the_tree_is_refused(second: StateHost, moto: MotoServer, clean_ssm: None) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(f"live/{ADDRESS}/cert.pem")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
        archive.addfile(info)
    value = base64.b64encode(buffer.getvalue()).decode()
    for which in naming.HOST_WRITTEN_PARAMETERS:
        ssm(moto).put_parameter(Name=naming.parameter_name(SETTINGS.ssm_prefix, which), Value=value,
                                Type="SecureString", Overwrite=True)
    result = second.run("restore")
    assert result.returncode == 1
    assert not second.live.exists()
