"""Install time: the rendered install script (uv) against plain pip, cold caches.

Each run installs the server's pinned requirements from PyPI once per method, each method first in
turn, each into a fresh directory with fresh, empty caches:
  rendered  the user data's mlflow-install, paths remapped (includes its bootstrap of uv with pip)
  pip       `/usr/bin/python3 -m venv` + that venv's pip install of the same requirements (pip compiles
            every module's bytecode by default; each venv's count of .pyc files is printed)
  (--with-other-bytecode) the rendered script with uv's --compile-bytecode flipped, an experiment
Target: rendered <= 1/3 of pip's time.

    .venv/bin/python -m bench.install_time [--runs 5] [--with-other-bytecode]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import log, print_machine, print_table, ratio, summarize, verdict
from bench.host_install import INSTALL_TIMEOUT_SECONDS, clean_environment, renders_compiled, run_install
from tests.support.loopback import loopback_settings
from userdata import pins

TARGET_RATIO = 1 / 3
SYSTEM_PYTHON = "/usr/bin/python3"


def bytecode_files(venv: Path) -> int:
    return sum(1 for _ in venv.glob("lib/python3*/site-packages/**/*.pyc"))


def time_rendered(work: Path, *, compile_bytecode: bool | None = None) -> tuple[float, int]:
    start = time.monotonic()
    venv = run_install(work / "rendered", cache=work / "uv-cache", pip_cache=work / "pip-cache-bootstrap",
                       compile_bytecode=compile_bytecode)
    elapsed = time.monotonic() - start
    return elapsed, bytecode_files(venv)


def time_pip(work: Path, *, requirements: list[str]) -> tuple[float, int]:
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
    parser.add_argument("--with-other-bytecode", action="store_true",
                        help="also time the rendered script with uv's --compile-bytecode flipped (an experiment)")
    args = parser.parse_args(argv)

    requirements = pins.python_requirements(loopback_settings().mlflow_version)
    print_machine()
    print(f"requirements: {' '.join(requirements)}; python: {SYSTEM_PYTHON}; {pip_version()}; uv {pins.UV_VERSION}")

    methods: dict[str, Callable[[Path], tuple[float, int]]] = {
        "rendered": time_rendered,
        "pip": functools.partial(time_pip, requirements=requirements),
    }
    if args.with_other_bytecode:
        compiled = renders_compiled()
        label = "rendered without --compile-bytecode" if compiled else "rendered + --compile-bytecode"
        methods[label] = functools.partial(time_rendered, compile_bytecode=not compiled)
    names = list(methods)
    times: dict[str, list[float]] = {name: [] for name in names}
    rows: list[list[object]] = []
    for run in range(args.runs):
        order = names[run % len(names):] + names[:run % len(names)]  # each method goes first in turn
        figures: dict[str, tuple[float, int]] = {}
        for method in order:
            work = Path(tempfile.mkdtemp(prefix="bench-install-"))
            try:
                log(f"run {run + 1}/{args.runs}: {method}")
                figures[method] = methods[method](work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            times[method].append(figures[method][0])
        rows.append([run + 1, " > ".join(order), *(f"{figures[n][0]:.1f}" for n in names),
                     *(f"{ratio(figures[n][0], figures['pip'][0]):.2f}" for n in names if n != "pip"),
                     *(figures[n][1] for n in names)])
        log(f"run {run + 1}: " + ", ".join(f"{n} {figures[n][0]:.1f} s" for n in names))

    others = [n for n in names if n != "pip"]
    print_table("Install time per run (s, cold caches)",
                ["run", "order", *names, *(f"{n} / pip" for n in others), *(f".pyc {n}" for n in names)], rows)
    summary_rows: list[list[object]] = [[f"{n} (s)", summarize(times[n]).show(1), "", ""] for n in names]
    for name in others:
        ratios = summarize(ratio(a, b) for a, b in zip(times[name], times["pip"], strict=True))
        target = f"<= {TARGET_RATIO:.2f}"
        summary_rows.append([f"{name} / pip (per run)", ratios.show(2), target, verdict(ratios.median <= TARGET_RATIO)])
    print_table("Install time", ["figure", "median (min, max)", "target", "result"], summary_rows)


if __name__ == "__main__":
    main()
