"""The stack's outputs, as `pulumi stack output --json --show-secrets` prints them: loaded and validated.

They come from a file, from stdin (`-`), or from running the Pulumi CLI. Every problem is one
`OutputsError` line naming the key and the fix, so a command can stop before it writes anything.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from naming import Outputs

PULUMI_TIMEOUT_SECONDS = 120
# What `pulumi stack output --json` prints for a secret when --show-secrets is missing.
HIDDEN_SECRET = "[secret]"


PULUMI_MISSING = (
    "the pulumi CLI is not on PATH: ./scripts/deploy installs it into ~/.pulumi/bin "
    "(export PATH=\"$HOME/.pulumi/bin:$PATH\"), or pass --outputs FILE"
)
SHOW_OUTPUTS = "`pulumi stack output --json --show-secrets`"


class OutputsError(ValueError):
    """Outputs missing, unreadable or malformed; the message says which and how to fix it."""


def pulumi_command(stack: str | None) -> list[str]:
    command = ["pulumi", "stack", "output", "--json", "--show-secrets"]
    return [*command, "--stack", stack] if stack else command


def run_pulumi(command: list[str], instead: str, cwd: Path | None = None) -> str:
    """Standard output of the Pulumi CLI `command` (starting with "pulumi"); OutputsError when it cannot
    run or fails, ending with `instead`: what the user can pass rather than have the CLI asked."""
    executable = shutil.which("pulumi")
    if executable is None:
        raise OutputsError(PULUMI_MISSING.replace("--outputs FILE", instead))
    try:
        finished = subprocess.run(
            [executable, *command[1:]], capture_output=True, text=True, timeout=PULUMI_TIMEOUT_SECONDS, check=False,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as error:
        raise OutputsError(
            f"{' '.join(command)} did not finish in {PULUMI_TIMEOUT_SECONDS} s; pass {instead}"
        ) from error
    if finished.returncode != 0:
        detail = finished.stderr.strip().splitlines()
        reason = detail[-1] if detail else f"exit status {finished.returncode}"
        raise OutputsError(f"{' '.join(command)} failed: {reason}")
    return finished.stdout


def read_from_pulumi(stack: str | None) -> str:
    return run_pulumi(pulumi_command(stack), "--outputs FILE (the saved output of that command)")


def selected_stack(project_dir: Path) -> str:
    """The name of the stack the Pulumi CLI has selected for the project in `project_dir`."""
    name = run_pulumi(["pulumi", "stack", "--show-name"], "--stack NAME", cwd=project_dir).strip()
    if not name:
        raise OutputsError("no Pulumi stack is selected here: pass --stack NAME, or `pulumi stack select NAME`")
    return name


def read_text(source: str | None, stack: str | None) -> str:
    """`source` is a file name, `-` for stdin, or None to ask the Pulumi CLI (for `stack`, or the selected one)."""
    if source is None:
        return read_from_pulumi(stack)
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as error:
        raise OutputsError(f"cannot read outputs file {source}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise OutputsError(f"outputs file {source} is not UTF-8 text: {error.reason}") from error


def parse(text: str, origin: str) -> dict[str, Any]:
    if not text.strip():
        raise OutputsError(f"{origin} is empty; expected the JSON of `pulumi stack output --json --show-secrets`")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise OutputsError(
            f"{origin} is not JSON ({error.msg} at line {error.lineno} column {error.colno}); "
            "expected the output of `pulumi stack output --json --show-secrets`"
        ) from error
    if not isinstance(document, dict):
        raise OutputsError(
            f"{origin} holds a JSON {type(document).__name__}, not an object of outputs; "
            "expected the output of `pulumi stack output --json --show-secrets`"
        )
    return document


def load(source: str | None, stack: str | None) -> dict[str, Any]:
    origin = "stdin" if source == "-" else (f"outputs file {source}" if source else "pulumi's output")
    return parse(read_text(source, stack), origin)


def text_value(outputs: Mapping[str, Any], key: str) -> str | None:
    """The output `key` as a non-empty string, None when absent; OutputsError when it is something else."""
    if key not in outputs or outputs[key] is None:
        return None
    value = outputs[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise OutputsError(f"output {key!r} is a JSON {type(value).__name__}, expected a string")
    text = str(value)
    if text == HIDDEN_SECRET:
        raise OutputsError(
            f"output {key!r} is hidden as {HIDDEN_SECRET!r}; "
            "run `pulumi stack output --json --show-secrets` (with --show-secrets)"
        )
    if not text.strip():
        raise OutputsError(f"output {key!r} is empty; run `pulumi up` to finish the stack")
    return text


def not_this_project(outputs: Mapping[str, Any]) -> str | None:
    """Why `outputs` cannot be an mlflow-aws stack's, or None when they may be: every stack of this
    program exports the keys of `Outputs.ALWAYS`, so outputs holding none of them are another project's."""
    if outputs.keys() & Outputs.ALWAYS:
        return None
    if not outputs:
        return (
            "the outputs are empty: the stack has not been deployed yet (./scripts/deploy), or the selected "
            "stack is another one (`pulumi stack ls`; pass --stack NAME)"
        )
    found = ", ".join(sorted(outputs)[:5]) + (", ..." if len(outputs) > 5 else "")
    return (
        f"these are not this project's outputs: they hold none of the outputs every mlflow-aws stack exports "
        f"(tracking_uri, artifact_bucket, admin_username, ...), only {found}. Read an mlflow-aws stack's: "
        f"{SHOW_OUTPUTS} in this project's directory, or --stack NAME of a stack deployed from it"
    )


def checked_tracking_uri(value: str) -> str:
    """The tracking_uri output, refused unless it is an http(s) URL with a host: a client would otherwise
    treat it as a local path (MLflow) or fail far from the cause."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutputsError(
            f"output {Outputs.TRACKING_URI!r} is {value!r}, not an http(s) URL such as https://203.0.113.7: "
            f"read the outputs again with {SHOW_OUTPUTS}, or write the URL with its scheme into the outputs file"
        )
    return value


def require(outputs: Mapping[str, Any], keys: Iterable[str]) -> dict[str, str]:
    """Every key in `keys` as a string; the first one missing or malformed raises OutputsError."""
    values: dict[str, str] = {}
    for key in keys:
        value = text_value(outputs, key)
        if value is None:
            reason = not_this_project(outputs)
            if reason is not None:
                raise OutputsError(reason)
            raise OutputsError(
                f"output {key!r} is missing; run `pulumi up` with this version of mlflow-aws, "
                f"then {SHOW_OUTPUTS}"
            )
        values[key] = checked_tracking_uri(value) if key == Outputs.TRACKING_URI else value
    return values
