"""The login throttle's record (server_guard.throttle) in the auth database, which every host of a fleet
shares: failed logins of the last window, and the addresses each user logged in from lately.

The guard creates its two tables itself, in every worker, under a transaction-scoped advisory lock (so
workers and hosts starting together never race on CREATE), and prunes rows older than their window at
most every PRUNE_SECONDS. Times are the database's own (now()), the one clock all hosts share. Each
failure is announced on CHANNEL (NOTIFY, delivered when its transaction commits); `watch` listens on a
connection of its own in a thread and tells the throttle.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from server_guard import throttle

logger = logging.getLogger("mlflow.server_guard")

PRUNE_SECONDS = 60.0
RECONNECT_SECONDS = 1.0
POLL_SECONDS = 5.0
LOCK_KEY = 0x6D6C666C6F77  # pg_advisory_xact_lock key: "mlflow"
CHANNEL = "mlflow_aws_failed_logins"
LISTENER = "mlflow_aws_guard_listener"  # the listener's application_name, as pg_stat_activity shows it

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS mlflow_aws_failed_logins (address VARCHAR(64) NOT NULL, "
    "username VARCHAR(256) NOT NULL, failed_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    "CREATE INDEX IF NOT EXISTS mlflow_aws_failed_logins_at ON mlflow_aws_failed_logins (failed_at)",
    "CREATE TABLE IF NOT EXISTS mlflow_aws_known_logins (username VARCHAR(256) NOT NULL, "
    "address VARCHAR(64) NOT NULL, last_success TIMESTAMPTZ NOT NULL, PRIMARY KEY (username, address))",
)
RECENT = "failed_at > now() - make_interval(secs => :window)"
# The LIMIT-th most recent failure of each address and user name that has that many: it leaves the
# window, and the key is no longer throttled, `window` seconds after it happened.
THROTTLED = f"""
SELECT kind, key, EXTRACT(EPOCH FROM failed_at + make_interval(secs => :window) - now()) FROM (
  SELECT 'address' AS kind, address AS key, failed_at,
         row_number() OVER (PARTITION BY address ORDER BY failed_at DESC) AS n
    FROM mlflow_aws_failed_logins WHERE {RECENT}
  UNION ALL
  SELECT 'user', username, failed_at, row_number() OVER (PARTITION BY username ORDER BY failed_at DESC)
    FROM mlflow_aws_failed_logins WHERE {RECENT}) AS ranked
WHERE n = :limit"""
FAILURES = ("SELECT count(*) FILTER (WHERE address = :address), "
            "count(*) FILTER (WHERE address = :address AND username = :username), "
            "count(*) FILTER (WHERE username = :username) FROM mlflow_aws_failed_logins "
            f"WHERE (address = :address OR username = :username) AND {RECENT}")
KNOWN = ("SELECT 1 FROM mlflow_aws_known_logins WHERE username = :username AND address = :address "
         "AND last_success > now() - make_interval(secs => :known)")
FAILED = ("INSERT INTO mlflow_aws_failed_logins (address, username) VALUES (:address, :username)",
          f"SELECT pg_notify('{CHANNEL}', '')")
SUCCEEDED = ("INSERT INTO mlflow_aws_known_logins (username, address, last_success) VALUES "
             "(:username, :address, now()) ON CONFLICT (username, address) DO UPDATE SET last_success = now()")
PRUNE = ("DELETE FROM mlflow_aws_failed_logins WHERE NOT " + RECENT,
         "DELETE FROM mlflow_aws_known_logins WHERE last_success < now() - make_interval(secs => :known)")


class PostgresLedger:
    def __init__(self, engine: Any) -> None:
        from sqlalchemy import text

        self.engine = engine
        self.text = text
        self._pruned = -PRUNE_SECONDS
        self._listening = False
        self._stop = threading.Event()
        self._run(f"SELECT pg_advisory_xact_lock({LOCK_KEY})", *SCHEMA)

    def _run(self, *statements: str, **values: Any) -> list[Any]:
        """Every statement in one transaction; the rows of the last."""
        values = {"window": throttle.WINDOW_SECONDS, "known": throttle.KNOWN_SECONDS, "limit": throttle.LIMIT,
                  **values}
        with self.engine.begin() as connection:
            for statement in statements:
                result = connection.execute(self.text(statement), values)
            return list(result) if result.returns_rows else []

    def throttled(self) -> dict[tuple[str, str], float]:
        if time.monotonic() - self._pruned >= PRUNE_SECONDS:
            self._pruned = time.monotonic()
            self._run(*PRUNE)
        return {(kind, key): float(seconds) for kind, key, seconds in self._run(THROTTLED)}

    def record_failure(self, address: str, username: str) -> None:
        self._run(*FAILED, address=address, username=username)

    def record_success(self, address: str, username: str) -> None:
        self._run(SUCCEEDED, address=address, username=username)

    def known_pair(self, address: str, username: str) -> bool:
        return bool(self._run(KNOWN, address=address, username=username))

    def failures(self, address: str, username: str) -> tuple[int, int, int]:
        ((from_address, pair, for_user),) = self._run(FAILURES, address=address, username=username)
        return int(from_address), int(pair), int(for_user)

    def watching(self) -> bool:
        return self._listening

    def watch(self, changed: Callable[[], None]) -> None:
        """Call `changed` for every failure committed anywhere, and whenever listening stops or resumes."""
        threading.Thread(target=self._listen, args=(changed,), name="server-guard-ledger", daemon=True).start()

    def close(self) -> None:
        self._stop.set()

    def _listen(self, changed: Callable[[], None]) -> None:
        while not self._stop.is_set():
            connection = None
            try:
                pooled = self.engine.raw_connection()
                connection = pooled.driver_connection
                pooled.detach()  # this connection stays with the listener, out of the pool
                connection.autocommit = True
                with connection.cursor() as cursor:
                    cursor.execute(f"SET application_name TO {LISTENER}")
                    cursor.execute(f"LISTEN {CHANNEL}")
                self._listening = True
                changed()
                while not self._stop.is_set():
                    if select.select([connection], [], [], POLL_SECONDS)[0]:
                        connection.poll()
                        if connection.notifies:
                            connection.notifies.clear()
                            changed()
                    else:
                        with connection.cursor() as cursor:
                            cursor.execute("SELECT 1")  # a dead connection fails here rather than never waking
            except Exception as error:
                if self._listening:
                    self._listening = False
                    changed()
                    logger.warning("server guard: not hearing of failed logins (%s); reading the record on every "
                                   "login until it can again", error)
                self._stop.wait(RECONNECT_SECONDS)
            finally:
                if connection is not None:
                    connection.close()
        self._listening = False
