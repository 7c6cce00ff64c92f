"""The two programs that read an env file, as test helpers: docker's --env-file parser and bash's `source`.

`docker_env_file` mirrors the docker CLI's parser rule for rule. Source: docker/cli
`opts/envfile.go` (ParseEnvFile -> kvfile.Parse(filename, os.LookupEnv)) and
`pkg/kvfile/kvfile.go` (parseKeyValueFile), docker/cli v28 (commit 3d41bbacb04b2fcfd4b4504323a46cc8da5b7681):
  - bufio.Scanner with ScanLines: lines split on "\\n", one trailing "\\r" dropped;
  - the file must be valid UTF-8; a UTF-8 BOM is removed from line 1;
  - leading whitespace (unicode.IsSpace) is trimmed from each line; empty lines and lines starting
    with "#" are skipped;
  - the key is everything before the first "="; empty key or a key with space/tab is an error;
  - with "=", the line is passed on as-is: the value is everything after the first "=", no quote
    removal, no expansion, trailing whitespace kept;
  - without "=", the key is looked up in the caller's environment and dropped when unset.
(An open docker/cli pull request, #6805, would strip one pair of matching outer quotes; the env
writer never emits a quote, so both behaviours read its files the same.)
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

_UTF8_BOM = "\ufeff"
_KEY_WHITESPACE = " \t"


class DockerEnvFileError(ValueError):
    pass


def _scan_lines(data: bytes) -> list[bytes]:
    """Go's bufio.ScanLines: split on \\n, drop one trailing \\r per line, no empty final token."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def _is_go_space(char: str) -> bool:
    # unicode.IsSpace: '\t', '\n', '\v', '\f', '\r', ' ', U+0085, U+00A0 and category Z.
    return char in "\t\n\v\f\r \x85\xa0" or (char.isspace() and char not in "\x1c\x1d\x1e\x1f")


def docker_env_file(path: Path, lookup: Mapping[str, str] | None = None) -> dict[str, str]:
    environment = os.environ if lookup is None else lookup
    result: dict[str, str] = {}
    for number, raw in enumerate(_scan_lines(path.read_bytes()), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DockerEnvFileError(f"invalid utf8 bytes at line {number}") from error
        if number == 1 and text.startswith(_UTF8_BOM):
            text = text[len(_UTF8_BOM):]
        index = 0
        while index < len(text) and _is_go_space(text[index]):
            index += 1
        line = text[index:]
        if not line or line.startswith("#"):
            continue
        key, has_value, value = line.partition("=")
        if not key:
            raise DockerEnvFileError(f"no variable name on line '{line}'")
        if any(char in key for char in _KEY_WHITESPACE):
            raise DockerEnvFileError(f"variable '{key}' contains whitespaces")
        if has_value:
            result[key] = value
        elif line in environment:
            result[key] = environment[line]
    return result


def bash_source(path: Path, home: Path) -> dict[str, str]:
    """The variables `set -a; source FILE` exports in real bash, started with an empty environment."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    before = _bash_environment(["bash", "--noprofile", "--norc", "-c", "env -0"], clean, home)
    after = _bash_environment(
        ["bash", "--noprofile", "--norc", "-c", 'set -a; source "$1"; env -0', "bash", str(path)], clean, home
    )
    return {key: value for key, value in after.items() if before.get(key) != value}


def _bash_environment(command: list[str], environment: dict[str, str], cwd: Path) -> dict[str, str]:
    finished = subprocess.run(
        command, env=environment, cwd=cwd, capture_output=True, timeout=30, check=False
    )
    result: dict[str, str] = {}
    for entry in finished.stdout.split(b"\0"):
        if b"=" in entry:
            key, _, value = entry.decode("utf-8", "surrogateescape").partition("=")
            result[key] = value
    return result
