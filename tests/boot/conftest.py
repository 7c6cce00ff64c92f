"""The boot tests: the rendered user data booted by cloud-init under systemd in a Debian 13 container
(tests/support/boot.py, tests/support/boot_stack.py). Marked `boot`: `pytest -m boot` runs them alone.

They need root, the Debian packages mmdebstrap and systemd-container (scripts/test installs them),
the loopback stack's packages (nginx, postgresql, openssl), and this machine's ports 80 and 443 free:
the container shares the host's network, so its nginx listens there. Without any of it they skip
with the reason, which .ci/run counts as a failure (tests/conftest.py).
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator

import pytest

from tests.support import boot, loopback

# Boots on one machine take turns (ports 80 and 443, the cached root file system): another checkout's
# boot tests, or CI's on a shared runner, are waited for, bounded, instead of failing on taken ports.
# Held per test module (each boots its own container), so a long run lets others boot between modules.
BOOT_LOCK = boot.CACHE_ROOT / "boot.lock"
BOOT_LOCK_WAIT_SECONDS = 3600.0


@pytest.fixture(scope="module", autouse=True)
def boot_lock() -> Iterator[None]:
    if boot.boot_requirements_missing():
        yield  # require_boot() skips these tests with the reason
        return
    BOOT_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(BOOT_LOCK, "w") as handle:
        deadline = time.monotonic() + BOOT_LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run has held {BOOT_LOCK} for {BOOT_LOCK_WAIT_SECONDS:.0f} s")
                time.sleep(5)
        yield  # closing the file releases the lock


def require_boot() -> None:
    missing = boot.boot_requirements_missing()
    if missing:
        pytest.skip(f"booting the user data in a container needs {', '.join(missing)}")
    missing = loopback.host_binaries_missing()
    if missing:
        pytest.skip(f"the services around the container need {', '.join(missing)} "
                    "(Debian packages nginx, postgresql, openssl)")
    taken = boot.ports_in_use()
    if taken:
        pytest.skip(f"port(s) {', '.join(map(str, taken))} are in use on this machine, and the container's nginx, "
                    "which shares the host's network, must listen there; stop what holds them")
