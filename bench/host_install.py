"""The host's rendered install script (userdata: mlflow-install), run on this machine.

Its paths are remapped into a directory of ours: the venv (`/opt/mlflow/venv`), uv's own venv
(`/opt/uv`) and uv's cache (`/var/cache/uv`). Everything else, the commands, the pins and
`/usr/bin/python3`, is the rendered text. The loopback benches run MLflow from a venv made this way
instead of the project's venv (which may lack bytecode and is not what the host runs).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.loopback import host_file_contents, loopback_settings, remap
from userdata import layout
from userdata.settings import HostSettings

INSTALL_TIMEOUT_SECONDS = 1800.0
CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlflow-aws-bench"

# Variables that would point pip or uv at local wheels, mirrors or caches instead of PyPI, or keep
# them from writing bytecode. The benches install from PyPI as the host does.
_INDEX_VARIABLES = ("PIP_", "UV_", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")


COMPILE_FLAG = " --compile-bytecode"
# Where the flag goes when an experiment adds it back: uv's install line names the venv's python.
_COMPILE_ANCHOR = 'pip install --quiet --python "$venv/bin/python"'


def rendered_install_script(settings: HostSettings | None = None, *, compile_bytecode: bool | None = None) -> str:
    """The rendered mlflow-install. compile_bytecode None: as rendered; True/False: uv's
    --compile-bytecode added or removed (an experiment against the rendered choice)."""
    text = host_file_contents(settings or loopback_settings())[layout.INSTALL_SCRIPT]
    if compile_bytecode is None or (COMPILE_FLAG in text) == compile_bytecode:
        return text
    if not compile_bytecode:
        return text.replace(COMPILE_FLAG, "")
    if _COMPILE_ANCHOR not in text:
        raise KeyError(f"the rendered install script has no {_COMPILE_ANCHOR!r} to add --compile-bytecode to")
    return text.replace(_COMPILE_ANCHOR, _COMPILE_ANCHOR + COMPILE_FLAG)


def renders_compiled() -> bool:
    """Whether the rendered install script compiles bytecode at install time."""
    return COMPILE_FLAG in rendered_install_script()


def install_replacements(root: Path, *, cache: Path) -> dict[str, str]:
    return {layout.VENV_DIR: str(root / "venv"), layout.UV_DIR: str(root / "uv"), layout.UV_CACHE_DIR: str(cache),
            layout.GUARD_DIR: str(root / "server-guard")}


def write_guard_files(root: Path, settings: HostSettings | None = None) -> None:
    """The server guard's files as the user data writes them, where the remapped install script reads them."""
    for host_path, content in host_file_contents(settings or loopback_settings()).items():
        if host_path.startswith(layout.GUARD_DIR + "/"):
            target = Path(remap(host_path, install_replacements(root, cache=root)))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)


def clean_environment(*, pip_cache: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without pip/uv settings; pip reads no config file (this machine's
    points at a local wheel mirror) and caches in `pip_cache`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_INDEX_VARIABLES)}
    cert = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    if cert:
        env["PIP_CERT"] = cert
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_CACHE_DIR"] = str(pip_cache)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra or {})
    return env


def write_install_script(root: Path, *, cache: Path, settings: HostSettings | None = None,
                         compile_bytecode: bool | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    script = root / "mlflow-install"
    text = rendered_install_script(settings, compile_bytecode=compile_bytecode)
    script.write_text(remap(text, install_replacements(root, cache=cache)))
    script.chmod(0o755)
    write_guard_files(root, settings)
    return script


def run_install(root: Path, *, cache: Path, pip_cache: Path, settings: HostSettings | None = None,
                compile_bytecode: bool | None = None) -> Path:
    """Run the rendered install script into root/venv; returns the venv. Raises on failure."""
    script = write_install_script(root, cache=cache, settings=settings, compile_bytecode=compile_bytecode)
    result = subprocess.run([str(script)], env=clean_environment(pip_cache=pip_cache), capture_output=True,
                            text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the rendered install script failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return root / "venv"


def host_venv(settings: HostSettings | None = None, *, compile_bytecode: bool | None = None) -> Path:
    """A venv made by the rendered install script, kept between bench runs (keyed by the script's
    text), with a warm uv cache beside it."""
    text = rendered_install_script(settings, compile_bytecode=compile_bytecode)
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    root = CACHE_HOME / f"host-{key}"
    venv = root / "venv"
    if not (venv / "bin" / "mlflow").exists():
        print(f"building the host venv with the rendered install script in {root}", file=sys.stderr, flush=True)
        run_install(root, cache=CACHE_HOME / "uv-cache", pip_cache=CACHE_HOME / "pip-cache", settings=settings,
                    compile_bytecode=compile_bytecode)
    return venv
