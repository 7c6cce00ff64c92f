"""The fence that stops every other writer while one host migrates a schema, and its watcher on every host.

One row in the tracking database (schema mlflow_aws, table fence) says what the database is doing:
`migrating` by one host (its id), or `serving` the release that last migrated or started. The migrating host
(the configure step: fence_others, then migrate, then lift or hold) sets it before the migration and, while it
migrates, ends every session of the database's user that is not a configure step or a watcher (the MLflow
servers of every other host; PGAPPNAME names them), so nothing keeps writing. Every host runs the watcher
(mlflow-fence, as root): every few seconds it reads the row and both schemas' revisions, and when another host
migrates, or the database's revisions are no longer the ones this host's server started with, it raises the
host's fence flag (nginx answers 503 in MLflow's JSON to every request, /health included, so a load balancer
drains the host too) and stops mlflow.service; when the row is lifted and the revisions are this host's again,
it starts the server and lowers the flag. A database it cannot reach changes nothing (that is an outage, not
a migration).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from host_programs.settings_file import SettingsError, load

PROGRAM = "mlflow-fence"
SECTION = "fence"
MIGRATING, SERVING, ABORTED = "migrating", "serving", "aborted"
SERVER_APPLICATION = "mlflow-server"  # the MLflow server's sessions (mlflow.service sets PGAPPNAME)
SPARED_APPLICATIONS = ("mlflow-configure", PROGRAM)  # sessions a migration never ends
# A schema of its own in the tracking database, beside MLflow's (public): MLflow's migrations never touch it.
SCHEMA_DDL = (
    "CREATE SCHEMA IF NOT EXISTS mlflow_aws",
    "CREATE TABLE IF NOT EXISTS mlflow_aws.fence (id integer PRIMARY KEY CHECK (id = 1), state text NOT NULL, "
    "holder text NOT NULL, release text NOT NULL, snapshot text NOT NULL DEFAULT '', "
    "since timestamptz NOT NULL DEFAULT now())",
)
# While one host migrates, the other servers' sessions are ended this often (they reconnect on a request
# until their watcher has stopped them, within its poll).
END_WRITERS_EVERY_SECONDS = 1.0


@dataclass(frozen=True)
class FenceRow:
    state: str
    holder: str
    release: str
    snapshot: str = ""


def ensure_table(cursor: Any) -> None:
    for statement in SCHEMA_DDL:
        cursor.execute(statement)


def read_row(cursor: Any) -> FenceRow | None:
    cursor.execute("SELECT to_regclass('mlflow_aws.fence')")
    if cursor.fetchone()[0] is None:
        return None
    cursor.execute("SELECT state, holder, release, snapshot FROM mlflow_aws.fence WHERE id = 1")
    row = cursor.fetchone()
    return FenceRow(*row) if row else None


def write_row(cursor: Any, state: str, holder: str, release: str, snapshot: str = "") -> None:
    ensure_table(cursor)
    cursor.execute(
        "INSERT INTO mlflow_aws.fence (id, state, holder, release, snapshot) VALUES (1, %s, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, holder = EXCLUDED.holder, "
        "release = EXCLUDED.release, snapshot = EXCLUDED.snapshot, since = now()",
        (state, holder, release, snapshot),
    )


def record_serving(cursor: Any, host: str, release: str) -> None:
    """After a complete configure step: the release that serves (a later migration's snapshot is named for
    it), unless another host is migrating."""
    row = read_row(cursor)
    if row is None or row.state != MIGRATING:
        write_row(cursor, SERVING, host, release, row.snapshot if row else "")


def end_other_writers(cursor: Any) -> int:
    """End every other session of this user on this server but configure steps and watchers: the MLflow
    servers (of other hosts, and of an older release, which may name no application). How many it ended."""
    cursor.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE usename = current_user AND pid <> pg_backend_pid() AND NOT (application_name = ANY(%s))",
        (list(SPARED_APPLICATIONS),),
    )
    ended: int = cursor.fetchone()[0]
    return ended


class Migration:
    """One host's migration, as the configure step runs it: the fence raised and the other writers ended
    (`begin`), kept ended while it migrates, then the fence lifted (`finish`) or handled after a failure."""

    def __init__(self, connect: Callable[[], Any], host: str, release: str, snapshot: str,
                 log: Callable[[str], None]) -> None:
        self.connect, self.host, self.release, self.snapshot, self.log = connect, host, release, snapshot, log
        self._stop = threading.Event()
        self._ender: threading.Thread | None = None

    def _write(self, state: str) -> None:
        with closing(self.connect()) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                write_row(cursor, state, self.host, self.release, self.snapshot)

    def begin(self, wait_seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self._write(MIGRATING)
        self.log(f"fence raised: every other host stops its server while MLflow {self.release} migrates "
                 f"(snapshot {self.snapshot} holds the database as it was)")
        deadline = time.monotonic() + wait_seconds
        with closing(self.connect()) as connection:
            connection.autocommit = True
            quiet = 0
            with connection.cursor() as cursor:
                while quiet < 2:
                    ended = end_other_writers(cursor)
                    quiet = quiet + 1 if ended == 0 else 0
                    if ended:
                        self.log(f"ended {ended} session(s) of other servers")
                    if quiet < 2 and time.monotonic() >= deadline:
                        self.log(f"other servers still connect after {wait_seconds:.0f} s; migrating anyway, "
                                 "their sessions ended as they come")
                        break
                    sleep(END_WRITERS_EVERY_SECONDS)
        self._ender = threading.Thread(target=self._keep_ending, name="fence", daemon=True)
        self._ender.start()

    def _keep_ending(self) -> None:
        with closing(self.connect()) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                while not self._stop.wait(END_WRITERS_EVERY_SECONDS):
                    end_other_writers(cursor)

    def _stop_ending(self) -> None:
        self._stop.set()
        if self._ender is not None:
            self._ender.join(timeout=30)

    def finish(self) -> None:
        self._stop_ending()
        self._write(SERVING)
        self.log(f"the schemas are MLflow {self.release}'s; the fence is lifted for hosts of that release")

    def failed(self, *, unchanged: bool) -> None:
        self._stop_ending()
        if unchanged:
            self._write(ABORTED)
            self.log("the migration failed before it changed the schemas: the fence is lifted, the other hosts "
                     "serve again")
        else:
            self.log(f"the migration failed part-way: the fence stays (no release serves a half-migrated "
                     f"schema); restore snapshot {self.snapshot} (README, \"Changing a running stack\")")


def must_stand_aside(row: FenceRow | None, database: tuple[list[str], list[str]] | None,
                     served: tuple[list[str], list[str]] | None, host: str) -> str:
    """Why this host must not serve now ("" when it may): another host migrates, or the schemas are no longer
    the revisions this host's server started with."""
    if row is not None and row.state == MIGRATING and row.holder != host:
        return f"host {row.holder} is migrating the schemas to MLflow {row.release}"
    if database is not None and served is not None and database != served:
        return (f"the schemas are at {database[0] + database[1]}, this host's server was started for "
                f"{served[0] + served[1]}")
    return ""


