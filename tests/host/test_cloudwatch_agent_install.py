"""The CloudWatch agent's install step when AWS's bucket cannot be reached (as on any machine but EC2):
the rendered script, run as its unit would run it, says so in one line, exits with the code its unit
counts as success, and backs off, doubling its wait up to six hours, saying nothing while it waits.
MLflow is not involved: the shared loopback stack keeps serving throughout."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.loopback import LOOPBACK, LoopbackStack
from tests.support.ports import free_port
from userdata import monitoring

pytestmark = pytest.mark.host


@pytest.fixture
def install(loopback_stack: LoopbackStack, tmp_path: Path) -> Path:
    """The rendered script, remapped into the loopback tree, downloading from a port nothing listens on."""
    script = loopback_stack.remap(loopback_stack.files[monitoring.INSTALL_SCRIPT])
    base = monitoring.DOWNLOAD_BASE.format(region=loopback_stack.region)
    assert base in script
    path = tmp_path / "mlflow-cloudwatch-agent-install"
    path.write_text(script.replace(base, f"https://{LOOPBACK}:{free_port()}"))
    path.chmod(0o755)
    state = loopback_stack.path(monitoring.FAILED_RUNS_FILE)
    state.unlink(missing_ok=True)
    return path


def run(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script)], capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": os.environ["PATH"]})


def failed_runs(stack: LoopbackStack) -> tuple[int, int]:
    runs, last = stack.path(monitoring.FAILED_RUNS_FILE).read_text().split()
    return int(runs), int(last)


def pretend_last_failure(stack: LoopbackStack, runs: int, seconds_ago: int) -> None:
    stack.path(monitoring.FAILED_RUNS_FILE).write_text(f"{runs} {int(time.time()) - seconds_ago}\n")


def test_a_failed_download_is_one_line_and_a_temporary_failure(install: Path, loopback_stack: LoopbackStack) -> None:
    result = run(install)
    assert result.returncode == monitoring.TEMPFAIL_EXIT_CODE
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1 and lines[0].startswith("mlflow-cloudwatch-agent: download failed (run 1), retried later")
    assert failed_runs(loopback_stack)[0] == 1
    assert not loopback_stack.path(monitoring.INSTALLED_MARKER).exists()
    assert requests.get(f"{loopback_stack.tracking_uri}/health", timeout=10).status_code == 200


def test_while_it_backs_off_a_run_is_silent_and_changes_nothing(install: Path, loopback_stack: LoopbackStack) -> None:
    pretend_last_failure(loopback_stack, runs=1, seconds_ago=60)
    before = failed_runs(loopback_stack)
    result = run(install)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert failed_runs(loopback_stack) == before


@pytest.mark.parametrize(("runs", "wait"), [(1, 900), (2, 1800), (4, 7200), (5, 14400), (6, 21600), (40, 21600)])
def test_the_wait_doubles_with_each_failed_run_up_to_six_hours(
    install: Path, loopback_stack: LoopbackStack, runs: int, wait: int
) -> None:
    pretend_last_failure(loopback_stack, runs=runs, seconds_ago=wait - 30)
    assert run(install).stdout == ""  # still waiting
    pretend_last_failure(loopback_stack, runs=runs, seconds_ago=wait + 1)
    result = run(install)
    assert result.returncode == monitoring.TEMPFAIL_EXIT_CODE
    assert f"(run {runs + 1})" in result.stdout
    assert failed_runs(loopback_stack)[0] == runs + 1
