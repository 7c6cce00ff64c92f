"""A smoke run that fails after its MLflow run exists marks that run FAILED instead of leaving it RUNNING."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from client import smoke


class FakeRunInfo:
    def __init__(self, status: str) -> None:
        self.status = status


class FakeRun:
    def __init__(self, status: str) -> None:
        self.info = FakeRunInfo(status)


class FakeClient:
    """The two calls end_unfinished_run makes, recorded."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.terminated: list[tuple[str, str]] = []

    def get_run(self, run_id: str) -> FakeRun:
        return FakeRun(self.status)

    def set_terminated(self, run_id: str, status: str) -> None:
        self.terminated.append((run_id, status))


def smoke_run(client: FakeClient, tmp_path: Path, run_id: str = "run-1") -> smoke.SmokeRun:
    run = smoke.SmokeRun(smoke.Connection("http://127.0.0.1:9", "admin", "secret-1"), tmp_path)
    run.run_id = run_id
    run._client = lambda: client  # type: ignore[method-assign]
    return run


def test_a_running_run_is_marked_failed(tmp_path: Path) -> None:
    client = FakeClient("RUNNING")
    smoke_run(client, tmp_path).end_unfinished_run()
    assert client.terminated == [("run-1", "FAILED")]


def test_a_finished_run_is_left_as_it_is(tmp_path: Path) -> None:
    client = FakeClient("FINISHED")
    smoke_run(client, tmp_path).end_unfinished_run()
    assert client.terminated == []


def test_before_any_run_exists_there_is_nothing_to_end(tmp_path: Path) -> None:
    client = FakeClient("RUNNING")
    smoke_run(client, tmp_path, run_id="").end_unfinished_run()
    assert client.terminated == []


def test_a_failing_smoke_ends_the_run_it_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = FakeClient("RUNNING")

    def fail_on_upload() -> None:
        raise smoke.SmokeFailure("artifact upload refused")

    def steps(self: smoke.SmokeRun) -> list[tuple[str, Any]]:
        def create_run() -> None:
            self.run_id = "run-7"

        self._client = lambda: client  # type: ignore[method-assign]
        return [("create run", create_run), ("log artifact", fail_on_upload)]

    monkeypatch.setattr(smoke.SmokeRun, "steps", steps)
    env_file = tmp_path / "mlflow.env"
    env_file.write_text("MLFLOW_TRACKING_URI=http://127.0.0.1:9\nMLFLOW_TRACKING_USERNAME=admin\n")
    assert smoke.main(str(env_file)) == 1
    assert "log artifact" in capsys.readouterr().out
    assert client.terminated == [("run-7", "FAILED")]
