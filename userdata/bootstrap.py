"""The user data's part of DESIGN decision 16: the bootstrap program (host_programs/bootstrap.py) and the two
commands that run it, with the host-files object's bucket, key and sha256.

cloud-init runs `bootcmd` before `write_files`, so the program cannot be a write_files entry: the first
bootcmd entry writes it from a here-document (on every boot, the same bytes), the second runs its early stage
(the files not deferred, before the packages); the first runcmd entry runs its deferred stage (after the
packages and the users), where cloud-init's write_files_deferred would have written them. The program travels
lean (userdata.pysource), with the system python3 as its interpreter: it needs nothing else.
"""

from __future__ import annotations

from pathlib import Path

from host_programs import bootstrap
from userdata import layout
from userdata.bundle import HostBundle
from userdata.pysource import lean
from userdata.settings import HostSettings

EXECUTABLE = f"{layout.SBIN_DIR}/{bootstrap.PROGRAM}"
INTERPRETER = "/usr/bin/python3"  # Ubuntu 24.04's (and every cloud image's): cloud-init runs on it
HERE_DOCUMENT_END = "MLFLOW_AWS_HOST_FILES"
SOURCE = Path(bootstrap.__file__)


def program_text() -> str:
    return f"#!{INTERPRETER}\n" + lean(SOURCE.read_text(encoding="utf-8"))


def install_command() -> str:
    """The shell that writes the program (a quoted here-document: nothing in it is expanded)."""
    text = program_text()
    if HERE_DOCUMENT_END in text.splitlines():
        raise ValueError(f"{SOURCE} has a line {HERE_DOCUMENT_END}, which would end its here-document")
    return (f"cat > {EXECUTABLE} <<'{HERE_DOCUMENT_END}'\n{text}{HERE_DOCUMENT_END}\n"
            f"chmod 0755 {EXECUTABLE}\n")


def command(s: HostSettings, bundle: HostBundle, stage: str) -> list[str]:
    if stage not in bootstrap.STAGES:
        raise ValueError(f"no bootstrap stage {stage!r}; one of {bootstrap.STAGES}")
    if not s.host_files_bucket:
        raise ValueError("host_files_bucket is empty: the host would not know where its files are")
    return [EXECUTABLE, "--region", s.region, "--bucket", s.host_files_bucket, "--key", bundle.key,
            "--sha256", bundle.sha256, stage]
