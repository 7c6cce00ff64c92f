"""`mlflow-aws smoke`: prove the server works end to end, the way training code and prediction apps use it.

Creates a run in experiment `mlflow-aws-smoke`, logs a param, a metric and a small artifact, logs
and registers a tiny model, then reads every one of them back and asks the model for a prediction.
One line per step with its time; the first failure stops the run with one line saying what to check.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import smoke_diagnosis

EXPERIMENT = "mlflow-aws-smoke"
REGISTERED_MODEL = "mlflow-aws-smoke-model"
PROBE_TIMEOUT_SECONDS = 15
# Bounded retries and short timeouts: a broken server fails the smoke test in seconds, not minutes.
MLFLOW_CLIENT_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
# A smoke test talks to the user's server only: no usage telemetry to mlflow.org.
FORCED_SETTINGS = {"MLFLOW_DISABLE_TELEMETRY": "true"}
MODEL_INPUT = [1.0, 2.5]
METRIC_VALUE = 0.875
# The client release range of pyproject.toml (the policy: README, "The client's MLflow").
CLIENT_MLFLOW = "mlflow-skinny>=3.5,<3.18"
MISSING_MLFLOW = f"smoke needs the MLflow client library; install it: pip install '{CLIENT_MLFLOW}' pandas"


def client_mlflow_version() -> str | None:
    """The MLflow client release installed here (mlflow-skinny, or the full mlflow)."""
    for distribution in ("mlflow-skinny", "mlflow"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(distribution)
    return None


def newer_client_warning(client: str, server: str) -> str | None:
    """Why a client `client` talking to a server `server` may surprise, or None. The policy (README,
    "The client's MLflow"): a client of a later minor release than the server's may call REST APIs the
    server does not have yet; patch releases add none."""
    from packaging.version import InvalidVersion, Version

    try:
        client_version, server_version = Version(client), Version(server)
    except InvalidVersion:
        return None
    if client_version.release[:2] <= server_version.release[:2]:
        return None
    return (
        f"this client's MLflow {client} is newer than the server's {server}: a later minor release may call "
        f"APIs the server does not have; install the server's release here: pip install 'mlflow-skinny=={server}'"
    )


class SmokeFailure(Exception):
    """A step's one-line verdict: what failed and what to check."""


class UsageError(ValueError):
    pass


@dataclass(frozen=True)
class Connection:
    tracking_uri: str
    username: str | None
    password: str | None


