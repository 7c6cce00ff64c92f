"""userdata.pysource.lean: the host's Python without docstrings and comments is the same program."""

from __future__ import annotations

import ast
import sys

import pytest
import tomllib

import server_guard
import userdata
from tests.support.loopback import host_file_contents, loopback_settings
from userdata import guard, layout, programs, scripts, tls
from userdata.pysource import lean

SAMPLE = '''#!/usr/bin/python3
"""Module docstring."""
# a comment
import os  # gone too: a comment after code


def documented():
    """Gone."""
    return "# not a comment\\n"


def only_a_docstring():
    """Kept: it is the whole body."""


class Thing:
    """Gone too."""

    TEXT = """
# inside a string: kept
"""
'''


def without_docstrings(tree: ast.AST) -> str:
    for node in ast.walk(tree):
        # A module may end up empty; a function's or class's body of just a docstring keeps it.
        least = 1 if isinstance(node, ast.Module) else 2
        documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, documented) and len(node.body) >= least:
            first = node.body[0]
            constant = first.value if isinstance(first, ast.Expr) else None
            if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                node.body = node.body[1:]
    return ast.dump(tree)


def test_docstrings_and_comments_go_and_the_rest_stays():
    text = lean(SAMPLE)
    assert text.startswith("#!/usr/bin/python3\nimport os\n")
    assert "Gone" not in text and "# a comment" not in text and "gone too" not in text
    assert "# inside a string: kept" in text and '"# not a comment\\n"' in text
    assert "Kept: it is the whole body." in text
    assert without_docstrings(ast.parse(SAMPLE)) == ast.dump(ast.parse(text))


@pytest.mark.parametrize("module", sorted(guard.source_files()))
def test_the_hosts_guard_is_the_guard_the_tests_import(module):
    original = (guard.PACKAGE_DIR / module).read_text()
    assert without_docstrings(ast.parse(original)) == ast.dump(ast.parse(guard.source_files()[module]))


def test_the_rendered_guard_files_and_their_entry_point():
    files = host_file_contents(loopback_settings())
    written = {path.removeprefix(f"{layout.GUARD_DIR}/"): text for path, text in files.items()
               if path.startswith(layout.GUARD_DIR + "/")}
    assert written == {"pyproject.toml": guard.pyproject(),
                       **{f"server_guard/{name}": text for name, text in guard.source_files("basic").items()}}
    project = tomllib.loads(written["pyproject.toml"])
    assert project["project"]["entry-points"]["mlflow.app"] == {server_guard.APP_NAME: server_guard.ENTRY_POINT}
    assert project["project"]["name"] == server_guard.DISTRIBUTION


def test_a_module_of_only_a_docstring_becomes_empty():
    assert lean('"""The package."""\n') == ""


HOST_PROGRAMS = [scripts.CONFIGURE, tls.STATE_PROGRAM]


@pytest.mark.parametrize("name", sorted(programs.source_files(HOST_PROGRAMS)))
def test_the_hosts_programs_are_the_modules_the_tests_import(name):
    original = (programs.PACKAGE_DIR / name).read_text()
    shipped = programs.source_files(HOST_PROGRAMS)[name]
    assert without_docstrings(ast.parse(original)) == ast.dump(ast.parse(shipped))


def test_the_programs_ship_every_module_they_import_and_no_other():
    shipped = programs.shipped_modules([scripts.CONFIGURE])
    assert shipped == ["host_programs", "host_programs.aws", "host_programs.configure", "host_programs.fence",
                       "host_programs.oidc_auth", "host_programs.schema_upgrade", "host_programs.settings_file"]
    assert "host_programs.certificate_state" in programs.shipped_modules(HOST_PROGRAMS)


def test_a_relative_import_in_a_host_program_is_refused(monkeypatch, tmp_path):
    (tmp_path / "relative.py").write_text("from . import aws\n")
    monkeypatch.setattr(programs, "PACKAGE_DIR", tmp_path)
    with pytest.raises(ValueError, match="relatively"):
        programs.imported_modules("host_programs.relative")


@pytest.mark.parametrize("settings", [loopback_settings(), loopback_settings(tls="letsencrypt")],
                         ids=["tls-off", "tls"])
def test_the_rendered_host_programs_are_their_modules_and_executables_calling_main(settings):
    files = host_file_contents(settings)
    shipped = {path.removeprefix(f"{layout.HOST_PROGRAMS_DIR}/host_programs/"): text for path, text in files.items()
               if path.startswith(layout.HOST_PROGRAMS_DIR + "/")}
    assert shipped == programs.source_files(userdata.host_programs(settings), settings.auth)
    for program in userdata.host_programs(settings):
        executable = files[program.path]
        assert executable.startswith(f"#!{program.python}\n")
        assert f"from {program.module.__name__} import main\n" in executable
        assert f"main(sys.argv[1:], {layout.HOST_SETTINGS!r})" in executable
        ast.parse(executable)


# What the venvs hold besides the standard library: MLflow's (MLflow, boto3, psycopg2, werkzeug, alembic, which
# reads a release's migration heads, and with auth oidc mlflow_oidc_auth) and certbot's (cryptography, boto3);
# mypy_boto3 only for the type checker (imported under TYPE_CHECKING).
HOST_VENV_PACKAGES = {"host_programs", "boto3", "botocore", "psycopg2", "mlflow", "werkzeug", "alembic", "cryptography",
                      "mypy_boto3_ssm", "mypy_boto3_rds", "mypy_boto3_ec2", "mypy_boto3_cloudwatch",
                      "mlflow_oidc_auth"}


@pytest.mark.parametrize("name", sorted(programs.source_files(HOST_PROGRAMS)))
def test_a_shipped_module_imports_only_the_standard_library_its_venv_and_the_package(name):
    tree = ast.parse((programs.PACKAGE_DIR / name).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - sys.stdlib_module_names - HOST_VENV_PACKAGES == set()


def test_a_guard_module_only_oidc_hosts_run_travels_only_to_them():
    basic = set(guard.source_files("basic"))
    oidc = set(guard.source_files("oidc"))
    assert oidc - basic == {"oidc.py"} and basic <= oidc
    assert set(guard.source_files()) == oidc


def test_the_oidc_part_of_the_configure_step_travels_only_to_oidc_hosts():
    assert "host_programs.oidc_auth" not in programs.shipped_modules([scripts.CONFIGURE], "basic")
    assert "host_programs.oidc_auth" in programs.shipped_modules([scripts.CONFIGURE], "oidc")
