from __future__ import annotations

import datetime
import importlib.util
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    database: Revisions | None
    release: Revisions

    @property
    def migrates(self) -> bool:
        return self.database is not None and self.database != self.release

    def describe(self) -> str:
        held = self.database.tracking + self.database.auth if self.database is not None else ["nothing"]
        return f"{', '.join(held)} to {', '.join(self.release.tracking + self.release.auth)}"


def release_heads() -> Revisions:
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
    def word(text: str) -> str:
        return "-".join(part for part in re.split(r"[^a-z0-9]+", text.lower()) if part)

    stamp = when.astimezone(datetime.timezone.utc).strftime("%Y%m%dt%H%M%Sz")
    name = f"{snapshot_prefix(db_identifier)}{word(from_release)}-to-{word(to_release)}-{stamp}"
    return name[:SNAPSHOT_IDENTIFIER_MAX].rstrip("-")


def take_snapshot(rds: Any, db_identifier: str, identifier: str, wait_seconds: float,
                  log: Callable[[str], None], sleep: Callable[[float], None] = time.sleep) -> None:
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
