"""The host's own programs (host_programs/) on the host: the settings file they read, the package's modules
they import, and one executable per program.

Each module goes to layout.HOST_PROGRAMS_DIR lean (userdata.pysource: without docstrings and comments,
the same syntax tree), and only the modules some program imports, found by reading their imports. An
executable is five lines: its venv's Python, that directory first on `sys.path`, and the program's
`main(arguments, settings file)`. So MLflow's venv and certbot's import the same files, and what the
programs share exists once on the host as here.
"""

from __future__ import annotations

import ast
import json
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
# A module only one auth mode's hosts run (imported where it is used) travels only to those hosts: user data is
# a budget (DESIGN decision 16).
AUTH_ONLY_MODULES = {f"{PACKAGE}.oidc_auth": "oidc"}


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


def settings_document(s: HostSettings, programs: Iterable[HostProgram]) -> dict[str, Any]:
    """What the settings file holds: the region every program signs its AWS calls for, and one section
    per program."""
    return {"region": s.region, **{program.section: program.settings(s) for program in programs}}


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


def shipped_modules(programs: Iterable[HostProgram], auth: str | None = None) -> list[str]:
    """Every module the programs import, directly or not, and the package itself; with `auth`, without the
    modules only another auth mode runs."""
    wanted = [program.module.__name__ for program in programs]
    shipped: set[str] = set()
    while wanted:
        module = wanted.pop()
        if auth is not None and AUTH_ONLY_MODULES.get(module, auth) != auth:
            continue
        if module not in shipped:
            shipped.add(module)
            wanted.extend(imported_modules(module))
    return [PACKAGE, *sorted(shipped)]


def module_file_name(module: str) -> str:
    return "__init__.py" if module == PACKAGE else f"{module.rpartition('.')[2]}.py"


def source_files(programs: Iterable[HostProgram], auth: str | None = None) -> dict[str, str]:
    """File name -> source text (lean) of every shipped module."""
    names = [module_file_name(module) for module in shipped_modules(programs, auth)]
    return {name: lean((PACKAGE_DIR / name).read_text(encoding="utf-8")) for name in names}


def program_files(s: HostSettings, programs: list[HostProgram]) -> list[HostFile]:
    """The settings file, the shipped modules, then the executables."""
    return [
        HostFile(layout.HOST_SETTINGS, settings_text(s, programs)),
        *(HostFile(f"{layout.HOST_PROGRAMS_DIR}/{PACKAGE}/{name}", text)
          for name, text in source_files(programs, s.auth).items()),
        *(HostFile(program.path, executable(program), permissions="0755") for program in programs),
    ]
