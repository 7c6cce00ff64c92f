"""The `tls: off` user data booted for real, twice: cloud-init runs the document EC2 would receive, systemd
(PID 1) starts nginx and mlflow.service with their sandboxing, and a client uses the server.

One container for the whole module (a boot costs a minute or more). Its first boot starts with one
SSM parameter missing, as when the host comes up before `pulumi up` has written it: the `waiting`
fixture watches mlflow.service wait for it before anything puts it, and one test sees the service come
up by itself once it is put. The others use the healthy first boot (in any order; `healthy` puts the
parameter if that test has not); the reboot test powers the container off and boots the same root again.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import mlflow
import mlflow.pyfunc
import pandas as pd  # type: ignore[import-untyped]
import pytest
import requests
from mlflow.tracking import MlflowClient

import naming
import userdata
from tests.boot.conftest import require_boot
from tests.support import boot, host_role
from tests.support.boot_stack import BootedHost, boot_settings
from tests.support.loopback import parse_env_file
from userdata import layout

pytestmark = pytest.mark.boot

MISSING = naming.DB_PASSWORD  # a SecureString: its value is also one the secret scan looks for
FIRST_BOOT_TIMEOUT_SECONDS = 900.0  # packages, MLflow's install (cold download caches), schemas
PARAMETER_PICKUP_TIMEOUT_SECONDS = 180.0  # the configure step retries every 10 s at most
REBOOT_TIMEOUT_SECONDS = 300.0
ARTIFACT_BYTES = 10 * 1024 * 1024
MODEL_NAME = "boot-add-one"
MAX_EXPOSURE = {layout.UNIT_NAME: 3.5, layout.NGINX_UNIT_NAME: 5.0}


class AddOne(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    def predict(self, context, model_input, params=None):
        return model_input["x"] + 1


@pytest.fixture(scope="module")
def booted() -> Iterator[BootedHost]:
    require_boot()
    with boot.boot_workdir("mlflow-aws-boot-") as workdir, \
            BootedHost(boot_settings(tls="off"), workdir, missing_parameter=MISSING) as host:
        yield host


@dataclass(frozen=True)
class WaitingForParameter:
    """What the first boot showed while MISSING was absent, seen before anything put it."""

    lines: list[str]  # the configure step's lines naming it, from at least two tries
    unit_state: tuple[str, str]  # mlflow.service's (ActiveState, SubState)
    health_status: int | None  # /health through nginx (None: no answer)


@pytest.fixture(scope="module")
def waiting(booted: BootedHost) -> WaitingForParameter:
    """The first boot watched until the configure step has tried twice without MISSING: whichever test
    runs first, this is seen before `healthy` puts the parameter."""
    container = booted.running()
    line = f"missing SSM parameter(s): {booted.parameter_name(MISSING)};"

    def retries() -> list[str] | None:
        journal = container.journal("--unit", layout.UNIT_NAME, "--output", "cat")
        found = [text for text in journal.splitlines() if line in text]
        return found if len(found) >= 2 else None

    found = boot.wait_until(f"mlflow.service logging {line!r} on two tries", retries, FIRST_BOOT_TIMEOUT_SECONDS,
                            interval=1.0, describe=container.diagnosis)
    state = boot.unit_state(container, layout.UNIT_NAME)
    return WaitingForParameter(found, (state["ActiveState"], state["SubState"]),
                               boot.http_status("http://127.0.0.1/health"))


@pytest.fixture
def healthy(booted: BootedHost, waiting: WaitingForParameter) -> BootedHost:
    """The first boot, healthy: the missing parameter put (once the boot was seen waiting), /health 200."""
    booted.put_missing_parameter()
    booted.running().wait_for_health(timeout=FIRST_BOOT_TIMEOUT_SECONDS)
    return booted


@pytest.fixture
def client(healthy: BootedHost, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    """The MLflow client with only the tracking URI and the admin's login: no AWS key anywhere near it."""
    for key in [key for key in os.environ if key.startswith(("AWS_", "MLFLOW_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", healthy.admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", healthy.admin_password)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    mlflow.set_tracking_uri(healthy.tracking_uri)
    yield MlflowClient(healthy.tracking_uri)
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None restores the default


def test_a_parameter_missing_at_first_boot_keeps_mlflow_waiting_with_a_line_naming_it_then_it_comes_up(
        booted, waiting):
    name = booted.parameter_name(MISSING)
    for text in waiting.lines:
        assert text.startswith("mlflow-configure: SSM: missing SSM parameter(s): ")
        assert text.count("/") == name.count("/"), f"only the missing parameter is named: {text}"
    assert waiting.unit_state == ("activating", "start-pre")
    assert waiting.health_status == 502  # nginx is up, MLflow is not

    container = booted.running()
    booted.put_missing_parameter()
    boot.wait_until("/health 200 once the parameter exists",
                    lambda: True if boot.http_status("http://127.0.0.1/health") == 200 else None,
                    PARAMETER_PICKUP_TIMEOUT_SECONDS, describe=container.diagnosis)
    journal = container.journal("--unit", layout.UNIT_NAME, "--output", "cat")
    assert f"mlflow-configure: read {len(naming.HOST_PARAMETERS)} SSM parameters" in journal


def test_cloud_init_finishes_done_without_errors_or_recoverable_errors(healthy):
    container = healthy.running()
    container.wait_for_cloud_init()
    status = json.loads(container.check(["cloud-init", "status", "--long", "--format", "json"]))
    assert status["status"] == "done", status
    assert status["errors"] == []
    assert status["recoverable_errors"] == {}
    assert "DataSourceNoCloud" in status["detail"]


def test_no_unit_failed_and_the_system_is_running(healthy):
    container = healthy.running()
    assert container.check(["systemctl", "--failed", "--no-legend", "--plain"]).strip() == ""
    assert container.run(["systemctl", "is-system-running"]).stdout.strip() == "running"


def test_the_bootstrap_fetched_the_host_files_from_s3_as_the_role_through_the_metadata_service(healthy):
    # DESIGN decision 16: the user data names the object; moto (authorization on) served it to the host
    # role's session that the bootstrap found through the metadata stand-in, and every file is as uploaded.
    assert healthy.root is not None
    bundle, bucket = healthy.stack.host_bundle, healthy.settings.host_files_bucket
    output = healthy.root.read("/var/log/cloud-init-output.log")
    deferred = sum(file.defer for file in userdata.host_files(healthy.settings))
    assert f"mlflow-host-files: wrote the 1 early files of {bundle.key}" in output
    assert f"mlflow-host-files: wrote the {deferred} deferred files of {bundle.key}" in output
    fetches = [line for line in healthy.stack.moto.log.read_text().splitlines()
               if f"s3:GetObject on arn:aws:s3:::{bucket}/{bundle.key}" in line]
    assert fetches and all(line.startswith("moto-authorization: allowed arn:aws:sts::") and
                           f":assumed-role/{host_role.HOST_ROLE}/" in line for line in fetches), fetches
    for file in userdata.host_files(healthy.settings):
        written = healthy.root.path(file.path)
        assert written.read_text() == file.content, file.path
        assert stat.S_IMODE(written.stat().st_mode) == int(file.permissions, 8), file.path


def test_health_answers_through_nginx_without_credentials(healthy):
    response = requests.get(f"{healthy.tracking_uri}/health", timeout=10)
    assert response.status_code == 200
    assert response.text == "OK"
    assert requests.get(f"{healthy.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=1",
                        timeout=10).status_code == 401


def test_the_server_signs_with_the_instance_role_credentials_and_holds_no_key(healthy):
    container = healthy.running()
    assert healthy.imds is not None
    assert healthy.imds.credential_reads >= 1, "the host's credential chain never asked the metadata service"
    assert healthy.imds.refused == 0, "a metadata request came without an IMDSv2 token"
    environment = container.check(["systemctl", "show", layout.UNIT_NAME, "--property=Environment"])
    assert "AWS_ACCESS_KEY_ID" not in environment and "AWS_SECRET_ACCESS_KEY" not in environment


def test_a_client_with_only_the_uri_and_login_logs_a_run_an_artifact_and_a_model_and_reads_them_back(
        healthy, client, tmp_path):
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(ARTIFACT_BYTES))
    experiment_id = mlflow.set_experiment("boot").experiment_id
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metric("loss", 0.25, step=1)
        mlflow.log_artifact(str(source), artifact_path="big")
        info = mlflow.pyfunc.log_model(name="model", python_model=AddOne(), registered_model_name=MODEL_NAME,
                                       pip_requirements=["mlflow"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), "artifacts must be proxied, not s3://"

    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.25]
    downloaded = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="big/weights.bin",
                                                          dst_path=str(tmp_path / "download")))
    assert downloaded.read_bytes() == source.read_bytes()
    assert str(info.registered_model_version) == "1"
    assert client.get_registered_model(MODEL_NAME).latest_versions[0].run_id == run.info.run_id
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    assert list(loaded.predict(pd.DataFrame({"x": [1, 2]}))) == [2, 3]
    keys = [o["Key"] for o in healthy.stack.s3_client().list_objects_v2(Bucket=healthy.settings.artifact_bucket)
            .get("Contents", [])]
    assert any(key.endswith(f"{run.info.run_id}/artifacts/big/weights.bin") for key in keys)