def read_env_file(path: Path) -> dict[str, str]:
    """The file `mlflow-aws env` writes: KEY=VALUE lines, values raw (docker --env-file rules), # comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read env file {path}: {error}; write it with `mlflow-aws env`") from error
    values: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped and not stripped.startswith("#") and "=" in stripped:
            key, _, value = stripped.partition("=")
            values[key] = value
    return values


def connection_from(values: Mapping[str, str], origin: str) -> Connection:
    uri = values.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        raise UsageError(f"MLFLOW_TRACKING_URI is not set in {origin}; write an env file with `mlflow-aws env`")
    if not uri.startswith(("http://", "https://")):
        raise UsageError(f"MLFLOW_TRACKING_URI {uri!r} in {origin} is not an http(s) URL")
    return Connection(
        uri.rstrip("/"), values.get("MLFLOW_TRACKING_USERNAME") or None, values.get("MLFLOW_TRACKING_PASSWORD") or None
    )


@contextlib.contextmanager
def client_environment(connection: Connection) -> Iterator[None]:
    """Credentials and bounded retries in os.environ (where the MLflow client reads them), restored after."""
    wanted: dict[str, str | None] = {
        "MLFLOW_TRACKING_URI": connection.tracking_uri,
        "MLFLOW_TRACKING_USERNAME": connection.username,
        "MLFLOW_TRACKING_PASSWORD": connection.password,
        # The fluent API registers and loads models through the registry URI: the same server, whatever
        # the caller's environment points at.
        "MLFLOW_REGISTRY_URI": connection.tracking_uri,
    }
    wanted.update({key: os.environ.get(key, value) for key, value in MLFLOW_CLIENT_SETTINGS.items()})
    wanted.update(FORCED_SETTINGS)
    saved = {key: os.environ.get(key) for key in wanted}
    try:
        for key, value in wanted.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, previous in saved.items():
            if previous is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = previous


def _tls_verify() -> bool | str:
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        return False
    return os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True


@dataclass
class SmokeRun:
    connection: Connection
    workdir: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    experiment_id: str = ""
    run_id: str = ""
    model_version: str = ""
    artifact_bytes: bytes = b""
    warnings: list[str] = field(default_factory=list)

    def _probe(self, path: str, *, authenticated: bool) -> Any:
        import requests

        auth = (self.connection.username or "", self.connection.password or "") if authenticated else None
        try:
            response = requests.get(
                self.connection.tracking_uri + path, auth=auth, timeout=PROBE_TIMEOUT_SECONDS, verify=_tls_verify()
            )
        except requests.RequestException as error:
            raise SmokeFailure(self.explain(error)) from error
        if response.status_code != 200:
            raise SmokeFailure(
                smoke_diagnosis.http_status(
                    response.status_code, response.text, self.connection.tracking_uri, self.connection.username
                )
            )
        return response

    def _client(self) -> Any:
        import mlflow

        return mlflow.MlflowClient(self.connection.tracking_uri, self.connection.tracking_uri)

    def explain(self, error: BaseException) -> str:
        return smoke_diagnosis.exception(error, self.connection.tracking_uri, self.connection.username)

    def reach_server(self) -> None:
        self._probe("/health", authenticated=False)

    def authenticate(self) -> None:
        self._probe("/api/2.0/mlflow/experiments/search?max_results=1", authenticated=True)

    def compare_versions(self) -> None:
        """The server's MLflow release against this client's: a newer client is a warning, not a failure."""
        server = self._probe("/version", authenticated=True).text.strip()
        client = client_mlflow_version()
        warning = newer_client_warning(client, server) if client else None
        if warning:
            self.warnings.append(warning)

    def open_experiment(self) -> None:
        client = self._client()
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            self.experiment_id = client.create_experiment(EXPERIMENT)
            return
        self.experiment_id = experiment.experiment_id
        # Someone deleted it (it stays in the trash until purged): runs need it active again.
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(self.experiment_id)

    def create_run(self) -> None:
        run = self._client().create_run(self.experiment_id, run_name=f"smoke-{self.token}")
        self.run_id = run.info.run_id

    def log_param(self) -> None:
        self._client().log_param(self.run_id, "smoke_token", self.token)

    def log_metric(self) -> None:
        self._client().log_metric(self.run_id, "smoke_metric", METRIC_VALUE, step=1)

    def log_artifact(self) -> None:
        self.artifact_bytes = f"mlflow-aws smoke {self.token}\n".encode() + os.urandom(64)
        source = self.workdir / "upload" / "smoke.bin"
        source.parent.mkdir()
        source.write_bytes(self.artifact_bytes)
        self._client().log_artifact(self.run_id, str(source))

    def register_model(self) -> None:
        import mlflow

        from .smoke_model import Doubler

        with mlflow.start_run(run_id=self.run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=Doubler(),
                registered_model_name=REGISTERED_MODEL,
                pip_requirements=["mlflow-skinny"],
                await_registration_for=30,
            )
        if info.registered_model_version is None:
            raise SmokeFailure(f"model logged but no version of {REGISTERED_MODEL!r} was registered")
        self.model_version = str(info.registered_model_version)

    def read_run(self) -> None:
        run = self._client().get_run(self.run_id)
        if run.data.params.get("smoke_token") != self.token:
            raise SmokeFailure(f"param smoke_token read back as {run.data.params.get('smoke_token')!r}")
        if run.data.metrics.get("smoke_metric") != METRIC_VALUE:
            raise SmokeFailure(f"metric smoke_metric read back as {run.data.metrics.get('smoke_metric')!r}")
        if run.info.status != "FINISHED":
            raise SmokeFailure(f"run status read back as {run.info.status}, expected FINISHED")

    def download_artifact(self) -> None:
        target = self.workdir / "download"
        target.mkdir()
        local = self._client().download_artifacts(self.run_id, "smoke.bin", str(target))
        if Path(local).read_bytes() != self.artifact_bytes:
            raise SmokeFailure("artifact smoke.bin downloaded with different bytes than were uploaded")

    def read_model_version(self) -> None:
        version = self._client().get_model_version(REGISTERED_MODEL, self.model_version)
        if version.run_id != self.run_id or version.status != "READY":
            raise SmokeFailure(
                f"model version {self.model_version} read back with run {version.run_id}, status {version.status}"
            )

    def load_and_predict(self) -> None:
        import mlflow

        model = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL}/{self.model_version}")
        prediction = [float(value) for value in model.predict(MODEL_INPUT)]
        expected = [2 * value for value in MODEL_INPUT]
        if prediction != expected:
            raise SmokeFailure(f"model predicted {prediction} for {MODEL_INPUT}, expected {expected}")

    def end_unfinished_run(self) -> None:
        """A failed smoke run is marked FAILED rather than left RUNNING for ever."""
        if not self.run_id:
            return
        with contextlib.suppress(Exception):  # the server may be what failed; nothing more to say then
            client = self._client()
            if client.get_run(self.run_id).info.status == "RUNNING":
                client.set_terminated(self.run_id, "FAILED")

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        return [
            ("reach server (/health)", self.reach_server),
            ("authenticate", self.authenticate),
            ("server version (/version)", self.compare_versions),
            (f"experiment {EXPERIMENT}", self.open_experiment),
            ("create run", self.create_run),
            ("log param", self.log_param),
            ("log metric", self.log_metric),
            ("log artifact", self.log_artifact),
            ("log and register model", self.register_model),
            ("read back run", self.read_run),
            ("read back artifact", self.download_artifact),
            ("read back model version", self.read_model_version),
            ("load model and predict", self.load_and_predict),
        ]


def run_steps(steps: list[tuple[str, Callable[[], None]]], explain: Callable[[BaseException], str]) -> bool:
    width = max(len(name) for name, _ in steps)
    for name, step in steps:
        started = time.perf_counter()
        try:
            # MLflow prints run links and "Created version" notes; they would break the one-line-per-step output.
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                step()
        except SmokeFailure as failure:
            verdict: str | None = str(failure)
        except Exception as error:
            verdict = explain(error)
        else:
            verdict = None
        elapsed = time.perf_counter() - started
        if verdict is not None:
            print(f"{name:<{width}} ... FAILED ({elapsed:.2f} s): {verdict}", flush=True)
            return False
        print(f"{name:<{width}} ... ok ({elapsed:.2f} s)", flush=True)
    return True


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow's own INFO lines (run links, 'Created version') would interleave with the step lines."""
    import logging
    import warnings

    logger = logging.getLogger("mlflow")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous)


