"""The server guard's files on the host: server_guard/ as the tests import it (lean: without its
docstrings and comments, userdata.pysource), plus the pyproject.toml the install step builds it with
into MLflow's venv. `digest()` goes into the install marker, so a changed guard reinstalls.

A module only one auth mode runs (AUTH_ONLY_MODULES) travels only to hosts of that mode: user data is
a budget (DESIGN decision 16). Without an `auth`, every module (the tests' venvs hold them all).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import server_guard
from userdata import layout
from userdata.files import HostFile
from userdata.pysource import lean
from userdata.template import fill

PACKAGE_DIR = Path(server_guard.__file__).parent
PACKAGE = PACKAGE_DIR.name
# setuptools builds the guard in uv's isolated build environment (resolved like the rest of the venv).
SETUPTOOLS_VERSION = "80.9.0"
VERSION = "1.0.0"
AUTH_ONLY_MODULES = {"oidc.py": "oidc"}


def source_files(auth: str | None = None) -> dict[str, str]:
    """Module file name -> source text (lean): the modules a host with `auth` runs, or all of them."""
    return {path.name: lean(path.read_text(encoding="utf-8")) for path in sorted(PACKAGE_DIR.glob("*.py"))
            if auth is None or AUTH_ONLY_MODULES.get(path.name, auth) == auth}


def pyproject() -> str:
    return fill(
        "server-guard-pyproject.toml",
        distribution=server_guard.DISTRIBUTION,
        version=VERSION,
        setuptools_version=SETUPTOOLS_VERSION,
        package=PACKAGE,
        app_name=server_guard.APP_NAME,
        entry_point=server_guard.ENTRY_POINT,
    )


def guard_files(auth: str | None = None) -> list[HostFile]:
    files = [HostFile(f"{layout.GUARD_DIR}/pyproject.toml", pyproject())]
    files += [HostFile(f"{layout.GUARD_DIR}/{PACKAGE}/{name}", text) for name, text in source_files(auth).items()]
    return files


def digest(auth: str | None = None) -> str:
    """sha256 over every guard file's path and content: the install marker's record of the guard."""
    hashed = hashlib.sha256()
    for file in guard_files(auth):
        hashed.update(f"{file.path}\0{len(file.content)}\0{file.content}".encode())
    return hashed.hexdigest()
