"""Failed logins throttled per address and per user name, for every host of the stack (issue 23, hole 5).

An address, or a user name, with LIMIT failed logins within WINDOW_SECONDS is throttled: its next
requests are answered 429 with Retry-After (the seconds until the oldest of those failures leaves the
window) and their passwords are not checked at all, so a throttled guesser learns nothing. Answering 429
only after a wrong password would still tell right from wrong at full speed.

A throttle must not lock out the people it protects, so two kinds of client are let through to the
password check while their address or user name is throttled (OWASP's "prove yourself" exemptions):
- an address from which that user logged in within KNOWN_SECONDS (a known pair), unless the pair itself
  has LIMIT failures in the window: a teammate behind the same office address as a guesser still logs in;
- any address without a failure in the window, when only the user name is throttled and it has fewer
  than 2 * LIMIT failures in the window: the victim of a guessing campaign still logs in from a new place.
  A botnet's fresh addresses share those LIMIT extra guesses, so per user name at most 2 * LIMIT guesses
  per window get through from addresses its owner never logged in from, however many the attacker has.
An IPv6 client is counted by its /64 network, which one subscriber or host usually holds whole.

The record lives in the auth database (server_guard.ledger), shared by the hosts of a fleet. Each worker
keeps the list of throttled addresses and user names in memory, so a login that is not throttled costs no
query, and reads it again whenever the ledger reports a failure anywhere (PostgreSQL's NOTIFY, within
milliseconds); while it cannot hear those reports, it reads the record on every login instead. Either
way no request is decided on a list older than the last failure the database has committed, because a
stale list would let a correct guess through a throttle that a wrong one already meets.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

WINDOW_SECONDS = 15 * 60
LIMIT = 10
KNOWN_SECONDS = 30 * 24 * 3600
# Known pairs this worker wrote lately: a successful login rewrites its pair at most this often.
SUCCESS_WRITE_SECONDS = 3600.0
MAX_REMEMBERED_SUCCESSES = 10000

ADDRESS, USER = "address", "user"
# The ledger's column sizes: longer keys are cut (an address is at most 45 characters).
MAX_ADDRESS, MAX_USERNAME = 64, 256


def address_key(address: str) -> str:
    """An IPv6 address as its /64 network (an IPv4-mapped one as IPv4), any other text cut to MAX_ADDRESS."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:MAX_ADDRESS]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Ledger(Protocol):
    def throttled(self) -> dict[tuple[str, str], float]:
        """(ADDRESS or USER, key) -> seconds until it has fewer than LIMIT failures in the window."""

    def record_failure(self, address: str, username: str) -> None: ...

    def record_success(self, address: str, username: str) -> None: ...

    def known_pair(self, address: str, username: str) -> bool: ...

    def failures(self, address: str, username: str) -> tuple[int, int, int]:
        """Failures in the window: from `address` for any user name, from `address` for `username`, and for
        `username` from anywhere."""

    def watching(self) -> bool:
        """Is every failure, on any host, reported to this worker as it is committed?"""


class LoginThrottle:
    def __init__(self, ledger: Ledger, clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger = ledger
        self.clock = clock
        self._lock = threading.Lock()
        self._until: dict[tuple[str, str], float] | None = None  # None: read the record again
        self._generation = 0
        self._successes: dict[tuple[str, str], float] = {}

    def retry_after(self, address: str, username: str) -> int | None:
        """None: check this login's password; else refuse it for that many seconds."""
        address, username, now = address_key(address), username[:MAX_USERNAME], self.clock()
        until = self._throttled(now)
        by_address, by_user = (deadline if deadline is not None and deadline > now else None
                               for deadline in (until.get((ADDRESS, address)), until.get((USER, username))))
        if by_address is None and by_user is None:
            return None
        from_address, pair, for_user = self.ledger.failures(address, username)
        if pair < LIMIT and self.ledger.known_pair(address, username):
            return None
        if by_address is None and from_address == 0 and for_user < 2 * LIMIT:
            return None
        return max(1, math.ceil(max(by_address or now, by_user or now) - now))

    def changed(self) -> None:
        """A failure was committed somewhere (or the reports stopped or resumed): read the record again."""
        with self._lock:
            self._generation += 1
            self._until = None

    def failed(self, address: str, username: str) -> None:
        self.ledger.record_failure(address_key(address), username[:MAX_USERNAME])
        self.changed()

    def succeeded(self, address: str, username: str) -> None:
        now, pair = self.clock(), (address_key(address), username[:MAX_USERNAME])
        with self._lock:
            written = self._successes.get(pair)
            if written is not None and now - written < SUCCESS_WRITE_SECONDS:
                return
            if len(self._successes) >= MAX_REMEMBERED_SUCCESSES:
                self._successes.clear()
            self._successes[pair] = now
        self.ledger.record_success(*pair)

    def _throttled(self, now: float) -> dict[tuple[str, str], float]:
        with self._lock:
            until, generation = self._until, self._generation
        if until is not None and self.ledger.watching():
            return until
        until = {key: now + seconds for key, seconds in self.ledger.throttled().items()}
        with self._lock:
            if generation == self._generation:  # no failure was reported while this was read
                self._until = until
        return until
