"""A venv holding another MLflow release than the project's, built with uv and kept between runs, with
the server guard installed into it as the host's install step does (the rendered ExecStart selects it).

The upgrade tests run the loopback stack's configure step and server from it (the stack's
`replacements` map the host venv to it). Built once per release and cached under
~/.cache/mlflow-aws-tests (MLFLOW_AWS_TEST_CACHE overrides); a complete venv has a marker file, so an
interrupted build is redone rather than used.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

from userdata import guard, layout, pins

BUILD_TIMEOUT_SECONDS = 900.0
_MARKER = ".mlflow-aws-complete"


def cache_home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlflow-aws-tests"
    return Path(os.environ.get("MLFLOW_AWS_TEST_CACHE", default))


def requirements(mlflow_version: str) -> list[str]:
    # What the host installs (userdata.pins), so the release is tested with the host's drivers.
    return pins.python_requirements(mlflow_version)


def uv_executable() -> str:
    """uv from the project venv, the PATH, or where scripts/_setup.sh installs it (~/.local/bin)."""
    found = (shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
             or shutil.which("uv", path=str(Path.home() / ".local" / "bin")))
    if found is None:
        raise RuntimeError("uv is not installed: ./scripts/test installs it, or .venv/bin/python -m pip install uv")
    return found


def write_guard_source(directory: Path) -> Path:
    """The guard's files as the user data writes them on the host, under `directory`."""
    for file in guard.guard_files():
        target = directory / Path(file.path).relative_to(layout.GUARD_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.content, encoding="utf-8")
    return directory


def mlflow_venv(mlflow_version: str) -> Path:
    """The venv for `mlflow_version` (built now if missing); its bin/mlflow is that release's CLI.
    Built under a lock, so two test runs on one machine never build the same venv at once."""
    cache_home().mkdir(parents=True, exist_ok=True)
    with open(cache_home() / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _built_venv(mlflow_version)


def _built_venv(mlflow_version: str) -> Path:
    # One directory per release and guard: checkouts with different guards (worktrees, CI runners on one
    # machine) never rebuild each other's venv under a running test.
    python = f"py{sys.version_info.major}.{sys.version_info.minor}"
    root = cache_home() / f"mlflow-{mlflow_version}-{python}-guard-{guard.digest()[:12]}"
    complete = f"{mlflow_version} guard {guard.digest()}\n"
    if (root / _MARKER).exists() and (root / _MARKER).read_text() == complete:
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    uv = uv_executable()
    steps = [
        [uv, "venv", "--quiet", "--python", sys.executable, str(root)],
        [uv, "pip", "install", "--quiet", "--python", str(root / "bin" / "python"), *requirements(mlflow_version)],
        [uv, "pip", "install", "--quiet", "--python", str(root / "bin" / "python"),
         str(write_guard_source(root.parent / f"server-guard-{guard.digest()[:12]}"))],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, check=False)
        if result.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"building the MLflow {mlflow_version} venv failed: {' '.join(step[:3])}:\n"
                               f"{result.stderr[-3000:]}")
    (root / _MARKER).write_text(complete)
    return root
