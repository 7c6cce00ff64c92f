"""The rendered host, running: MLflow from the rendered unit behind nginx from the rendered site, with
PostgreSQL (SSL) as the backend store and moto as S3 and SSM (tests/support/loopback.py).

The tests share one stack (tests/host/conftest.py); the restart test comes last because it restarts
the server and changes the admin password.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd  # type: ignore[import-untyped]
import psycopg2
import pytest
import requests
from mlflow.tracking import MlflowClient

import naming
from tests.support.loopback import LoopbackStack
from userdata import layout

pytestmark = pytest.mark.host

ARTIFACT_BYTES = 200 * 1024 * 1024
MODEL_NAME = "loopback-add-one"
EXPERIMENT = "loopback"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


class AddOne(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    def predict(self, context, model_input, params=None):
        return model_input["x"] + 1


def point_mlflow_at(stack: LoopbackStack, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """The MLflow client pointed at nginx with the admin's credentials (and no AWS credentials)."""
    for key in [key for key in os.environ if key.startswith(("AWS_", "MLFLOW_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack.admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.admin_password)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    mlflow.set_tracking_uri(stack.tracking_uri)
    return MlflowClient(stack.tracking_uri)


@pytest.fixture
def client(loopback_stack, monkeypatch):
    yield point_mlflow_at(loopback_stack, monkeypatch)
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None restores the default


@dataclass(frozen=True)
class LoggedRun:
    experiment_id: str
    run_id: str


@pytest.fixture(scope="module")
def logged_run(loopback_stack) -> Iterator[LoggedRun]:
    """A run with two params and five losses, logged through nginx by the stock client as the admin, in
    the experiment the tests below read it back from or log beside it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_mlflow_at(loopback_stack, monkeypatch)
        try:
            experiment_id = mlflow.set_experiment(EXPERIMENT).experiment_id
            with mlflow.start_run() as run:
                mlflow.log_params({"learning_rate": "0.01", "layers": "3"})
                for step in range(5):
                    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        finally:
            mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    yield LoggedRun(experiment_id, run.info.run_id)


def write_random_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    generator = random.Random(20240601)
    chunk_size = 8 * 1024 * 1024
    with path.open("wb") as handle:
        for offset in range(0, size, chunk_size):
            chunk = generator.randbytes(min(chunk_size, size - offset))
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def test_health_answers_without_credentials(loopback_stack):
    response = requests.get(f"{loopback_stack.tracking_uri}/health", timeout=10)
    assert response.status_code == 200
    assert response.text == "OK"


def test_api_refuses_missing_and_wrong_passwords(loopback_stack):
    url = f"{loopback_stack.tracking_uri}{SEARCH}"
    assert requests.get(url, timeout=10).status_code == 401
    wrong = requests.get(url, auth=(loopback_stack.admin_username, "not-the-password"), timeout=10)
    assert wrong.status_code == 401
    right = requests.get(url, auth=(loopback_stack.admin_username, loopback_stack.admin_password), timeout=10)
    assert right.status_code == 200


def test_public_hostname_is_allowed_and_a_foreign_host_header_is_not(loopback_stack):
    auth = (loopback_stack.admin_username, loopback_stack.admin_password)
    url = f"{loopback_stack.tracking_uri}{SEARCH}"
    public = requests.get(url, auth=auth, headers={"Host": loopback_stack.settings.public_hostname}, timeout=10)
    assert public.status_code == 200
    foreign = requests.get(url, auth=auth, headers={"Host": "attacker.example"}, timeout=10)
    assert foreign.status_code in (400, 403)


def test_experiment_params_and_metrics_through_nginx(client, logged_run):
    fetched = client.get_run(logged_run.run_id)
    assert fetched.info.experiment_id == client.get_experiment_by_name(EXPERIMENT).experiment_id
    assert fetched.data.params == {"learning_rate": "0.01", "layers": "3"}
    assert [m.value for m in client.get_metric_history(logged_run.run_id, "loss")] == [1.0, 0.5, 1 / 3, 0.25, 0.2]


def test_the_run_is_in_postgresql(loopback_stack, logged_run):
    connection = psycopg2.connect(loopback_stack.postgres_dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT experiment_id FROM runs WHERE run_uuid = %s", (logged_run.run_id,))
            assert cursor.fetchone() == (int(logged_run.experiment_id),)
            cursor.execute("SELECT value FROM params WHERE run_uuid = %s AND key = 'layers'", (logged_run.run_id,))
            assert cursor.fetchone() == ("3",)
    finally:
        connection.close()


def test_200_mb_artifact_round_trips_byte_identical_and_lands_in_s3(loopback_stack, client, logged_run, tmp_path):
    source = tmp_path / "weights.bin"
    digest = write_random_file(source, ARTIFACT_BYTES)
    with mlflow.start_run(experiment_id=logged_run.experiment_id) as run:
        mlflow.log_artifact(str(source), artifact_path="big")
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), "artifacts must be proxied, not s3://"

    downloaded = Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="big/weights.bin", dst_path=str(tmp_path / "download")))
    assert downloaded.stat().st_size == ARTIFACT_BYTES
    assert sha256_of(downloaded) == digest
    downloaded.unlink()

    objects = loopback_stack.s3_client().list_objects_v2(Bucket=loopback_stack.bucket)["Contents"]
    (stored_object,) = [o for o in objects if o["Key"].endswith(f"{run.info.run_id}/artifacts/big/weights.bin")]
    assert stored_object["Size"] == ARTIFACT_BYTES


def test_the_artifact_listing_is_answered_by_mlflow_through_nginx_not_redirected(loopback_stack, client, logged_run):
    """`mlflow-artifacts/artifacts?path=` is the listing; nginx's artifact location (`.../artifacts/`) must not
    turn it into a 301 to the download route, which serves the artifact root as an empty file."""
    answer = requests.get(f"{loopback_stack.tracking_uri}/api/2.0/mlflow-artifacts/artifacts",
                          params={"path": f"{logged_run.experiment_id}/{logged_run.run_id}/artifacts"},
                          auth=(loopback_stack.admin_username, loopback_stack.admin_password),
                          allow_redirects=False, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert isinstance(answer.json(), dict)


def test_register_a_model_and_load_it_back(client, logged_run):
    with mlflow.start_run(experiment_id=logged_run.experiment_id):
        info = mlflow.pyfunc.log_model(name="model", python_model=AddOne(), registered_model_name=MODEL_NAME,
                                       pip_requirements=["mlflow"])
    assert str(info.registered_model_version) == "1"
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    assert list(loaded.predict(pd.DataFrame({"x": [1, 2, 3]}))) == [2, 3, 4]


def test_secrets_never_reach_the_user_data_or_a_command_line(loopback_stack):
    secrets = loopback_stack.secret_values
    assert len(secrets) == len([p for p in naming.HOST_PARAMETERS if p.secure])
    command_lines = [Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                     for pid in loopback_stack.mlflow_process_ids()]
    assert command_lines
    for secret in secrets:
        assert secret not in loopback_stack.user_data
        assert not any(secret in line for line in command_lines)


def test_configure_step_writes_its_secrets_only_to_private_files(loopback_stack):
    for host_path in (layout.ENV_FILE, layout.AUTH_CONFIG):
        mode = stat.S_IMODE(loopback_stack.path(host_path).stat().st_mode)
        assert mode == 0o600, f"{host_path} is {oct(mode)}"
    env = loopback_stack.env_file_values()
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith(f"/{naming.TRACKING_DATABASE}?sslmode=require")
    assert env["MLFLOW_AUTH_ADMIN_USERNAME"] == loopback_stack.admin_username
    flask_key = loopback_stack.parameters[naming.parameter_name(loopback_stack.settings.ssm_prefix,
                                                                naming.FLASK_SECRET_KEY)]
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == flask_key


def test_restart_keeps_everything_and_applies_a_new_admin_password_from_ssm(loopback_stack, client, tmp_path):
    experiment_id = mlflow.set_experiment("before-restart").experiment_id
    (tmp_path / "notes.txt").write_text("kept across restarts\n")
    with mlflow.start_run() as run:
        mlflow.log_param("phase", "before")
        mlflow.log_metric("accuracy", 0.93)
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.pyfunc.log_model(name="model", python_model=AddOne(), registered_model_name="before-restart",
                                pip_requirements=["mlflow"])

    old_password = loopback_stack.admin_password
    loopback_stack.set_admin_password("rotated-" + os.urandom(12).hex())
    loopback_stack.restart_mlflow()

    url = f"{loopback_stack.tracking_uri}{SEARCH}"
    assert requests.get(url, auth=(loopback_stack.admin_username, old_password), timeout=10).status_code == 401
    os.environ["MLFLOW_TRACKING_PASSWORD"] = loopback_stack.admin_password  # restored by the fixture
    assert client.get_experiment_by_name("before-restart").experiment_id == experiment_id
    kept = client.get_run(run.info.run_id)
    assert kept.data.params == {"phase": "before"}
    assert kept.data.metrics == {"accuracy": 0.93}
    notes = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="notes.txt",
                                                dst_path=str(tmp_path / "download"))
    assert Path(notes).read_text() == "kept across restarts\n"
    loaded = mlflow.pyfunc.load_model("models:/before-restart/1")
    assert list(loaded.predict(pd.DataFrame({"x": [41]}))) == [42]
