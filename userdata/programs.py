"""The host's own programs (host_programs/) on the host: the settings file they read, the package's modules
they import, and one executable per program.

Each module goes to layout.HOST_PROGRAMS_DIR lean (userdata.pysource: without docstrings and comments,
the same syntax tree), and only the modules some program imports, found by reading their imports. An
executable is five lines: its venv's Python, that directory first on `sys.path`, and the program's
`main(arguments, settings file)`. So MLflow's venv and certbot's import the same files, and what the
programs share exists once on the host as here.

The modules travel outside the user data (DESIGN decision 16: EC2 takes 16 KiB, and they are most of it):
`bundle()` packs them into one tar, which the program uploads to the artifact bucket as an object named
by its sha256 (components/launch_shape.py); the settings file carries the object's key and sha256, so a
changed module still changes the user data (and so the host), and mlflow-fetch-programs, run before any
host program with a venv's Python (boto3), puts them in place and refuses an object whose hash differs.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import host_programs
from userdata import layout
from userdata.files import HostFile
from userdata.pysource import lean
from userdata.settings import HostSettings

PACKAGE_DIR = Path(host_programs.__file__).parent
PACKAGE = host_programs.__name__
# Where the bundle lives in the artifact bucket: a prefix no experiment's artifacts use (MLflow's artifact
# paths start with an experiment id), which basic-auth gives no user the right to write.
BUNDLE_PREFIX = "mlflow-aws-host-programs"
FETCH_SCRIPT = f"{layout.SBIN_DIR}/mlflow-fetch-programs"


@dataclass(frozen=True)
class HostProgram:
    path: str  # the executable the units and scripts run
    python: str  # the interpreter of the venv it runs in
    module: ModuleType  # the host_programs module whose main() it runs; its SECTION names its settings
    settings: Callable[[HostSettings], dict[str, Any]]  # its section of the settings file

    @property
    def section(self) -> str:
        section: str = self.module.SECTION
        return section


def executable(program: HostProgram) -> str:
    return (
        f"#!{program.python}\n"
        "import sys\n"
        f"sys.path.insert(0, {layout.HOST_PROGRAMS_DIR!r})\n"
        f"from {program.module.__name__} import main\n"
        f"sys.exit(main(sys.argv[1:], {layout.HOST_SETTINGS!r}))\n"
    )


@dataclass(frozen=True)
class Bundle:
    """The shipped modules as one tar: the same files give the same bytes (and so the same key)."""

    archive: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.archive).hexdigest()

    @property
    def key(self) -> str:
        return f"{BUNDLE_PREFIX}/{self.sha256}.tar"


def bundle(programs: Iterable[HostProgram]) -> Bundle:
    """Every shipped module, lean, under host_programs/, with fixed metadata (no time, owner or mode of
    this machine's)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, text in sorted(source_files(programs).items()):
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"{PACKAGE}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return Bundle(buffer.getvalue())


def settings_document(s: HostSettings, programs: Iterable[HostProgram]) -> dict[str, Any]:
    """What the settings file holds: the region every program signs its AWS calls for, where the programs'
    bundle is (read by mlflow-fetch-programs), and one section per program."""
    listed = list(programs)
    shipped = bundle(listed)
    where = {"bucket": s.artifact_bucket, "key": shipped.key, "sha256": shipped.sha256,
             "directory": layout.HOST_PROGRAMS_DIR}
    return {"region": s.region, "programs": where, **{program.section: program.settings(s) for program in listed}}


def settings_text(s: HostSettings, programs: Iterable[HostProgram]) -> str:
    return json.dumps(settings_document(s, programs), indent=2) + "\n"


def imported_modules(module: str) -> set[str]:
    """The package's modules `module` imports (by their dotted names), read from its source."""
    source = (PACKAGE_DIR / f"{module.rpartition('.')[2]}.py").read_text(encoding="utf-8")
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise ValueError(f"{module} imports relatively; the package's modules import by absolute name")
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(f"{PACKAGE}."))
        elif isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            found.update(f"{PACKAGE}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(f"{PACKAGE}."):
            found.add(node.module)
    return found


def shipped_modules(programs: Iterable[HostProgram]) -> list[str]:
    """Every module the programs import, directly or not, and the package itself."""
    wanted = [program.module.__name__ for program in programs]
    shipped: set[str] = set()
    while wanted:
        module = wanted.pop()
        if module not in shipped:
            shipped.add(module)
            wanted.extend(imported_modules(module))
    return [PACKAGE, *sorted(shipped)]


def module_file_name(module: str) -> str:
    return "__init__.py" if module == PACKAGE else f"{module.rpartition('.')[2]}.py"


def source_files(programs: Iterable[HostProgram]) -> dict[str, str]:
    """File name -> source text (lean) of every shipped module."""
    names = [module_file_name(module) for module in shipped_modules(programs)]
    return {name: lean((PACKAGE_DIR / name).read_text(encoding="utf-8")) for name in names}


def fetch_command(python: str) -> str:
    """What a unit runs (as root) before its host program: the bundle in place, with `python`'s boto3."""
    # -B: root writes no bytecode into the server's cache (mlflow.service's PYTHONPYCACHEPREFIX).
    return f"{python} -B {FETCH_SCRIPT} {layout.HOST_SETTINGS}"


def program_files(s: HostSettings, programs: list[HostProgram]) -> list[HostFile]:
    """The settings file, the fetch step, then the executables (the modules come from the bundle)."""
    return [
        HostFile(layout.HOST_SETTINGS, settings_text(s, programs)),
        HostFile(FETCH_SCRIPT, lean((PACKAGE_DIR / "fetch_programs.py").read_text(encoding="utf-8")),
                 permissions="0755"),
        *(HostFile(program.path, executable(program), permissions="0755") for program in programs),
    ]


def bundle_files(programs: Iterable[HostProgram]) -> dict[str, str]:
    """Host path -> content of what mlflow-fetch-programs puts in place from the bundle."""
    return {f"{layout.HOST_PROGRAMS_DIR}/{PACKAGE}/{name}": text for name, text in source_files(programs).items()}
