"""mlflow-certificate-state: certbot's ACME account and certificate in SSM SecureStrings (each a base64
tar.gz), so a new host restores them instead of ordering; run in certbot's venv.

save: certbot's deploy hook (--unless-saved: the renewal timer's retry, a no-op when what SSM holds is
what is on disk); restore: before any order, and only a certificate that covers the name, comes from
the same ACME server and is valid another hour. Prints names, sizes and serials, never a value.
"""

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from host_programs import aws
from host_programs.settings_file import SettingsError, load

PROGRAM = "mlflow-certificate-state"
SECTION = "certificate_state"
USAGE = f"usage: {PROGRAM} save [--unless-saved] | restore"
# SSM's Intelligent-Tiering: standard up to 4 KB, advanced (8 KB) above.
PARAMETER_TIER: Final[Literal["Intelligent-Tiering"]] = "Intelligent-Tiering"


@dataclass(frozen=True)
class Settings:
    region: str
    parameters: dict[str, list[str]]  # SSM parameter -> what it holds: path prefixes below config_dir
    config_dir: Path  # certbot's --config-dir
    certificate_name: str  # certbot's --cert-name: the public hostname
    acme_directory: str  # the ACME server a restored certificate must come from
    saved_marker: Path  # digest of the state last put to SSM
    unsaved: str  # the value the stack creates the parameters with: nothing saved yet

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
    )


def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", flush=True)


def members(config_dir: Path, prefix: str) -> list[Path]:
    root = config_dir / prefix
    if prefix.startswith("archive/"):
        return []  # with live/: only the version it links to
    if prefix.startswith("live/"):
        return [path for link in sorted(root.glob("*.pem"))
                for path in (Path(os.path.normpath(link.parent / os.readlink(link))), link)]
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.is_dir() else [root]


def pack(config_dir: Path, prefixes: Iterable[str]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:  # fixed metadata: same files, same value
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
    """Only regular files and relative links inside `prefixes`: tarfile's own "data" filter needs
    Python 3.11.4."""
    for member in tar.getmembers():
        target = os.path.normpath(os.path.join(os.path.dirname(member.name), member.linkname))
        inside = member.name.startswith(tuple(prefixes)) and ".." not in member.name
        safe_link = member.issym() and not os.path.isabs(member.linkname) and not target.startswith("..")
        if not (inside and (member.isfile() or safe_link)):
            raise ValueError(f"{name} holds {member.name!r}, not only {list(prefixes)}")


def why_not_restored(settings: Settings, staged: Path) -> tuple[str, int, datetime.timedelta]:
    """(why the staged certificate must not be used, or "", its serial, how long it is still valid)."""
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
    """Into place once all is read and checked; keys and account root's alone, whatever mode they had."""
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


def restore(settings: Settings) -> int:
    if (settings.live / "fullchain.pem").exists():
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
                return 0
            with tarfile.open(fileobj=io.BytesIO(base64.b64decode(value)), mode="r:gz") as tar:
                check_members(name, tar, prefixes)
                tar.extractall(staged)  # every member checked above
        why, serial, left = why_not_restored(settings, staged)
        if why:
            log(f"the saved certificate (serial {serial:x}) is not restored: {why}")
            return 0
        put_in_place(staged, settings.config_dir)
        log(f"restored the certificate (serial {serial:x}, {left.total_seconds() / 3600:.0f} h left)")
        return 0
    finally:
        shutil.rmtree(staged)


def main(arguments: Sequence[str], settings_file: str) -> int:
    os.umask(0o077)
    command = list(arguments)
    if command not in (["save"], ["save", "--unless-saved"], ["restore"]):
        sys.exit(USAGE)
    try:
        settings = read_settings(settings_file)
    except SettingsError as error:
        sys.exit(f"{PROGRAM}: {error}")
    try:
        return restore(settings) if command == ["restore"] else save(settings, unless_saved="--unless-saved" in command)
    except Exception as error:  # boto3's and tarfile's errors name no secret
        sys.exit(f"{PROGRAM}: {command[0]} failed: {type(error).__name__}: {error}")
