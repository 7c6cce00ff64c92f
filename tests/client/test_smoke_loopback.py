"""`mlflow-aws env` then `mlflow-aws smoke` against the host's real stack on 127.0.0.1.

The loopback stack (tests/support/loopback.py) runs what the user data renders: PostgreSQL, MLflow with
basic auth from its systemd unit, nginx in front, moto as the S3 artifact bucket. The commands run as
the user runs them: the console script, in a child process, fed the stack's outputs.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client import smoke
from naming import Outputs
from tests.support import loopback

pytestmark = pytest.mark.host

CLI = str(Path(sys.executable).parent / "mlflow-aws")
COMMAND_TIMEOUT_SECONDS = 240
STEP_NAMES = [name for name, _ in smoke.SmokeRun(smoke.Connection("http://x", None, None), Path()).steps()]


def generated_admin_password() -> str:
    # What the stack generates: pulumi-random's RandomPassword(special=False), letters and digits.
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


@pytest.fixture(scope="module")
def stack() -> Iterator[loopback.LoopbackStack]:
    missing = loopback.host_binaries_missing()
    if missing:
        pytest.skip(f"the loopback stack needs {', '.join(missing)} (Debian packages nginx, postgresql, openssl)")
    running = loopback.LoopbackStack(start=False)
    try:
        running.prepare()
        running.set_admin_password(generated_admin_password())
        running.start()
        yield running
    finally:
        running.close()


def run_cli(*args: str, cwd: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "AWS_"))
    }
    environment["NO_PROXY"] = "127.0.0.1,localhost"
    environment.update(extra_env)
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=environment, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_SECONDS, check=False,
    )


def write_env_file(stack: loopback.LoopbackStack, directory: Path, password: str | None = None) -> Path:
    """The user's path: the stack's outputs through `mlflow-aws env`."""
    outputs = {
        Outputs.TRACKING_URI: stack.tracking_uri,
        Outputs.ADMIN_USERNAME: stack.admin_username,
        Outputs.ADMIN_PASSWORD: password or stack.admin_password,
        Outputs.REGION: stack.region,
        Outputs.ARTIFACT_BUCKET: stack.bucket,
    }
    (directory / "outputs.json").write_text(json.dumps(outputs))
    written = run_cli("env", "--outputs", "outputs.json", "--out", "mlflow.env", cwd=directory)
    assert written.returncode == 0, written.stderr
    return directory / "mlflow.env"


def step_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " ... " in line]


@pytest.fixture
def healthy(stack: loopback.LoopbackStack) -> loopback.LoopbackStack:
    """The stack with MLflow and nginx running (a test that stops one leaves it stopped: restarts are slow)."""
    if stack.mlflow_pid is None:
        stack.start_mlflow()
    if stack.nginx is None:
        stack.start_nginx()
    return stack


@pytest.fixture(scope="module")
def passing_smoke(stack: loopback.LoopbackStack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One smoke run against the healthy stack; its output."""
    directory = tmp_path_factory.mktemp("smoke")
    write_env_file(stack, directory)
    result = run_cli("smoke", "--env", "mlflow.env", cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_smoke_passes_every_step_against_a_healthy_server(passing_smoke: str) -> None:
    lines = step_lines(passing_smoke)
    assert [line.split(" ... ")[0].rstrip() for line in lines] == STEP_NAMES
    assert all(" ... ok (" in line and line.endswith(" s)") for line in lines), passing_smoke
    assert "smoke test passed" in passing_smoke


def test_smoke_reads_the_servers_release_and_finds_the_client_no_newer(passing_smoke: str) -> None:
    (line,) = [line for line in step_lines(passing_smoke) if line.startswith("server version (/version)")]
    assert " ... ok (" in line
    assert "warning:" not in passing_smoke  # the test client and the loopback server run the same release


def test_smoke_artifacts_land_in_the_artifact_bucket(stack: loopback.LoopbackStack, passing_smoke: str) -> None:
    keys = [item["Key"] for item in stack.s3_client().list_objects_v2(Bucket=stack.bucket).get("Contents", [])]
    assert any(key.endswith("/artifacts/smoke.bin") for key in keys), keys
    assert any(key.endswith("/MLmodel") for key in keys), keys


def admin_client(stack: loopback.LoopbackStack, monkeypatch: pytest.MonkeyPatch) -> Any:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack.admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.admin_password)
    return mlflow.MlflowClient(stack.tracking_uri, stack.tracking_uri)


def test_smoke_passes_again_after_someone_deleted_its_experiment(
    healthy: loopback.LoopbackStack, passing_smoke: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = admin_client(healthy, monkeypatch)
    experiment = client.get_experiment_by_name(smoke.EXPERIMENT)
    client.delete_experiment(experiment.experiment_id)
    write_env_file(healthy, tmp_path)
    result = run_cli("smoke", "--env", "mlflow.env", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert client.get_experiment(experiment.experiment_id).lifecycle_stage == "active"


def test_smoke_registers_on_its_server_whatever_registry_uri_the_caller_has(
    healthy: loopback.LoopbackStack, passing_smoke: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere.db"
    write_env_file(healthy, tmp_path)
    result = run_cli("smoke", "--env", "mlflow.env", cwd=tmp_path, MLFLOW_REGISTRY_URI=f"sqlite:///{elsewhere}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not elsewhere.exists(), "the model version went to the caller's registry, not the server's"


def only_failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in step_lines(result.stdout) if "FAILED" in line]
    assert len(failed) == 1, result.stdout
    return failed[0]


def test_smoke_with_a_wrong_password_says_the_credentials_were_rejected(
    healthy: loopback.LoopbackStack, tmp_path: Path
) -> None:
    write_env_file(healthy, tmp_path, password=generated_admin_password())
    failed = only_failure(run_cli("smoke", "--env", "mlflow.env", cwd=tmp_path))
    assert failed.startswith("authenticate")
    assert f"credentials rejected by {healthy.tracking_uri} (HTTP 401)" in failed


def test_smoke_with_the_whole_server_stopped_says_it_cannot_reach_it(
    healthy: loopback.LoopbackStack, tmp_path: Path
) -> None:
    write_env_file(healthy, tmp_path)
    healthy.stop_nginx()
    failed = only_failure(run_cli("smoke", "--env", "mlflow.env", cwd=tmp_path))
    assert failed.startswith("reach server")
    assert f"cannot reach {healthy.tracking_uri} (connection refused)" in failed and "instance is running" in failed


def test_smoke_with_mlflow_stopped_behind_nginx_says_mlflow_does_not_answer(
    healthy: loopback.LoopbackStack, tmp_path: Path
) -> None:
    write_env_file(healthy, tmp_path)
    healthy.stop_mlflow()
    failed = only_failure(run_cli("smoke", "--env", "mlflow.env", cwd=tmp_path))
    assert failed.startswith("reach server")
    assert "MLflow behind it does not (HTTP 502)" in failed and "mlflow service" in failed
