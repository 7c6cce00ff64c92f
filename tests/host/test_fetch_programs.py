"""The host programs' bundle, fetched as the host fetches it: the rendered mlflow-fetch-programs, with the
instance role's session (the metadata stand-in) against moto with authorization on, the object uploaded
as the program uploads it (tests/support/loopback.py: put_programs_bundle). DESIGN decision 16."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator

import pytest

import userdata
from tests.host.conftest import require_host_binaries
from tests.support import host_role
from tests.support.loopback import LoopbackStack, loopback_settings
from userdata import layout, programs

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def stack() -> Iterator[LoopbackStack]:
    require_host_binaries()
    stack = LoopbackStack(loopback_settings(tls="letsencrypt"), start=False)
    try:
        stack.prepare()
        yield stack
    finally:
        stack.close()


def fetch(stack: LoopbackStack) -> subprocess.CompletedProcess[str]:
    """The rendered fetch step as a unit runs it, its paths remapped into the stack's tree."""
    command = stack.remap(programs.fetch_command(sys.executable)).split()
    return subprocess.run(command, env={"PATH": "/usr/bin:/bin", **stack.aws_environment()},
                          capture_output=True, text=True, timeout=120, check=False)


def placed(stack: LoopbackStack) -> dict[str, str]:
    root = stack.path(layout.HOST_PROGRAMS_DIR)
    return {f"{layout.HOST_PROGRAMS_DIR}/{path.relative_to(root)}": path.read_text()
            for path in sorted(root.rglob("*.py"))}


def clear(stack: LoopbackStack) -> None:
    target = stack.path(layout.HOST_PROGRAMS_DIR)
    for path in sorted(target.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()


def test_the_fetch_puts_the_bundles_modules_in_place_once(stack: LoopbackStack) -> None:
    clear(stack)
    first = fetch(stack)
    assert first.returncode == 0, first.stderr
    wanted = programs.bundle_files(userdata.host_programs(stack.settings))
    assert placed(stack) == wanted
    mode = stack.path(f"{layout.HOST_PROGRAMS_DIR}/host_programs/configure.py").stat().st_mode & 0o777
    assert mode == 0o644, "the server's user reads the modules"
    again = fetch(stack)
    assert again.returncode == 0 and "are in" not in again.stderr, "a bundle in place is not fetched again"


def test_an_object_whose_sha256_differs_is_refused_and_nothing_changes(stack: LoopbackStack) -> None:
    clear(stack)
    shipped = userdata.programs_bundle(stack.settings)
    stack.s3_client().put_object(Bucket=stack.bucket, Key=shipped.key, Body=shipped.archive + b"\0" * 512)
    try:
        refused = fetch(stack)
    finally:
        stack.put_programs_bundle()
    assert refused.returncode == 1
    assert f"REFUSED: s3://{stack.bucket}/{shipped.key} has sha256" in refused.stderr
    assert f"not the {shipped.sha256} this host was launched with; nothing changed" in refused.stderr
    assert placed(stack) == {}


def test_a_bundle_holding_more_than_the_programs_is_refused(stack: LoopbackStack) -> None:
    clear(stack)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("etc/cron.d/evil")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"* * "))
    stray = buffer.getvalue()
    settings_file = stack.path(layout.HOST_SETTINGS)
    original = settings_file.read_text()
    document = json.loads(original)
    document["programs"]["sha256"] = hashlib.sha256(stray).hexdigest()
    document["programs"]["key"] = "mlflow-aws-host-programs/stray.tar"
    settings_file.write_text(json.dumps(document))
    stack.s3_client().put_object(Bucket=stack.bucket, Key="mlflow-aws-host-programs/stray.tar", Body=stray)
    try:
        refused = fetch(stack)
    finally:
        settings_file.write_text(original)
    assert refused.returncode == 1
    assert "holds ['etc/cron.d/evil'], not only host_programs/*.py" in refused.stderr
    assert placed(stack) == {}


def test_without_the_instance_roles_right_to_read_the_bucket_the_fetch_says_why() -> None:
    without_reading = host_role.without_action("s3:GetObject")
    with LoopbackStack(loopback_settings(), start=False, policy_change=without_reading) as stack:
        stack.prepare()
        refused = fetch(stack)
    assert refused.returncode == 1
    assert "cannot read s3://" in refused.stderr and "AccessDenied" in refused.stderr
