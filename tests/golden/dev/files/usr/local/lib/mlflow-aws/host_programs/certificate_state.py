from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import ipaddress
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from host_programs import aws, metadata
from host_programs.settings_file import SettingsError, load

PROGRAM = "mlflow-certificate-state"
SECTION = "certificate_state"
USAGE = f"usage: {PROGRAM} save [--unless-saved] | restore | report | wait-for-address"
RESTORED = "restored"
ADDRESS_POLL_SECONDS = 5.0
PARAMETER_TIER: Final[Literal["Intelligent-Tiering"]] = "Intelligent-Tiering"


@dataclass(frozen=True)
class Settings:
    region: str
    parameters: dict[str, list[str]]
    config_dir: Path
    certificate_name: str
    acme_directory: str
    saved_marker: Path
    unsaved: str
    metrics_namespace: str
    days_left_metric: str
    restore_outcome: Path
    public_ip: str
    address_wait_seconds: float

    @property
    def live(self) -> Path:
        return self.config_dir / "live" / self.certificate_name


def read_settings(path: str) -> Settings:
    root = load(path)
    section = root.section(SECTION)
    return Settings(
        region=root.text("region"),
        parameters=section.text_lists("parameters"),
        config_dir=Path(section.text("config_dir")),
        certificate_name=section.text("certificate_name"),
        acme_directory=section.text("acme_directory"),
        saved_marker=Path(section.text("saved_marker")),
        unsaved=section.text("unsaved"),
        metrics_namespace=section.text("metrics_namespace"),
        days_left_metric=section.text("days_left_metric"),
        restore_outcome=Path(section.text("restore_outcome")),
        public_ip=section.text("public_ip"),
        address_wait_seconds=section.number("address_wait_seconds"),
    )


def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", flush=True)


def members(config_dir: Path, prefix: str) -> list[Path]:
    root = config_dir / prefix
    if prefix.startswith("archive/"):
        return []
    if prefix.startswith("live/"):
        return [path for link in sorted(root.glob("*.pem"))
                for path in (Path(os.path.normpath(link.parent / os.readlink(link))), link)]
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.is_dir() else [root]


def pack(config_dir: Path, prefixes: Iterable[str]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in (path for prefix in prefixes for path in members(config_dir, prefix)):
            info = tar.gettarinfo(str(path), str(path.relative_to(config_dir)))
            info.mtime = info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with path.open("rb") as content:
                    tar.addfile(info, content)
            else:
                tar.addfile(info)
    return base64.b64encode(gzip.compress(buffer.getvalue(), mtime=0)).decode()


def save(settings: Settings, *, unless_saved: bool) -> int:
    if not (settings.live / "fullchain.pem").exists():
        return 0
    values = {name: pack(settings.config_dir, prefixes) for name, prefixes in settings.parameters.items()}
    digest = hashlib.sha256("".join(values.values()).encode()).hexdigest()
    if unless_saved and settings.saved_marker.exists() and settings.saved_marker.read_text() == digest:
        return 0
    client = aws.ssm_client(settings.region)
    for name, value in values.items():
        client.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True, Tier=PARAMETER_TIER)
        log(f"saved {name} ({len(value)} bytes)")
    settings.saved_marker.parent.mkdir(parents=True, exist_ok=True)
    settings.saved_marker.write_text(digest)
    return 0


def check_members(name: str, tar: tarfile.TarFile, prefixes: Sequence[str]) -> None:
    for member in tar.getmembers():
        target = os.path.normpath(os.path.join(os.path.dirname(member.name), member.linkname))
        inside = member.name.startswith(tuple(prefixes)) and ".." not in member.name
        safe_link = member.issym() and not os.path.isabs(member.linkname) and not target.startswith("..")
        if not (inside and (member.isfile() or safe_link)):
            raise ValueError(f"{name} holds {member.name!r}, not only {list(prefixes)}")


def why_not_restored(settings: Settings, staged: Path) -> tuple[str, int, datetime.timedelta]:
    from cryptography import x509

    name = settings.certificate_name
    leaf = x509.load_pem_x509_certificate((staged / "live" / name / "cert.pem").read_bytes())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    try:
        covered = ipaddress.ip_address(name) in names.get_values_for_type(x509.IPAddress)
    except ValueError:
        covered = name in names.get_values_for_type(x509.DNSName)
    renewal = (staged / "renewal" / f"{name}.conf").read_text()
    left = leaf.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    why = ("it does not cover the name" if not covered
           else "it is from another ACME server" if f"server = {settings.acme_directory}\n" not in renewal
           else "it expires within the hour" if left < datetime.timedelta(hours=1) else "")
    return why, leaf.serial_number, left


