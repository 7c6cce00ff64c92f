"""The upgrade a team takes: `pulumi config set mlflowVersion <tested> && pulumi up` on a server that
ran an earlier release, proven on loopback.

A stack rendered for UPGRADE_FROM runs that release (a venv built with uv, tests/support/mlflow_venv.py)
and is given a team's data: a run with params, metrics and an artifact, a registered model with a
version and an alias, a trace, a prompt, a user with a grant. Then the host is "replaced": the user data
rendered for the tested release (pins.TESTED_MLFLOW_VERSION, the project's MLflow) is written over it
and the configure step runs, against the same PostgreSQL and bucket. Both schemas must be at the tested
release's alembic heads, and every item must read back. When the tested default moves on, UPGRADE_FROM
becomes the previous default.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import userdata
from tests.host.conftest import require_host_binaries
from tests.support import loopback
from tests.support.mlflow_venv import mlflow_venv
from userdata import layout, pins

pytestmark = pytest.mark.host

UPGRADE_FROM = "3.16.1"


def alembic_head(directory: Path) -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(directory))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def schema_revisions(stack: loopback.LoopbackStack) -> tuple[str, str]:
    revisions = []
    for dsn, table in ((stack.postgres_dsn, "alembic_version"), (stack.auth_postgres_dsn, "alembic_version_auth")):
        with loopback.autocommit_cursor(dsn) as cursor:
            cursor.execute(f"SELECT version_num FROM {table}")
            (row,) = cursor.fetchall()
            revisions.append(row[0])
    return revisions[0], revisions[1]


def render_for(stack: loopback.LoopbackStack, mlflow_version: str, venv: Path) -> None:
    """What a new host gets: the user data rendered for `mlflow_version`, its MLflow in `venv`."""
    stack.settings = dataclasses.replace(stack.settings, mlflow_version=mlflow_version)
    stack.user_data = userdata.render(stack.settings)
    stack.files = loopback.host_file_contents(stack.settings)
    stack.unit = loopback.unit_directives(stack.files[layout.UNIT_PATH])
    stack.replacements[layout.VENV_DIR] = str(venv)
    stack.write_host_files()


@pytest.fixture(scope="module")
def upgraded() -> Iterator[tuple[loopback.LoopbackStack, dict[str, Any], tuple[str, str]]]:
    """(the stack after the upgrade, what was written before it, the schema revisions before it)."""
    require_host_binaries()
    old_venv = mlflow_venv(UPGRADE_FROM)
    stack = loopback.LoopbackStack(start=False, mlflow_version=UPGRADE_FROM)
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "NO_PROXY")}
    try:
        stack.replacements[layout.VENV_DIR] = str(old_venv)
        stack.prepare()
        stack.start_postgres()
        stack.start_mlflow()
        stack.start_nginx()
        os.environ.update({"MLFLOW_TRACKING_USERNAME": stack.admin_username,
                           "MLFLOW_TRACKING_PASSWORD": stack.admin_password, "NO_PROXY": "127.0.0.1,localhost"})
        written = write_team_data(stack)
        before = schema_revisions(stack)
        stack.stop_mlflow()
        render_for(stack, pins.TESTED_MLFLOW_VERSION, Path(sys.prefix))
        stack.start_mlflow()
        yield stack, written, before
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stack.close()


def write_team_data(stack: loopback.LoopbackStack) -> dict[str, Any]:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(stack.tracking_uri)
    client = MlflowClient(stack.tracking_uri)
    experiment_id = client.create_experiment("upgrade-team")
    run = client.create_run(experiment_id, run_name="before-upgrade")
    run_id = run.info.run_id
    client.log_param(run_id, "alpha", "0.5")
    for step in range(3):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    artifact = Path(stack.root) / "notes.txt"
    artifact.write_text("written by " + UPGRADE_FROM)
    client.log_artifact(run_id, str(artifact), "docs")
    client.set_terminated(run_id)
    client.create_registered_model("upgrade-model")
    version = client.create_model_version("upgrade-model", f"runs:/{run_id}/docs", run_id=run_id)
    client.set_registered_model_alias("upgrade-model", "champion", version.version)
    trace = client.start_trace("answer", inputs={"q": "2+2"}, experiment_id=experiment_id)
    client.end_trace(trace.trace_id, outputs={"a": "4"})
    mlflow.flush_trace_async_logging()
    prompt = mlflow.genai.register_prompt(name="upgrade-prompt", template="Answer {{question}} briefly.")
    user, password = "upgrade-user", secrets.token_urlsafe(18)
    with requests.Session() as session:
        session.trust_env = False
        session.auth = (stack.admin_username, stack.admin_password)
        for path, body in (("/api/2.0/mlflow/users/create", {"username": user, "password": password}),
                           ("/api/3.0/mlflow/users/permissions/grant",
                            {"username": user, "resource_type": "experiment", "resource_id": experiment_id,
                             "permission": "EDIT"})):
            response = session.post(stack.tracking_uri + path, json=body, timeout=30)
            assert response.status_code == 200, response.text
        server_version = session.get(f"{stack.tracking_uri}/version", timeout=30).text.strip()
    return {"server_version": server_version, "experiment_id": experiment_id, "run_id": run_id,
            "version": version.version,
            "trace_id": trace.trace_id, "prompt_version": prompt.version, "user": user, "password": password}


def test_the_old_release_wrote_the_data_and_the_tested_one_serves_it(upgraded):
    stack, written, before = upgraded
    assert written["server_version"] == UPGRADE_FROM
    assert importlib.metadata.version("mlflow") == pins.TESTED_MLFLOW_VERSION
    with requests.Session() as session:
        session.trust_env = False
        session.auth = (stack.admin_username, stack.admin_password)
        assert session.get(f"{stack.tracking_uri}/version", timeout=30).text.strip() == pins.TESTED_MLFLOW_VERSION
    assert all(before)


def test_both_schemas_are_at_the_tested_releases_heads(upgraded):
    import mlflow.server.auth.db.migrations as auth_migrations
    import mlflow.store.db_migrations as tracking_migrations

    stack, _, _ = upgraded
    heads = (alembic_head(Path(tracking_migrations.__file__).parent),
             alembic_head(Path(auth_migrations.__file__).parent))
    assert schema_revisions(stack) == heads


def test_runs_metrics_and_artifacts_survive(upgraded, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    stack, written, _ = upgraded
    client = MlflowClient(stack.tracking_uri)
    run = client.get_run(written["run_id"])
    assert run.data.params == {"alpha": "0.5"}
    assert [m.value for m in client.get_metric_history(written["run_id"], "loss")] == [1.0, 0.5, 1.0 / 3]
    path = mlflow.artifacts.download_artifacts(run_id=written["run_id"], artifact_path="docs/notes.txt",
                                               dst_path=str(tmp_path), tracking_uri=stack.tracking_uri)
    assert Path(path).read_text() == "written by " + UPGRADE_FROM


def test_the_model_alias_trace_and_prompt_survive(upgraded):
    import mlflow
    from mlflow.tracking import MlflowClient

    stack, written, _ = upgraded
    client = MlflowClient(stack.tracking_uri)
    assert client.get_model_version_by_alias("upgrade-model", "champion").version == written["version"]
    assert client.get_trace(written["trace_id"]).info.experiment_id == written["experiment_id"]
    mlflow.set_tracking_uri(stack.tracking_uri)
    prompt = mlflow.genai.load_prompt(f"prompts:/upgrade-prompt/{written['prompt_version']}")
    assert prompt.template == "Answer {{question}} briefly."


def test_users_and_their_grants_survive_and_still_work(upgraded):
    stack, written, _ = upgraded
    with requests.Session() as session:
        session.trust_env = False
        session.auth = (written["user"], written["password"])
        response = session.post(f"{stack.tracking_uri}/api/2.0/mlflow/runs/create", timeout=30,
                                json={"experiment_id": written["experiment_id"]})
    assert response.status_code == 200, response.text


def test_going_back_to_the_older_release_is_refused_before_it_serves(upgraded):
    """A downgrade (mlflowVersion set back) finds a schema newer than its release knows: the configure
    step fails, so that host never starts MLflow on it (README: restore a snapshot instead). Last in
    this module: it leaves the older release's files in place."""
    stack, _, _ = upgraded
    render_for(stack, UPGRADE_FROM, mlflow_venv(UPGRADE_FROM))
    result = stack.configure()
    assert result.returncode != 0
    assert "Can't locate revision" in result.stderr or "revision" in result.stderr.lower(), result.stderr[-2000:]