# -- the watcher ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    region: str
    state_file: Path  # configure's record of its last complete run: the revisions this host's server serves
    host_id_file: Path  # this host's id, written by its configure step
    flag: Path  # nginx answers 503 while it exists (layout.FENCE_FLAG)
    unit: str  # mlflow.service
    poll_seconds: float


def read_settings(path: str) -> Settings:
    root = load(path)
    section = root.section(SECTION)
    return Settings(
        region=root.text("region"),
        state_file=Path(section.text("state_file")),
        host_id_file=Path(section.text("host_id_file")),
        flag=Path(section.text("flag")),
        unit=section.text("unit"),
        poll_seconds=section.number("poll_seconds"),
    )


def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    log(f"FAILED: {message}")
    sys.exit(1)


def served_revisions(state_file: Path) -> tuple[list[str], list[str]] | None:
    try:
        recorded = json.loads(state_file.read_text())
        return list(recorded["tracking"]), list(recorded["auth"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stand_aside(settings: Settings, why: str, run: Callable[[list[str]], object]) -> None:
    settings.flag.parent.mkdir(parents=True, exist_ok=True)
    settings.flag.touch()
    run(["systemctl", "stop", settings.unit])
    log(f"fenced: nginx answers 503 and {settings.unit} is stopped: {why}")


def step_back_in(settings: Settings, run: Callable[[list[str]], object]) -> None:
    run(["systemctl", "start", settings.unit])
    settings.flag.unlink(missing_ok=True)
    log(f"the fence is lifted: {settings.unit} started, nginx serves again")


def watch(settings: Settings, observe: Callable[[], tuple[FenceRow | None, tuple[list[str], list[str]] | None]],
          run: Callable[[list[str]], object] = lambda command: subprocess.run(command, check=False),
          sleep: Callable[[float], None] = time.sleep, rounds: int | None = None) -> None:
    """Every poll: observe the fence and the schemas, and stand aside or step back in as they say.
    `rounds` bounds the loop (tests); on the host it runs until systemd stops it."""
    done = 0
    while rounds is None or done < rounds:
        done += 1
        try:
            row, database = observe()
        except Exception as error:  # psycopg2's errors: an unreachable database is an outage, not a fence
            log(f"cannot read the fence: {type(error).__name__}: {str(error).strip().splitlines()[0:1]}")
            sleep(settings.poll_seconds)
            continue
        host = settings.host_id_file.read_text().strip() if settings.host_id_file.exists() else ""
        why = must_stand_aside(row, database, served_revisions(settings.state_file), host) if host else ""
        if why and not settings.flag.exists():
            stand_aside(settings, why, run)
        elif not why and settings.flag.exists():
            step_back_in(settings, run)
        sleep(settings.poll_seconds)


def observer(settings_file: str) -> Callable[[], tuple[FenceRow | None, tuple[list[str], list[str]] | None]]:
    """Reads the fence and both schemas' revisions, as the configure step reaches the database (its settings
    and SSM parameters), on a connection of its own that it opens again after an error."""
    from host_programs import configure

    configure_settings = configure.read_settings(settings_file)
    connections: dict[str, Any] = {}

    def revisions(database: str, table: str) -> list[str] | None:
        cursor = connections[database].cursor()
        cursor.execute("SELECT to_regclass(%s)", (table,))
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute(f"SELECT version_num FROM {table}")  # a fixed name, never input
        return sorted(row[0] for row in cursor.fetchall())

    def observe() -> tuple[FenceRow | None, tuple[list[str], list[str]] | None]:
        if not connections:
            values = configure.read_parameters(configure_settings)
            for database in (values.db_name, configure_settings.auth_database):
                connection = configure.open_database(values, database, application=PROGRAM)
                connection.autocommit = True
                connections[database] = connection
        tracking_db, auth_db = list(connections)
        try:
            row = read_row(connections[tracking_db].cursor())
            tracking = revisions(tracking_db, "alembic_version")
            auth = revisions(auth_db, "alembic_version_auth")
        except Exception:
            for connection in connections.values():
                connection.close()
            connections.clear()
            raise
        return row, (tracking, auth) if tracking is not None and auth is not None else None

    return observe


def main(arguments: Sequence[str], settings_file: str) -> int:
    if arguments:
        fail(f"takes no arguments, got {' '.join(arguments)}")
    try:
        settings = read_settings(settings_file)
        observe = observer(settings_file)
    except SettingsError as error:
        fail(str(error))
    log(f"watching the fence every {settings.poll_seconds:.0f} s")
    watch(settings, observe)
    return 0