@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_systemd_analyze_security_exposure_stays_within_the_limit(healthy, unit):
    score = boot.exposure(healthy.running(), unit)
    assert score <= MAX_EXPOSURE[unit], f"{unit}: exposure {score} > {MAX_EXPOSURE[unit]}"


def test_sandboxed_nginx_listens_reloads_and_writes_its_logs(healthy):
    container = healthy.running()
    assert healthy.root is not None
    state = boot.unit_state(container, layout.NGINX_UNIT_NAME)
    assert layout.NGINX_HARDENING_DROP_IN in state["DropInPaths"].split()
    assert state["ActiveState"] == "active"
    listening = container.check(["ss", "--listening", "--tcp", "--numeric", "--processes"])
    assert any(f":{layout.HTTP_PORT} " in line and "nginx" in line for line in listening.splitlines()), listening

    container.check(["systemctl", "reload", layout.NGINX_UNIT_NAME])
    container.check(["nginx", "-s", "reload"])
    assert boot.unit_state(container, layout.NGINX_UNIT_NAME)["ActiveState"] == "active"
    marker = f"/boot-log-check-{os.getpid()}"
    assert requests.get(f"{healthy.tracking_uri}{marker}", timeout=10).status_code == 401
    # nginx logs a request after it has answered it: wait for the line rather than race it.
    root = healthy.root
    boot.wait_until("the request in nginx's access log",
                    lambda: True if marker in root.read("/var/log/nginx/access.log") else None, timeout=10)
    errors = healthy.root.read("/var/log/nginx/error.log")
    assert "[alert]" not in errors and "[emerg]" not in errors and "[crit]" not in errors, errors


