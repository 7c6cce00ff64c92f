"""What a new MLflow release does to the database, known before anything migrates, and the snapshot taken
before it does (for the configure step, in MLflow's venv).

A release changes a schema when its own migration scripts end at another revision than the database's
`alembic_version` (tracking) or `alembic_version_auth` (the auth database): the heads are read from the
installed release's scripts (mlflow/store/db_migrations, mlflow/server/auth/db/migrations) with alembic,
without importing MLflow. Before such a release migrates, the host snapshots the stack's RDS instance and
waits until the snapshot is available, so the database the old release served can be restored (README,
"Changing a running stack"); the instance role may snapshot only that instance, under one name prefix.
"""

from __future__ import annotations

import datetime
import importlib.util
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Where an MLflow release keeps its alembic scripts, below its package.
TRACKING_SCRIPTS = ("store", "db_migrations")
AUTH_SCRIPTS = ("server", "auth", "db", "migrations")
SNAPSHOT_INFIX = "-upgrade-"
SNAPSHOT_IDENTIFIER_MAX = 255


@dataclass(frozen=True)
class Revisions:
    tracking: list[str]
    auth: list[str]


@dataclass(frozen=True)
class Plan:
    database: Revisions | None  # None: a new database, nothing to migrate from
    release: Revisions

    @property
    def migrates(self) -> bool:
        """Whether this release changes a schema that holds data (a new database is only created)."""
        return self.database is not None and self.database != self.release

    def describe(self) -> str:
        held = self.database.tracking + self.database.auth if self.database is not None else ["nothing"]
        return f"{', '.join(held)} to {', '.join(self.release.tracking + self.release.auth)}"


def release_heads() -> Revisions:
    """The installed release's own heads, read from its migration scripts."""
    from alembic.script import ScriptDirectory

    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MLflow is not installed in this venv")
    package = Path(next(iter(spec.submodule_search_locations)))

    def heads(*parts: str) -> list[str]:
        return sorted(ScriptDirectory(str(package.joinpath(*parts))).get_heads())

    return Revisions(heads(*TRACKING_SCRIPTS), heads(*AUTH_SCRIPTS))


def snapshot_prefix(db_identifier: str) -> str:
    return f"{db_identifier}{SNAPSHOT_INFIX}"


def snapshot_identifier(db_identifier: str, from_release: str, to_release: str, when: datetime.datetime) -> str:
    """<db>-upgrade-<from>-to-<to>-<UTC time>: letters, digits and single hyphens, as RDS requires."""
    def word(text: str) -> str:
        return "-".join(part for part in re.split(r"[^a-z0-9]+", text.lower()) if part)

    stamp = when.astimezone(datetime.timezone.utc).strftime("%Y%m%dt%H%M%Sz")
    name = f"{snapshot_prefix(db_identifier)}{word(from_release)}-to-{word(to_release)}-{stamp}"
    return name[:SNAPSHOT_IDENTIFIER_MAX].rstrip("-")


def take_snapshot(rds: Any, db_identifier: str, identifier: str, wait_seconds: float,
                  log: Callable[[str], None], sleep: Callable[[float], None] = time.sleep) -> None:
    """CreateDBSnapshot, then wait (bounded) until RDS reports it available."""
    rds.create_db_snapshot(DBSnapshotIdentifier=identifier, DBInstanceIdentifier=db_identifier)
    log(f"snapshot {identifier} of {db_identifier} requested; waiting until it is available")
    deadline = time.monotonic() + wait_seconds
    while True:
        snapshot = rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"][0]
        status = snapshot.get("Status", "")
        if status == "available":
            log(f"snapshot {identifier} is available")
            return
        if status in ("failed", "deleted", "deleting"):
            raise RuntimeError(f"RDS reports snapshot {identifier} {status}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"snapshot {identifier} not available after {wait_seconds:.0f} s (status {status})")
        sleep(10.0)
