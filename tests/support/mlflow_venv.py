"""A venv holding another MLflow release than the project's, built with uv and kept between runs.

The upgrade tests run the loopback stack's configure step and server from it (the stack's
`replacements` map the host venv to it). Built once per release and cached under
~/.cache/mlflow-aws-tests (MLFLOW_AWS_TEST_CACHE overrides); a complete venv has a marker file, so an
interrupted build is redone rather than used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from userdata import pins

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


def mlflow_venv(mlflow_version: str) -> Path:
    """The venv for `mlflow_version` (built now if missing); its bin/mlflow is that release's CLI."""
    root = cache_home() / f"mlflow-{mlflow_version}-py{sys.version_info.major}.{sys.version_info.minor}"
    if (root / _MARKER).exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    uv = uv_executable()
    steps = [
        [uv, "venv", "--quiet", "--python", sys.executable, str(root)],
        [uv, "pip", "install", "--quiet", "--python", str(root / "bin" / "python"), *requirements(mlflow_version)],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, check=False)
        if result.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"building the MLflow {mlflow_version} venv failed: {' '.join(step[:3])}:\n"
                               f"{result.stderr[-3000:]}")
    (root / _MARKER).write_text(mlflow_version + "\n")
    return root