def test_no_secret_value_in_the_journal_cloud_init_logs_or_rendered_files(healthy):
    container = healthy.running()
    assert healthy.root is not None
    secrets = healthy.secret_values
    assert len(secrets) == len([p for p in naming.HOST_PARAMETERS if p.secure])
    texts = {
        "journalctl -b": container.journal("--output", "export"),
        **{path: healthy.root.read(path) for path in (
            "/var/log/cloud-init.log", "/var/log/cloud-init-output.log",
            # /var/lib/cloud/instance links there, absolutely: read through the root, not the link.
            f"/var/lib/cloud/instances/{healthy.instance_id}/user-data.txt",
            f"/var/lib/cloud/instances/{healthy.instance_id}/cloud-config.txt")},
        **{path: healthy.root.read(path) for path in healthy.files},
    }
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text and quote(secret, safe="") not in text, f"a secret value is in {where}"
    # Where they belong: the configure step's private files, which the scan above would have caught.
    env_file = healthy.root.path(layout.ENV_FILE)
    assert healthy.admin_password == parse_env_file(env_file.read_text())["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_reboot_comes_back_healthy_without_reinstalling_and_with_the_configure_fast_path(healthy):
    container = healthy.reboot()
    container.wait_for_health(timeout=REBOOT_TIMEOUT_SECONDS)
    journal = container.journal("--unit", layout.UNIT_NAME, "--output", "cat")
    assert "no upgrade needed" in journal, journal[-3000:]
    assert "mlflow-install: installing" not in journal
    assert "tracking schema is current" not in journal
    container.wait_for_cloud_init()
    status = json.loads(container.check(["cloud-init", "status", "--long", "--format", "json"]))
    assert status["status"] == "done" and status["errors"] == [] and status["recoverable_errors"] == {}
    assert container.check(["systemctl", "--failed", "--no-legend", "--plain"]).strip() == ""
    search = f"{healthy.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, auth=(healthy.admin_username, healthy.admin_password), timeout=10).status_code == 200
