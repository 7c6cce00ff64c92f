"""The fence's watcher on every host (host_programs/fence.py) and the schema plan it acts on
(host_programs/schema_upgrade.py): a host stands aside while another host migrates or once the schemas are
no longer the ones its server started with, steps back in when the fence is lifted for its schemas, and
changes nothing when it cannot read the database. The watcher's decisions are driven here with a recorded
`systemctl`; tests/host/test_migration_fence.py runs the fence on PostgreSQL."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from host_programs import fence, schema_upgrade

OLD = (["a1"], ["x1"])  # (tracking, auth) revisions a host's server started with
NEW = (["a2"], ["x1"])


def settings(tmp_path: Path, served: tuple[list[str], list[str]] | None = OLD, host: str = "host-b") -> fence.Settings:
    state = tmp_path / "configured.json"
    if served is not None:
        state.write_text(json.dumps({"mlflow": "3.16.1", "tracking": served[0], "auth": served[1]}))
    host_id = tmp_path / "host-id"
    host_id.write_text(host + "\n")
    return fence.Settings(region="eu-west-1", state_file=state, host_id_file=host_id, flag=tmp_path / "run" / "fenced",
                          unit="mlflow.service", poll_seconds=0.0)


def run_watch(watched: fence.Settings, observations: list[object]) -> list[list[str]]:
    """The watcher over these observations (an exception stands for an unreachable database); the systemctl
    commands it ran."""
    commands: list[list[str]] = []
    remaining = list(observations)

    def observe() -> tuple[fence.FenceRow | None, tuple[list[str], list[str]] | None]:
        found = remaining.pop(0)
        if isinstance(found, Exception):
            raise found
        return found  # type: ignore[return-value]

    fence.watch(watched, observe, run=commands.append, sleep=lambda seconds: None, rounds=len(observations))
    return commands


def test_a_host_stands_aside_while_another_host_migrates(tmp_path):
    watched = settings(tmp_path)
    commands = run_watch(watched, [(fence.FenceRow(fence.MIGRATING, "host-a", "3.17.2"), OLD)])
    assert commands == [["systemctl", "stop", "mlflow.service"]]
    assert watched.flag.exists()


def test_the_migrating_host_does_not_stand_aside_from_its_own_fence(tmp_path):
    watched = settings(tmp_path, host="host-a")
    assert run_watch(watched, [(fence.FenceRow(fence.MIGRATING, "host-a", "3.17.2"), OLD)]) == []
    assert not watched.flag.exists()


def test_a_host_of_the_old_release_stays_aside_once_the_schemas_moved_on(tmp_path):
    watched = settings(tmp_path)
    commands = run_watch(watched, [(fence.FenceRow(fence.MIGRATING, "host-a", "3.17.2"), OLD),
                                   (fence.FenceRow(fence.SERVING, "host-a", "3.17.2"), NEW),
                                   (fence.FenceRow(fence.SERVING, "host-a", "3.17.2"), NEW)])
    assert commands == [["systemctl", "stop", "mlflow.service"]]
    assert watched.flag.exists()


def test_a_host_steps_back_in_when_a_migration_is_abandoned_before_it_changed_anything(tmp_path):
    watched = settings(tmp_path)
    commands = run_watch(watched, [(fence.FenceRow(fence.MIGRATING, "host-a", "3.17.2"), OLD),
                                   (fence.FenceRow(fence.ABORTED, "host-a", "3.17.2"), OLD)])
    assert commands == [["systemctl", "stop", "mlflow.service"], ["systemctl", "start", "mlflow.service"]]
    assert not watched.flag.exists()


def test_a_release_that_changes_no_schema_stops_nobody(tmp_path):
    watched = settings(tmp_path)
    assert run_watch(watched, [(fence.FenceRow(fence.SERVING, "host-a", "3.17.1"), OLD)] * 3) == []
    assert not watched.flag.exists()


def test_an_unreachable_database_changes_nothing(tmp_path):
    watched = settings(tmp_path)
    assert run_watch(watched, [OSError("could not connect to server")] * 2) == []
    assert not watched.flag.exists()


def test_a_new_host_that_has_not_served_yet_never_stands_aside_for_the_schemas(tmp_path):
    watched = settings(tmp_path, served=None)
    assert run_watch(watched, [(fence.FenceRow(fence.SERVING, "host-a", "3.17.2"), NEW)]) == []


def test_a_plan_migrates_only_a_database_that_holds_other_revisions():
    release = schema_upgrade.Revisions(["a2"], ["x1"])
    assert schema_upgrade.Plan(schema_upgrade.Revisions(["a1"], ["x1"]), release).migrates
    assert not schema_upgrade.Plan(schema_upgrade.Revisions(["a2"], ["x1"]), release).migrates
    assert not schema_upgrade.Plan(None, release).migrates  # a new database is only created


def test_the_release_heads_are_read_from_the_installed_mlflows_own_scripts():
    heads = schema_upgrade.release_heads()
    assert len(heads.tracking) == 1 and len(heads.auth) == 1


def test_the_snapshot_is_named_for_both_releases_and_the_time_under_the_upgrade_prefix():
    when = datetime.datetime(2026, 12, 7, 4, 30, 5, tzinfo=datetime.timezone.utc)
    name = schema_upgrade.snapshot_identifier("mlflow-aws-dev", "3.16.1", "3.17.2", when)
    assert name == "mlflow-aws-dev-upgrade-3-16-1-to-3-17-2-20261207t043005z"
    assert name.startswith(schema_upgrade.snapshot_prefix("mlflow-aws-dev"))


def test_the_snapshot_is_taken_and_waited_for_until_rds_reports_it_available():
    logged: list[str] = []
    with mock_aws():
        rds = boto3.client("rds", region_name="eu-west-1")
        rds.create_db_instance(DBInstanceIdentifier="mlflow-aws-dev", DBInstanceClass="db.t4g.micro",
                               Engine="postgres", MasterUsername="mlflow", MasterUserPassword="Secret123456",
                               AllocatedStorage=20)
        schema_upgrade.take_snapshot(rds, "mlflow-aws-dev", "mlflow-aws-dev-upgrade-a-to-b", 60, logged.append,
                                     sleep=lambda seconds: None)
        found = rds.describe_db_snapshots(DBSnapshotIdentifier="mlflow-aws-dev-upgrade-a-to-b")["DBSnapshots"]
    assert [snapshot["DBInstanceIdentifier"] for snapshot in found] == ["mlflow-aws-dev"]
    assert logged[-1] == "snapshot mlflow-aws-dev-upgrade-a-to-b is available"


def test_a_snapshot_that_never_becomes_available_stops_the_migration_with_its_name():
    class Creating:
        def create_db_snapshot(self, **request: str) -> None:
            pass

        def describe_db_snapshots(self, **request: str) -> dict[str, list[dict[str, str]]]:
            return {"DBSnapshots": [{"Status": "creating"}]}

    with pytest.raises(TimeoutError, match="snapshot s1 not available after 0 s"):
        schema_upgrade.take_snapshot(Creating(), "db", "s1", 0, lambda line: None, sleep=lambda seconds: None)
