"""The boot tests: the rendered user data booted by cloud-init under systemd in a Debian 13 container
(tests/support/boot.py, tests/support/boot_stack.py). Marked `boot`: `pytest -m boot` runs them alone.

They need root, the Debian packages mmdebstrap and systemd-container (scripts/test installs them),
the loopback stack's packages (nginx, postgresql, openssl), and this machine's ports 80 and 443 free:
the container shares the host's network, so its nginx listens there. Without any of it they skip
with the reason, which .ci/run counts as a failure (tests/conftest.py).
"""

from __future__ import annotations

import pytest

from tests.support import boot, loopback


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
