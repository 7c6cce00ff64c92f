"""The fence on PostgreSQL (host_programs/fence.py): before one host migrates, every other writer is stopped,
the MLflow servers' sessions ended (and ended again when they reconnect) while the configure steps' and the
watchers' are spared; the fence row says what the database is doing, lifted after the migration, lifted as
`aborted` after a failure that changed nothing, kept after one that changed something."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from host_programs import fence
from tests.host.conftest import require_host_binaries
from tests.support import loopback, ports


@pytest.fixture(scope="module")
def cluster() -> Iterator[loopback.PostgresCluster]:
    require_host_binaries()
    root = Path(tempfile.mkdtemp(prefix="mlflow-fence-"))
    root.chmod(0o711)  # PostgreSQL's own user must reach its directory inside
    base = root / "postgres"
    postgres = loopback.PostgresCluster(base, port=ports.free_port(), superuser="mlflow",
                                        password=secrets.token_hex(12), database="mlflow")
    postgres.init()
    postgres.start()
    try:
        yield postgres
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def session(cluster: loopback.PostgresCluster, application: str) -> Any:
    connection = psycopg2.connect(cluster.dsn(), application_name=application)
    connection.autocommit = True
    return connection


def alive(connection: Any) -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except psycopg2.Error:
        return False


def migration(cluster: loopback.PostgresCluster, logged: list[str]) -> fence.Migration:
    return fence.Migration(lambda: session(cluster, "mlflow-configure"), "host-new", "3.17.2",
                           "mlflow-aws-dev-upgrade-3-16-1-to-3-17-2-x", logged.append)


def row(cluster: loopback.PostgresCluster) -> fence.FenceRow | None:
    with loopback.autocommit_cursor(cluster.dsn()) as cursor:
        return fence.read_row(cursor)


def test_the_other_servers_sessions_end_and_the_configure_steps_and_watchers_stay(cluster):
    server = session(cluster, fence.SERVER_APPLICATION)
    older_server = session(cluster, "")  # an older release names no application
    configure = session(cluster, "mlflow-configure")
    watcher = session(cluster, fence.PROGRAM)
    logged: list[str] = []
    running = migration(cluster, logged)
    try:
        running.begin(wait_seconds=30)
        assert [alive(server), alive(older_server), alive(configure), alive(watcher)] == [False, False, True, True]
        assert any(line.startswith("ended ") and "session(s) of other servers" in line for line in logged)
    finally:
        running.finish()
        for connection in (server, older_server, configure, watcher):
            connection.close()


def test_a_server_that_reconnects_while_the_schemas_migrate_is_ended_again(cluster):
    running = migration(cluster, [])
    running.begin(wait_seconds=30)
    try:
        reconnected = session(cluster, fence.SERVER_APPLICATION)
        deadline = time.monotonic() + 3 * fence.END_WRITERS_EVERY_SECONDS + 10
        while alive(reconnected) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(reconnected)
    finally:
        running.finish()


def test_the_row_says_migrating_then_serving_the_new_release(cluster):
    running = migration(cluster, [])
    running.begin(wait_seconds=30)
    during = row(cluster)
    running.finish()
    assert during == fence.FenceRow(fence.MIGRATING, "host-new", "3.17.2", running.snapshot)
    assert row(cluster) == fence.FenceRow(fence.SERVING, "host-new", "3.17.2", running.snapshot)


def test_a_migration_that_failed_before_changing_anything_lifts_the_fence_as_aborted(cluster):
    logged: list[str] = []
    running = migration(cluster, logged)
    running.begin(wait_seconds=30)
    running.failed(unchanged=True)
    assert row(cluster) == fence.FenceRow(fence.ABORTED, "host-new", "3.17.2", running.snapshot)
    assert "the other hosts serve again" in logged[-1]


def test_a_migration_that_failed_part_way_keeps_the_fence_and_names_the_snapshot(cluster):
    logged: list[str] = []
    running = migration(cluster, logged)
    running.begin(wait_seconds=30)
    running.failed(unchanged=False)
    try:
        assert row(cluster) == fence.FenceRow(fence.MIGRATING, "host-new", "3.17.2", running.snapshot)
        assert f"restore snapshot {running.snapshot}" in logged[-1]
    finally:
        running.finish()


def test_a_configure_step_that_completes_records_its_release_unless_another_host_migrates(cluster):
    with loopback.autocommit_cursor(cluster.dsn()) as cursor:
        fence.write_row(cursor, fence.MIGRATING, "host-a", "3.17.2")
        fence.record_serving(cursor, "host-b", "3.16.1")
        assert fence.read_row(cursor) == fence.FenceRow(fence.MIGRATING, "host-a", "3.17.2")
        fence.write_row(cursor, fence.SERVING, "host-a", "3.17.2")
        fence.record_serving(cursor, "host-b", "3.17.2")
        assert fence.read_row(cursor) == fence.FenceRow(fence.SERVING, "host-b", "3.17.2")
