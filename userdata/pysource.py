"""Python for the host, lean: without docstrings and comments (the shebang stays).

The user data must fit EC2's 16 KiB gzipped; what explains the code stays in this repository. Only
docstring and comment lines and the comments at the ends of lines are removed, found with the
tokenizer and the parser, so the result is the same program (tests/unit/test_pysource.py compares the
syntax trees) on every Python that renders it.
"""

from __future__ import annotations

import ast
import io
import tokenize

_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _docstring_lines(source: str, lines: list[str]) -> set[int]:
    numbers: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, _DOCUMENTED) or not node.body:
            continue
        if len(node.body) < 2 and not isinstance(node, ast.Module):
            continue  # a function's or class's body of just a docstring keeps it: it is the body
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


def _comments(source: str, lines: list[str]) -> tuple[set[int], dict[int, int]]:
    """(lines that are only a comment, line -> column where a comment after code starts)."""
    whole: set[int] = set()
    trailing: dict[int, int] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        row, column = token.start
        if lines[row - 1][:column].strip():
            trailing[row] = column
        elif not (row == 1 and token.string.startswith("#!")):
            whole.add(row)
    return whole, trailing


def lean(source: str) -> str:
    lines = source.splitlines(keepends=True)
    whole, trailing = _comments(source, lines)
    dropped = _docstring_lines(source, lines) | whole
    kept = [lines[number - 1][:trailing[number]].rstrip() + "\n" if number in trailing else lines[number - 1]
            for number in range(1, len(lines) + 1) if number not in dropped]
    while kept and not kept[0].strip():  # what a removed module docstring leaves first
        kept.pop(0)
    return "".join(kept)
