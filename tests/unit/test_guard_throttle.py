"""The login throttle's decisions (server_guard.throttle) over an in-memory ledger and a hand-moved clock.
The PostgreSQL ledger, and the throttle through nginx: tests/host/test_guard_front_door.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from server_guard import throttle
from server_guard.throttle import ADDRESS, LIMIT, USER, LoginThrottle

GUESSER, OFFICE, HOME = "203.0.113.7", "198.51.100.20", "192.0.2.44"


@dataclass
class Ledger:
    blocked: dict[tuple[str, str], float] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)
    known: set[tuple[str, str]] = field(default_factory=set)
    reads: int = 0
    successes: int = 0
    listening: bool = True

    def throttled(self) -> dict[tuple[str, str], float]:
        self.reads += 1
        return dict(self.blocked)

    def record_failure(self, address: str, username: str) -> None:
        self.failed.append((address, username))

    def record_success(self, address: str, username: str) -> None:
        self.successes += 1
        self.known.add((address, username))

    def known_pair(self, address: str, username: str) -> bool:
        return (address, username) in self.known

    def failures(self, address: str, username: str) -> tuple[int, int, int]:
        return (sum(1 for a, _ in self.failed if a == address),
                sum(1 for pair in self.failed if pair == (address, username)),
                sum(1 for _, u in self.failed if u == username))

    def watching(self) -> bool:
        return self.listening


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gate(ledger: Ledger, clock: Clock) -> LoginThrottle:
    return LoginThrottle(ledger, clock)


def test_nothing_throttled_checks_every_password(gate):
    assert gate.retry_after(GUESSER, "alice") is None


def test_a_throttled_address_is_refused_for_as_long_as_the_record_says(gate, ledger):
    ledger.blocked[(ADDRESS, GUESSER)] = 299.2
    assert gate.retry_after(GUESSER, "alice") == 300


def test_a_known_address_of_the_user_is_let_through_a_throttled_address(gate, ledger):
    ledger.known.add((OFFICE, "bob"))
    ledger.failed += [(OFFICE, "mallory-guess")] * LIMIT
    ledger.blocked[(ADDRESS, OFFICE)] = 60
    assert gate.retry_after(OFFICE, "bob") is None
    assert gate.retry_after(OFFICE, "carol") == 60


def test_a_known_pair_that_failed_the_limit_itself_is_refused(gate, ledger):
    ledger.known.add((OFFICE, "bob"))
    ledger.failed += [(OFFICE, "bob")] * LIMIT
    ledger.blocked[(ADDRESS, OFFICE)] = 60
    assert gate.retry_after(OFFICE, "bob") == 60


def test_a_throttled_user_name_logs_in_from_an_address_without_failures(gate, ledger):
    ledger.blocked[(USER, "alice")] = 500
    ledger.failed.append((GUESSER, "alice"))
    assert gate.retry_after(HOME, "alice") is None
    assert gate.retry_after(GUESSER, "alice") == 500


def test_fresh_addresses_share_a_bounded_number_of_guesses_at_a_throttled_user_name(gate, ledger):
    ledger.blocked[(USER, "alice")] = 500
    ledger.failed += [(f"203.0.113.{n}", "alice") for n in range(2 * LIMIT)]
    assert gate.retry_after(HOME, "alice") == 500
    ledger.known.add((OFFICE, "alice"))
    assert gate.retry_after(OFFICE, "alice") is None


@pytest.mark.parametrize("address, key", [
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::7", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("198.51.100.7", "198.51.100.7"),
    ("not-an-address" * 10, ("not-an-address" * 10)[:throttle.MAX_ADDRESS]),
])
def test_an_ipv6_client_is_counted_by_its_network(address, key):
    assert throttle.address_key(address) == key


def test_one_ipv6_network_is_throttled_whole(gate, ledger):
    ledger.blocked[(ADDRESS, "2001:db8:1:2::/64")] = 90
    assert gate.retry_after("2001:db8:1:2:ffff::9", "alice") == 90


def test_an_address_throttled_and_a_user_name_throttled_wait_for_the_later(gate, ledger):
    ledger.blocked.update({(ADDRESS, GUESSER): 10, (USER, "alice"): 400})
    assert gate.retry_after(GUESSER, "alice") == 400


def test_the_record_is_read_once_while_no_failure_is_reported(gate, ledger):
    for _ in range(5):
        gate.retry_after(GUESSER, "alice")
    assert ledger.reads == 1


def test_a_failure_reported_from_anywhere_is_seen_by_the_next_login(gate, ledger):
    gate.retry_after(GUESSER, "alice")
    ledger.blocked[(ADDRESS, GUESSER)] = 100  # another host's tenth failure, committed and announced
    gate.changed()
    assert gate.retry_after(GUESSER, "alice") == 100


def test_a_failure_here_is_seen_by_the_next_login_without_waiting_for_its_report(gate, ledger):
    gate.retry_after(GUESSER, "alice")
    ledger.blocked[(ADDRESS, GUESSER)] = 100
    gate.failed(GUESSER, "alice")
    assert ledger.failed == [(GUESSER, "alice")]
    assert gate.retry_after(GUESSER, "alice") == 100


def test_while_no_report_can_arrive_every_login_reads_the_record(gate, ledger):
    ledger.listening = False
    for _ in range(3):
        gate.retry_after(GUESSER, "alice")
    assert ledger.reads == 3


def test_a_report_arriving_while_the_record_is_read_is_not_lost(clock):
    class Racing(Ledger):
        def throttled(self) -> dict[tuple[str, str], float]:
            seen = super().throttled()
            self.blocked[(ADDRESS, GUESSER)] = 100
            racing_throttle.changed()  # a failure committed and announced while this read was on its way
            return seen

    racing_throttle = LoginThrottle(Racing(), clock)
    assert racing_throttle.retry_after(GUESSER, "alice") is None
    assert racing_throttle.retry_after(GUESSER, "alice") == 100


def test_a_throttle_ends_when_its_time_is_up(gate, ledger, clock):
    ledger.blocked[(ADDRESS, GUESSER)] = 30
    assert gate.retry_after(GUESSER, "alice") == 30
    clock.now += 30
    assert gate.retry_after(GUESSER, "alice") is None


def test_a_successful_login_is_written_once_an_hour_per_address_and_user(gate, ledger, clock):
    for _ in range(5):
        gate.succeeded(HOME, "alice")
    gate.succeeded(OFFICE, "alice")
    assert ledger.successes == 2
    clock.now += throttle.SUCCESS_WRITE_SECONDS
    gate.succeeded(HOME, "alice")
    assert ledger.successes == 3


def test_keys_longer_than_the_record_holds_are_cut_the_same_everywhere(gate, ledger):
    long_name = "x" * 1000
    gate.failed(GUESSER, long_name)
    ledger.blocked[(USER, long_name[:throttle.MAX_USERNAME])] = 50
    ledger.failed.append((GUESSER, "another"))
    assert ledger.failed[0] == (GUESSER, long_name[:throttle.MAX_USERNAME])
    assert gate.retry_after(GUESSER, long_name) == 50
