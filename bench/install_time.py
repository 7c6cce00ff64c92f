"""Install time: the rendered install script (uv, bytecode compiled) against plain pip, cold caches.

Each run installs the server's pinned requirements twice from PyPI, in alternating order, each into a
fresh directory with fresh, empty caches:
  rendered  the user data's mlflow-install, paths remapped (includes its bootstrap of uv with pip)
  pip       `/usr/bin/python3 -m venv` + that venv's pip install of the same requirements (pip compiles
            bytecode by default, so both venvs end up with .pyc files; their counts are printed)
Target: rendered <= 1/3 of pip's time.

    .venv/bin/python -m bench.install_time [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import log, print_machine, print_table, ratio, summarize, verdict
from bench.host_install import INSTALL_TIMEOUT_SECONDS, clean_environment, run_install
from tests.support.loopback import loopback_settings
from userdata import pins

TARGET_RATIO = 1 / 3
SYSTEM_PYTHON = "/usr/bin/python3"


def bytecode_files(venv: Path) -> int:
    return sum(1 for _ in venv.glob("lib/python3*/site-packages/**/*.pyc"))


def time_rendered(work: Path) -> tuple[float, int]:
    start = time.monotonic()
    venv = run_install(work / "rendered", cache=work / "uv-cache", pip_cache=work / "pip-cache-bootstrap")
    elapsed = time.monotonic() - start
    return elapsed, bytecode_files(venv)


def time_pip(work: Path, requirements: list[str]) -> tuple[float, int]:
    venv = work / "pip" / "venv"
    env = clean_environment(pip_cache=work / "pip-cache")
    start = time.monotonic()
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], env=env, check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *requirements], env=env, check=True,
                   timeout=INSTALL_TIMEOUT_SECONDS)
    elapsed = time.monotonic() - start
    return elapsed, bytecode_files(venv)


def pip_version() -> str:
    with tempfile.TemporaryDirectory(prefix="bench-pip-version-") as work:
        venv = Path(work) / "venv"
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, timeout=120)
        result = subprocess.run([str(venv / "bin" / "pip"), "--version"], capture_output=True, text=True,
                                check=True, timeout=60)
        return result.stdout.split(" from ")[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    requirements = pins.python_requirements(loopback_settings().mlflow_version)
    print_machine()
    print(f"requirements: {' '.join(requirements)}; python: {SYSTEM_PYTHON}; {pip_version()}; uv {pins.UV_VERSION}")

    rendered_times: list[float] = []
    pip_times: list[float] = []
    rows: list[list[object]] = []
    for run in range(args.runs):
        order = ["rendered", "pip"] if run % 2 == 0 else ["pip", "rendered"]
        figures: dict[str, tuple[float, int]] = {}
        for method in order:
            work = Path(tempfile.mkdtemp(prefix=f"bench-install-{method}-"))
            try:
                log(f"run {run + 1}/{args.runs}: {method}")
                figures[method] = time_rendered(work) if method == "rendered" else time_pip(work, requirements)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        rendered_times.append(figures["rendered"][0])
        pip_times.append(figures["pip"][0])
        rows.append([run + 1, " then ".join(order), f"{figures['rendered'][0]:.1f}", f"{figures['pip'][0]:.1f}",
                     f"{ratio(figures['rendered'][0], figures['pip'][0]):.2f}",
                     figures["rendered"][1], figures["pip"][1]])
        log(f"run {run + 1}: rendered {figures['rendered'][0]:.1f} s, pip {figures['pip'][0]:.1f} s")

    print_table("Install time per run (s, cold caches)",
                ["run", "order", "rendered (uv)", "pip", "rendered/pip", ".pyc rendered", ".pyc pip"], rows)
    ratios = [ratio(r, p) for r, p in zip(rendered_times, pip_times, strict=True)]
    ratio_summary = summarize(ratios)
    print_table("Install time", ["figure", "median (min, max)", "target", "result"], [
        ["rendered install script (s)", summarize(rendered_times).show(1), "", ""],
        ["python -m venv + pip install (s)", summarize(pip_times).show(1), "", ""],
        ["rendered / pip (per run)", ratio_summary.show(2), f"<= {TARGET_RATIO:.2f}",
         verdict(ratio_summary.median <= TARGET_RATIO)],
    ])


if __name__ == "__main__":
    main()
