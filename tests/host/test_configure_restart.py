"""The configure step on a restart: when both schemas and the admin are as its last complete run left
them, it skips the schema upgrade and the admin sync (the two steps that import MLflow); any change
since then sends it the whole way again. Each test runs its own short-lived loopback stack."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
import requests

from tests.host.conftest import require_host_binaries
from tests.support.loopback import LoopbackStack, autocommit_cursor
from userdata import layout

pytestmark = pytest.mark.host

UPGRADED = "tracking schema is current"
SKIPPED = "as the last run left them: no upgrade needed"
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
MLFLOW_RELEASE = version("mlflow")  # the loopback stack runs the configure step with this venv


@pytest.fixture
def stack() -> Iterator[LoopbackStack]:
    require_host_binaries()
    with LoopbackStack(start=False) as unstarted:
        unstarted.prepare()
        unstarted.start_postgres()
        yield unstarted


def configure(stack: LoopbackStack) -> str:
    result = stack.configure()
    assert result.returncode == 0, result.stderr
    return result.stderr


def took_the_whole_way(log: str) -> bool:
    assert (UPGRADED in log) != (SKIPPED in log), log
    return UPGRADED in log


def record(stack: LoopbackStack) -> dict[str, Any]:
    recorded: dict[str, Any] = json.loads(stack.path(layout.CONFIGURE_STATE).read_text())
    return recorded


def test_a_restart_with_nothing_changed_skips_the_upgrade_and_the_server_still_serves(stack):
    assert took_the_whole_way(configure(stack))
    recorded = record(stack)
    assert recorded["mlflow"] == MLFLOW_RELEASE
    assert recorded["tracking"] and recorded["auth"]
    assert stat.S_IMODE(stack.path(layout.CONFIGURE_STATE).stat().st_mode) == 0o600

    assert not took_the_whole_way(configure(stack))
    assert record(stack) == recorded

    stack.launch_server()
    login = requests.get(f"{stack.direct_uri}{SEARCH}", auth=(stack.admin_username, stack.admin_password),
                         timeout=10)
    assert login.status_code == 200


def test_each_change_since_the_last_run_takes_the_whole_way(stack):
    assert took_the_whole_way(configure(stack))
    state_file = stack.path(layout.CONFIGURE_STATE)

    state_file.write_text(json.dumps({**record(stack), "mlflow": "0.0.1"}))  # another release installed
    assert took_the_whole_way(configure(stack))
    assert record(stack)["mlflow"] == MLFLOW_RELEASE

    state_file.write_text(json.dumps({**record(stack), "tracking": ["0123456789ab"]}))  # a restored database
    assert took_the_whole_way(configure(stack))

    with autocommit_cursor(stack.auth_postgres_dsn) as cursor:
        cursor.execute("UPDATE users SET is_admin = false WHERE username = %s", (stack.admin_username,))
    log = configure(stack)
    assert took_the_whole_way(log) and f"made {stack.admin_username} an admin again" in log

    stack.set_admin_password("rotated-" + os.urandom(12).hex())
    log = configure(stack)
    assert took_the_whole_way(log) and "to the one in SSM" in log

    assert not took_the_whole_way(configure(stack))  # and the record it left holds again


def is_admin(stack: LoopbackStack, username: str) -> bool | None:
    with autocommit_cursor(stack.auth_postgres_dsn) as cursor:
        cursor.execute("SELECT is_admin FROM users WHERE username = %s", (username,))
        row = cursor.fetchone()
    return None if row is None else bool(row[0])


def test_a_renamed_admin_takes_over_and_the_old_one_keeps_only_an_ordinary_account(stack):
    assert took_the_whole_way(configure(stack))
    old = stack.admin_username
    stack.set_admin_username("mlops")
    log = configure(stack)
    assert took_the_whole_way(log)
    assert "created admin user mlops" in log and f"{old} is no longer an admin" in log
    assert is_admin(stack, "mlops") is True and is_admin(stack, old) is False
    assert not took_the_whole_way(configure(stack))  # the record it left holds for the new admin

    stack.launch_server()
    users = f"{stack.direct_uri}/api/2.0/mlflow/users/get?username="
    assert requests.get(users + old, auth=("mlops", stack.admin_password), timeout=10).status_code == 200
    demoted = requests.get(users + "mlops", auth=(old, stack.admin_password), timeout=10)
    assert demoted.status_code == 403, "the renamed admin may no longer read other users"
