"""mlflow-fetch-programs SETTINGS_FILE: puts the host programs in place from their bundle in S3.

The user data carries the settings file, which names the bundle (bucket, key) and its sha256; the modules
themselves travel as that one object (userdata/programs.py, DESIGN decision 16). Run as root, with a venv's
Python for boto3 (MLflow's or certbot's, whichever unit starts first), before any host program: it fetches
the object with the instance role, refuses it unless its sha256 is the one the user data carries and it
holds only host_programs/*.py, and swaps it into place whole. A no-op once that bundle is in place.
Self-contained (this file is written by the user data itself, not taken from the bundle).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile

PROGRAM = "mlflow-fetch-programs"
MARKER = ".bundle-sha256"
MEMBER = re.compile(r"^host_programs/[a-z_]+\.py$")


def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def placed(directory: str) -> str:
    """The sha256 of the bundle in `directory` ("" when none is)."""
    try:
        with open(os.path.join(directory, MARKER), encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def checked_members(archive: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        members = tar.getmembers()
    strays = [member.name for member in members if not (member.isfile() and MEMBER.match(member.name))]
    if strays or not members:
        raise ValueError(f"the bundle holds {strays or 'nothing'}, not only host_programs/*.py")
    return members


def place(archive: bytes, directory: str, sha256: str) -> None:
    """The archive's modules, then the marker, into `directory`, which is replaced whole."""
    checked_members(archive)
    parent = os.path.dirname(directory.rstrip("/")) or "/"
    staging = tempfile.mkdtemp(dir=parent, prefix=".programs-")
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            for member in tar.getmembers():
                source = tar.extractfile(member)
                assert source is not None
                target = os.path.join(staging, member.name)
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                with open(target, "wb") as handle:
                    handle.write(source.read())
                os.chmod(target, 0o644)
        for root, _, _ in os.walk(staging):
            os.chmod(root, 0o755)
        with open(os.path.join(staging, MARKER), "w", encoding="utf-8") as handle:
            handle.write(sha256)
        retired = f"{directory}.retired"
        shutil.rmtree(retired, ignore_errors=True)
        if os.path.exists(directory):
            os.rename(directory, retired)
        os.rename(staging, directory)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        log(f"usage: {PROGRAM} SETTINGS_FILE")
        return 2
    with open(arguments[0], encoding="utf-8") as handle:
        settings = json.load(handle)
    bundle, region = settings["programs"], settings["region"]
    directory, wanted = bundle["directory"], bundle["sha256"]
    os.makedirs(os.path.dirname(directory.rstrip("/")) or "/", mode=0o755, exist_ok=True)
    with open(f"{directory}.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # MLflow's unit and the certificate's may start together
        if placed(directory) == wanted:
            return 0
        import boto3

        where = f"s3://{bundle['bucket']}/{bundle['key']}"
        try:
            archive = boto3.client("s3", region_name=region).get_object(
                Bucket=bundle["bucket"], Key=bundle["key"])["Body"].read()
        except Exception as error:  # botocore's errors name no secret
            log(f"cannot read {where}: {type(error).__name__}: {error}")
            return 1
        found = hashlib.sha256(archive).hexdigest()
        if found != wanted:
            log(f"REFUSED: {where} has sha256 {found}, not the {wanted} this host was launched with; nothing changed")
            return 1
        try:
            place(archive, directory, wanted)
        except (ValueError, tarfile.TarError) as error:
            log(f"REFUSED: {where}: {error}; nothing changed")
            return 1
        log(f"the host programs of {where} are in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
