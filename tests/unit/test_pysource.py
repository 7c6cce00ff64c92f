"""userdata.pysource.lean: the host's Python without docstrings and comments is the same program."""

from __future__ import annotations

import ast

import pytest
import tomllib

import server_guard
import userdata
from tests.support.loopback import loopback_settings, rendered_files
from userdata import guard, layout
from userdata.pysource import lean

SAMPLE = '''#!/usr/bin/python3
"""Module docstring."""
# a comment
import os  # kept: not a whole line


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
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and len(node.body) > 1:
            first = node.body[0]
            constant = first.value if isinstance(first, ast.Expr) else None
            if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                node.body = node.body[1:]
    return ast.dump(tree)


def test_docstrings_and_whole_line_comments_go_and_the_rest_stays():
    text = lean(SAMPLE)
    assert text.startswith("#!/usr/bin/python3\nimport os  # kept")
    assert "Gone" not in text and "# a comment" not in text
    assert "# inside a string: kept" in text and '"# not a comment\\n"' in text
    assert "Kept: it is the whole body." in text
    assert without_docstrings(ast.parse(SAMPLE)) == ast.dump(ast.parse(text))


@pytest.mark.parametrize("module", sorted(guard.source_files()))
def test_the_hosts_guard_is_the_guard_the_tests_import(module):
    original = (guard.PACKAGE_DIR / module).read_text()
    assert without_docstrings(ast.parse(original)) == ast.dump(ast.parse(guard.source_files()[module]))


def test_the_rendered_guard_files_and_their_entry_point():
    files = rendered_files(userdata.render(loopback_settings()))
    written = {path.removeprefix(f"{layout.GUARD_DIR}/"): text for path, text in files.items()
               if path.startswith(layout.GUARD_DIR + "/")}
    assert written == {"pyproject.toml": guard.pyproject(),
                       **{f"server_guard/{name}": text for name, text in guard.source_files("basic").items()}}
    project = tomllib.loads(written["pyproject.toml"])
    assert project["project"]["entry-points"]["mlflow.app"] == {server_guard.APP_NAME: server_guard.ENTRY_POINT}
    assert project["project"]["name"] == server_guard.DISTRIBUTION


def test_the_rendered_configure_script_is_its_template_without_docstrings():
    script = rendered_files(userdata.render(loopback_settings()))[layout.CONFIGURE_SCRIPT]
    assert script.startswith("#!") and '"""' not in script.split("\n", 2)[1]
    ast.parse(script)


def test_a_module_only_oidc_hosts_run_travels_only_to_them():
    basic = set(guard.source_files("basic"))
    oidc = set(guard.source_files("oidc"))
    assert oidc - basic == {"oidc.py"} and basic <= oidc
    assert set(guard.source_files()) == oidc
