"""The login throttle's record in PostgreSQL (server_guard.ledger), on a PostgreSQL cluster of its own: what
it counts, and that a failure recorded by one host reaches every other host's workers as it commits."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from server_guard import throttle
from server_guard.ledger import PostgresLedger
from tests.host.conftest import require_host_binaries
from tests.support.loopback import PostgresCluster
from tests.support.ports import free_port

pytestmark = pytest.mark.host

REPORT_TIMEOUT_SECONDS = 10.0


@pytest.fixture(scope="module")
def engine() -> Iterator[object]:
    import sqlalchemy

    require_host_binaries()
    root = Path(tempfile.mkdtemp(prefix="mlflow-ledger-"))
    root.chmod(0o711)  # PostgreSQL's own user must reach its directory inside
    password = secrets.token_urlsafe(16)
    cluster = PostgresCluster(Path(root) / "postgres", port=free_port(), superuser="mlflow", password=password,
                              database="postgres")
    cluster.init()
    cluster.start()
    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://mlflow:{quote(password)}@127.0.0.1:{cluster.port}"
                                      "/postgres?sslmode=require")
    try:
        yield engine
    finally:
        engine.dispose()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def address() -> str:
    return f"198.51.100.{secrets.randbelow(250) + 2}-{secrets.token_hex(3)}"


class Reports:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()

    def wait(self, at_least: int) -> bool:
        deadline = time.monotonic() + REPORT_TIMEOUT_SECONDS
        while self.count < at_least and time.monotonic() < deadline:
            self.event.wait(0.1)
            self.event.clear()
        return self.count >= at_least


@pytest.fixture
def watched() -> Iterator[list[PostgresLedger]]:
    """Ledgers a test watches: their listeners stop when it ends."""
    ledgers: list[PostgresLedger] = []
    yield ledgers
    for ledger in ledgers:
        ledger.close()


def listening(ledger: PostgresLedger, watched: list[PostgresLedger]) -> Reports:
    reports = Reports()
    watched.append(ledger)
    ledger.watch(reports)
    assert reports.wait(1) and ledger.watching()  # the first report: listening began
    return reports


def test_workers_starting_together_create_the_tables_once(engine):
    errors: list[BaseException] = []

    def start() -> None:
        try:
            PostgresLedger(engine)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


def test_a_failure_recorded_on_one_host_is_reported_to_the_others_workers(engine, watched):
    here, there = PostgresLedger(engine), PostgresLedger(engine)
    reports = listening(there, watched)
    here.record_failure(address(), "alice")
    assert reports.wait(2)


def test_an_address_is_throttled_at_the_limit_until_its_oldest_failure_leaves_the_window(engine):
    ledger, guesser = PostgresLedger(engine), address()
    for attempt in range(throttle.LIMIT - 1):
        ledger.record_failure(guesser, f"user-{attempt}")
    assert ("address", guesser) not in ledger.throttled()
    ledger.record_failure(guesser, "user-last")
    seconds = ledger.throttled()[("address", guesser)]
    assert throttle.WINDOW_SECONDS - 60 < seconds <= throttle.WINDOW_SECONDS


def test_a_user_name_is_throttled_by_failures_from_many_addresses(engine):
    ledger, victim = PostgresLedger(engine), f"victim-{secrets.token_hex(3)}"
    for _ in range(throttle.LIMIT):
        ledger.record_failure(address(), victim)
    assert ("user", victim) in ledger.throttled()


def test_failures_are_counted_per_address_and_per_pair_and_successes_make_known_pairs(engine):
    ledger, office = PostgresLedger(engine), address()
    ledger.record_failure(office, "mallory")
    ledger.record_failure(office, "bob")
    ledger.record_success(office, "bob")
    ledger.record_failure(address(), "bob")
    assert ledger.failures(office, "bob") == (2, 1, 2)
    assert ledger.known_pair(office, "bob") and not ledger.known_pair(office, "mallory")


def test_a_listener_that_loses_its_connection_says_so_and_listens_again(engine, watched):
    from sqlalchemy import text

    ledger = PostgresLedger(engine)
    reports = listening(ledger, watched)
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"))
    assert reports.wait(3)  # stopped (reported), then listening again (reported)
    deadline = time.monotonic() + REPORT_TIMEOUT_SECONDS
    while not ledger.watching() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ledger.watching()