def put_in_place(staged: Path, config_dir: Path) -> None:
    for path in sorted(staged.rglob("*")):
        target = config_dir / path.relative_to(staged)
        if path.is_dir():
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif path.is_symlink():
            target.unlink(missing_ok=True)
            target.symlink_to(os.readlink(path))
        else:
            shutil.copy2(path, target)
            target.chmod(0o600)


def record_outcome(settings: Settings, outcome: str) -> None:
    settings.restore_outcome.parent.mkdir(parents=True, exist_ok=True)
    settings.restore_outcome.write_text(outcome + "\n")


def restore(settings: Settings) -> int:
    if (settings.live / "fullchain.pem").exists():
        record_outcome(settings, RESTORED)
        return 0
    settings.config_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    client, staged = aws.ssm_client(settings.region), Path(tempfile.mkdtemp(dir=settings.config_dir))
    try:
        for name, prefixes in settings.parameters.items():
            try:
                value = client.get_parameter(Name=name, WithDecryption=True)["Parameter"].get("Value", "")
            except client.exceptions.ParameterNotFound:
                value = settings.unsaved
            if value == settings.unsaved:
                log(f"nothing saved in {name}; a certificate will be ordered")
                record_outcome(settings, "nothing saved")
                return 0
            with tarfile.open(fileobj=io.BytesIO(base64.b64decode(value)), mode="r:gz") as tar:
                check_members(name, tar, prefixes)
                tar.extractall(staged)
        why, serial, left = why_not_restored(settings, staged)
        if why:
            log(f"the saved certificate (serial {serial:x}) is not restored: {why}")
            record_outcome(settings, f"not restored: {why}")
            return 0
        put_in_place(staged, settings.config_dir)
        log(f"restored the certificate (serial {serial:x}, {left.total_seconds() / 3600:.0f} h left)")
        record_outcome(settings, RESTORED)
        return 0
    finally:
        shutil.rmtree(staged)


def report(settings: Settings) -> int:
    from cryptography import x509

    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = settings.live / "cert.pem"
    if certificate.exists():
        leaf = x509.load_pem_x509_certificate(certificate.read_bytes())
        days_left = max(0.0, round((leaf.not_valid_after_utc - now).total_seconds() / 86400, 2))
        what = f"{days_left} days left (serial {leaf.serial_number:x})"
    else:
        days_left, what = 0.0, f"no certificate for {settings.certificate_name} yet: 0 days left"
    aws.cloudwatch_client(settings.region).put_metric_data(
        Namespace=settings.metrics_namespace,
        MetricData=[{"MetricName": settings.days_left_metric, "Value": days_left, "Timestamp": now}],
    )
    log(f"reported {what} to {settings.metrics_namespace}")
    return 0


def wait_for_address(settings: Settings, sleep: Callable[[float], None] = time.sleep) -> int:
    deadline = time.monotonic() + settings.address_wait_seconds
    logged = ""
    while True:
        try:
            current = metadata.public_ipv4()
        except metadata.MetadataUnavailable as error:
            current = f"unknown ({error})"
        if current == settings.public_ip:
            log(f"the Elastic IP {settings.public_ip} is this instance's")
            return 0
        if current != logged:
            log(f"waiting for the Elastic IP {settings.public_ip} to reach this instance (its address now: "
                f"{current or 'none'})")
            logged = current
        if time.monotonic() >= deadline:
            log(f"the Elastic IP {settings.public_ip} did not reach this instance in "
                f"{settings.address_wait_seconds:.0f} s; the timer tries again")
            return 1
        sleep(ADDRESS_POLL_SECONDS)


def main(arguments: Sequence[str], settings_file: str) -> int:
    os.umask(0o077)
    command = list(arguments)
    if command not in (["save"], ["save", "--unless-saved"], ["restore"], ["report"], ["wait-for-address"]):
        sys.exit(USAGE)
    try:
        settings = read_settings(settings_file)
    except SettingsError as error:
        sys.exit(f"{PROGRAM}: {error}")
    if command == ["wait-for-address"]:
        return wait_for_address(settings)
    try:
        if command == ["report"]:
            return report(settings)
        return restore(settings) if command == ["restore"] else save(settings, unless_saved="--unless-saved" in command)
    except Exception as error:
        sys.exit(f"{PROGRAM}: {command[0]} failed: {type(error).__name__}: {error}")
