"""In CI a skipped test is a failure: the rule tests/conftest.py enforces, and .ci/run turns on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIPPING_TEST = "import pytest\n\n\ndef test_needs_a_package():\n    pytest.skip('needs nginx')\n"


def run_suite(directory: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    """pytest on one skipping test, under the project's conftest and only the given CI variables."""
    shutil.copy(REPO / "tests" / "conftest.py", directory / "conftest.py")
    (directory / "test_skipping.py").write_text(SKIPPING_TEST)
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "MLFLOW_AWS_NO_SKIPS")}
    env.update(environment, COLUMNS="300")  # the summary line whole, with the reason
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        cwd=directory, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_a_skip_stays_a_skip_outside_ci(tmp_path: Path) -> None:
    result = run_suite(tmp_path)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout


@pytest.mark.parametrize("variable", [{"MLFLOW_AWS_NO_SKIPS": "1"}, {"CI": "true"}])
def test_a_skip_fails_the_run_in_ci_with_its_reason(tmp_path: Path, variable: dict[str, str]) -> None:
    result = run_suite(tmp_path, **variable)
    assert result.returncode == 1, result.stdout
    assert "1 failed" in result.stdout
    summary = next(line for line in result.stdout.splitlines() if line.startswith("FAILED"))
    assert "skipped in CI, which must run every test" in summary and "needs nginx" in summary


def test_ci_run_turns_the_rule_on_before_the_test_command() -> None:
    script = (REPO / ".ci" / "run").read_text()
    assert script.index("export MLFLOW_AWS_NO_SKIPS=1") < script.index("exec ./scripts/test")