def main(env_file: str | None) -> int:
    try:
        if env_file is None:
            connection = connection_from(os.environ, "the environment")
        else:
            connection = connection_from(read_env_file(Path(env_file)), env_file)
    except UsageError as error:
        print(f"mlflow-aws: error: {error}", file=sys.stderr)
        return 2
    # Found now, imported only when a step needs it: an unreachable server is reported in a second.
    # mlflow.pyfunc needs pandas and numpy, which mlflow-skinny alone does not bring.
    absent = [name for name in ("requests", "mlflow", "pandas", "numpy") if importlib.util.find_spec(name) is None]
    if absent:
        print(f"mlflow-aws: error: {MISSING_MLFLOW} (missing: {', '.join(absent)})", file=sys.stderr)
        return 2

    print(f"smoke test of {connection.tracking_uri} as {connection.username or '(no user)'}", flush=True)
    # The fluent API (start_run, log_model, load_model) finds the server through MLFLOW_TRACKING_URI.
    with (
        tempfile.TemporaryDirectory(prefix="mlflow-aws-smoke-") as workdir,
        client_environment(connection),
        _quiet_mlflow(),
    ):
        smoke = SmokeRun(connection, Path(workdir))
        ok = False
        try:
            ok = run_steps(smoke.steps(), smoke.explain)
        finally:
            fluent = sys.modules.get("mlflow")
            if fluent is not None and fluent.active_run() is not None:
                fluent.end_run("FAILED")
            if not ok:
                smoke.end_unfinished_run()
    for warning in smoke.warnings:
        print(f"warning: {warning}", flush=True)
    if ok:
        print(
            f"smoke test passed: run {smoke.run_id} in experiment {EXPERIMENT}, "
            f"model {REGISTERED_MODEL} version {smoke.model_version}",
            flush=True,
        )
    else:
        print("smoke test failed", flush=True)
    return 0 if ok else 1
