"""A venv holding another MLflow release than the project's, or the host's `auth: oidc` requirements,
built with uv and kept between runs, with the server guard installed into it as the host's install step
does (the rendered ExecStart selects it).

The upgrade tests run the loopback stack's configure step and server from it (the stack's
`replacements` map the host venv to it); so do the auth: oidc tests, whose venv holds mlflow-oidc-auth,
resolved as the host resolves it, on a Python the plugin imports on (3.12 or newer, as Ubuntu 24.04's).
Built once per release and cached under ~/.cache/mlflow-aws-tests (MLFLOW_AWS_TEST_CACHE overrides); a
complete venv has a marker file, so an interrupted build is redone rather than used.
"""

from __future__ import annotations

import fcntl
import hashlib
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


# mlflow-oidc-auth imports only on Python 3.12 and newer (userdata/pins.py); the host has Ubuntu 24.04's 3.12.
OIDC_MIN_PYTHON = (3, 12)


def requirements(mlflow_version: str, auth: str = "basic") -> list[str]:
    # What the host installs (userdata.pins), so the release is tested with the host's drivers.
    return [*pins.resolution_options(mlflow_version), *pins.python_requirements(mlflow_version, auth=auth)]


def python_for_oidc() -> str | None:
    """A Python the OIDC plugin imports on: python3.12 or newer on the PATH, or one pyenv installed."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(OIDC_MIN_PYTHON[1], 16)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv.is_dir():
        candidates += [str(path) for path in sorted(pyenv.glob("3.1[2-9]*/bin/python3"))]
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] >= (3, 12))"],
                               capture_output=True, text=True, timeout=30, check=False)
        if probe.stdout.strip() == "True":
            return candidate
    return None


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


def mlflow_venv(mlflow_version: str, *, auth: str = "basic", python: str | None = None) -> Path:
    """The venv for `mlflow_version` (built now if missing); its bin/mlflow is that release's CLI. With
    auth "oidc" it holds mlflow-oidc-auth too, on `python` (python_for_oidc()). Built under a lock, so
    two test runs on one machine never build the same venv at once."""
    cache_home().mkdir(parents=True, exist_ok=True)
    with open(cache_home() / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _built_venv(mlflow_version, auth, python or sys.executable)


def _built_venv(mlflow_version: str, auth: str, interpreter: str) -> Path:
    # One directory per release and guard: checkouts with different guards (worktrees, CI runners on one
    # machine) never rebuild each other's venv under a running test.
    version = subprocess.run([interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    python = f"py{version}"
    flavour = "" if auth == "basic" else f"-{auth}"
    wanted = requirements(mlflow_version, auth)
    complete = f"{' '.join(wanted)} guard {guard.digest()}\n"
    # Named by what it holds, so checkouts that want other contents never rebuild this one.
    digest = hashlib.sha256(complete.encode()).hexdigest()[:12]
    root = cache_home() / f"mlflow-{mlflow_version}{flavour}-{python}-{digest}"
    if (root / _MARKER).exists() and (root / _MARKER).read_text() == complete:
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    uv = uv_executable()
    steps = [
        [uv, "venv", "--quiet", "--python", interpreter, str(root)],
        [uv, "pip", "install", "--quiet", "--python", str(root / "bin" / "python"), *wanted],
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
