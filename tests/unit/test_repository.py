"""Nothing stray in the repository: no database or run files tracked, `.gitignore` covers what MLflow and
the tests write, and no message doubles an apostrophe around a quoted name (`'dev''s`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN_FILES = re.compile(r"(^|/)(mlruns|mlartifacts)/|\.(db|sqlite3?)$")


def git(*args: str) -> str:
    if not shutil.which("git") or not (REPO / ".git").exists():
        pytest.skip("not a git checkout (git and .git are needed to read what is tracked)")
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout


def test_no_database_or_mlflow_run_files_are_tracked() -> None:
    tracked = git("ls-files").splitlines()
    assert tracked
    assert [path for path in tracked if RUN_FILES.search(path)] == []


@pytest.mark.parametrize("path", [
    "mlflow.db",  # MLflow's default tracking URI, sqlite:///mlflow.db, in the working directory
    "mlruns/0/meta.yaml",  # its file store and default artifact root
    "mlartifacts/1/abc/artifacts/model.pkl",  # `mlflow server`'s default artifacts destination
    "tests/host/mlflow.db",
    "bench/results.sqlite",
    ".cache/mlflow-aws-tests/marker",
    ".pulumi-state/.pulumi/stacks/mlflow-aws/dev.json",
    "prediction_app.env",
])
def test_gitignore_covers_what_mlflow_the_scripts_and_the_tests_write(path: str) -> None:
    git("rev-parse", "--git-dir")  # skips outside a checkout
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, timeout=60, check=False)
    assert ignored.returncode == 0, f"{path} is not ignored by .gitignore"


# Python: a repr followed by 's prints 'dev''s; shell: a quoted variable followed by 's does the same.
DOUBLED_APOSTROPHE = {
    ".py": re.compile(r"!r\}'s\b"),
    ".sh": re.compile(r"'\$\{?\w+\}?''s\b"),
}


def test_no_message_doubles_an_apostrophe_after_a_quoted_name() -> None:
    found = []
    for path in git("ls-files").splitlines():
        file = REPO / path
        shell = file.suffix == ".sh" or path.startswith(("scripts/", ".ci/"))
        kind = file.suffix if file.suffix == ".py" else (".sh" if shell else "")
        if kind not in DOUBLED_APOSTROPHE or not file.is_file():
            continue
        for number, line in enumerate(file.read_text(errors="replace").splitlines(), start=1):
            if DOUBLED_APOSTROPHE[kind].search(line):
                found.append(f"{path}:{number}: {line.strip()}")
    assert found == []
