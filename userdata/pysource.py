"""Python for the host, lean: without docstrings and whole-line comments (the shebang stays).

The user data must fit EC2's 16 KiB gzipped; what explains the code stays in this repository. Only
lines are removed, found with the tokenizer and the parser, so the result is the same program
(tests/unit/test_pysource.py compares the syntax trees) on every Python that renders it.
"""

from __future__ import annotations

import ast
import io
import tokenize

_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _docstring_lines(source: str, lines: list[str]) -> set[int]:
    numbers: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, _DOCUMENTED) or len(node.body) < 2:
            continue  # a body of just a docstring keeps it: it is the body
        first = node.body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str) and first.end_lineno is not None
                and first.end_col_offset is not None):
            continue
        alone = (not lines[first.lineno - 1][:first.col_offset].strip()
                 and not lines[first.end_lineno - 1][first.end_col_offset:].strip())
        if alone:
            numbers.update(range(first.lineno, first.end_lineno + 1))
    return numbers


def _comment_lines(source: str, lines: list[str]) -> set[int]:
    numbers: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        row, column = token.start
        whole_line = token.type == tokenize.COMMENT and not lines[row - 1][:column].strip()
        if whole_line and not (row == 1 and token.string.startswith("#!")):
            numbers.add(row)
    return numbers


def lean(source: str) -> str:
    lines = source.splitlines(keepends=True)
    dropped = _docstring_lines(source, lines) | _comment_lines(source, lines)
    kept = [line for number, line in enumerate(lines, 1) if number not in dropped]
    while kept and not kept[0].strip():  # what a removed module docstring leaves first
        kept.pop(0)
    return "".join(kept)
