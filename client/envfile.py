"""The env file `mlflow-aws env` writes: read the same by `docker run --env-file` and by a shell's `source`.

Docker takes each value literally to the end of the line; a shell removes quotes and expands `$`, so
no one encoding serves both for every value. Values are therefore written raw, and a value that the
two would read differently is refused with the reason, never written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from naming import Outputs

from .outputs import OutputsError, require, text_value

HEADER = (
    "# MLflow connection settings written by `mlflow-aws env`.\n"
    "# This file holds credentials: keep it out of git (it is mode 0600) and out of images.\n"
    "# Use: docker run --env-file FILE ...   or in a shell: set -a; . ./FILE; set +a\n"
)
FILE_MODE = 0o600


@dataclass(frozen=True)
class Variable:
    name: str
    output: str


REQUIRED = (
    Variable("MLFLOW_TRACKING_URI", Outputs.TRACKING_URI),
    Variable("MLFLOW_TRACKING_USERNAME", Outputs.ADMIN_USERNAME),
    Variable("MLFLOW_TRACKING_PASSWORD", Outputs.ADMIN_PASSWORD),
    Variable("AWS_DEFAULT_REGION", Outputs.REGION),
)
# Present only when the stack created the read-only IAM user (clientAccess: true).
CLIENT_ACCESS = (
    Variable("AWS_ACCESS_KEY_ID", Outputs.CLIENT_ACCESS_KEY_ID),
    Variable("AWS_SECRET_ACCESS_KEY", Outputs.CLIENT_SECRET_ACCESS_KEY),
)

# `--proxy-artifacts`: MLflow's client then moves every artifact byte through the tracking URI. Set,
# these override what the server advertises in /api/3.0/mlflow/server-info (presigned S3 transfers:
# every download, and uploads from MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE, 500 MiB, up).
PROXY_ARTIFACTS = (
    ("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "false"),
    ("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false"),
)

# Characters a shell treats specially in `NAME=value` but docker keeps as they are, with the reason.
# (Globbing and brace expansion do not apply to assignments, so * ? [ ] { } are safe; `#` is safe
# because it starts a comment only at the start of a word, and values never contain whitespace.)
_SHELL_SPECIAL = {
    " ": "a space, where a shell ends the assignment",
    "\t": "a tab, where a shell ends the assignment",
    "'": "a quote, which a shell removes and docker keeps",
    '"': "a quote, which a shell removes and docker keeps",
    "`": "a backquote, which a shell runs as a command and docker keeps",
    "$": "a '$', which a shell expands and docker keeps",
    "\\": "a backslash, which a shell removes and docker keeps",
    ";": "a ';', which ends the assignment in a shell",
    "&": "a '&', which ends the assignment in a shell",
    "|": "a '|', which ends the assignment in a shell",
    "<": "a '<', which a shell reads as a redirection",
    ">": "a '>', which a shell reads as a redirection",
    "(": "a '(', which is a syntax error in a shell assignment",
    ")": "a ')', which is a syntax error in a shell assignment",
}


class EnvFileError(ValueError):
    """A value cannot be written so that docker and a shell read it the same; nothing was written."""


def disagreement(value: str) -> str | None:
    """Why docker --env-file and a shell `source` would read `value` differently, or None if they agree."""
    for index, char in enumerate(value):
        if char in _SHELL_SPECIAL:
            return f"it contains {_SHELL_SPECIAL[char]}"
        if not char.isascii():
            return "it contains a non-ASCII character, which a shell may split differently depending on its locale"
        if not char.isprintable():
            return "it contains a line break or control character, which ends or corrupts the line"
        # Tilde expansion applies after the `=` and after each `:` of an assignment.
        if char == "~" and (index == 0 or value[index - 1] == ":"):
            return "it contains a '~' at its start or after ':', which a shell expands to a home directory"
    return None


def variables(outputs: Mapping[str, Any], *, proxy_artifacts: bool = False) -> list[tuple[str, str]]:
    """(name, value) pairs for the env file; OutputsError or EnvFileError when one cannot be written.
    `proxy_artifacts`: also the variables that keep every artifact byte on the tracking URI."""
    values = require(outputs, [variable.output for variable in REQUIRED])
    pairs = [(variable.name, values[variable.output]) for variable in REQUIRED]
    client = {variable.output: text_value(outputs, variable.output) for variable in CLIENT_ACCESS}
    present = [key for key, value in client.items() if value is not None]
    if present and len(present) != len(CLIENT_ACCESS):
        missing = next(key for key, value in client.items() if value is None)
        raise OutputsError(
            f"output {missing!r} is missing while {present[0]!r} is set; "
            "client access needs both keys: run `pulumi up` again"
        )
    pairs += [(variable.name, value) for variable in CLIENT_ACCESS if (value := client[variable.output])]
    by_name = {variable.name: variable.output for variable in (*REQUIRED, *CLIENT_ACCESS)}
    for name, value in pairs:
        reason = disagreement(value)
        if reason:
            raise EnvFileError(
                f"cannot write {name} (output {by_name[name]!r}): {reason}, so `docker --env-file` and a "
                "shell `source` would read different values; use only letters, digits and -_.:/@+=,%"
            )
    return pairs + list(PROXY_ARTIFACTS) if proxy_artifacts else pairs


def render(pairs: list[tuple[str, str]]) -> str:
    return HEADER + "".join(f"{name}={value}\n" for name, value in pairs)


def write(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the first byte, replacing any file there atomically."""
    directory = path.parent
    if not directory.is_dir():
        raise OSError(f"directory {directory} does not exist")
    temporary = directory / f".{path.name}.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)  # the umask may have narrowed it; make it exact
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
