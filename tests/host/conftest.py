"""The shared loopback stack (tests/support/loopback.py) for the host tests: started once per session,
because MLflow takes tens of seconds to start; the fault tests start their own short-lived stacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import loopback


def require_host_binaries() -> None:
    missing = loopback.host_binaries_missing()
    if missing:
        pytest.skip(f"the loopback stack needs {', '.join(missing)} (Debian packages nginx, postgresql, openssl)")


@pytest.fixture(scope="session")
def loopback_stack() -> Iterator[loopback.LoopbackStack]:
    require_host_binaries()
    # Monitoring on, as a default stack has it: nginx also writes its JSON access log (userdata.monitoring).
    with loopback.LoopbackStack(monitoring=True) as stack:
        yield stack


# A team's stack: new work private by default (defaultPermission), and one more browser origin.
TEAM_ORIGIN = "https://mlflow.corp.example:8443"


@pytest.fixture(scope="session")
def team_stack() -> Iterator[loopback.LoopbackStack]:
    require_host_binaries()
    with loopback.LoopbackStack(default_permission="NO_PERMISSIONS", extra_allowed_origins=(TEAM_ORIGIN,)) as stack:
        yield stack
