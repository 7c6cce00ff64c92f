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
SUCCESS_WRITE_SECONDS = 3600.0
MAX_REMEMBERED_SUCCESSES = 10000

ADDRESS, USER = "address", "user"
MAX_ADDRESS, MAX_USERNAME = 64, 256


def address_key(address: str) -> str:
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
        self._until: dict[tuple[str, str], float] | None = None
        self._generation = 0
        self._successes: dict[tuple[str, str], float] = {}

    def retry_after(self, address: str, username: str) -> int | None:
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
            if generation == self._generation:
                self._until = until
        return until
