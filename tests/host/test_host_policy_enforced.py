"""The net proven: the host's processes sign with a role carrying the policy the program renders, and moto
authorizes them with it (tests/support/moto_authorization.py), so a policy missing an action the host needs
fails the host on loopback as it would on AWS, and for that reason: AccessDenied, naming the action."""

from __future__ import annotations

import pytest

from tests.host.conftest import require_host_binaries
from tests.support import host_role
from tests.support.loopback import LoopbackStack
from userdata import layout

pytestmark = pytest.mark.host

SHORT_WAIT = {"MLFLOW_CONFIGURE_WAIT_SECONDS": "3"}


def failure_line(stderr: str) -> str:
    failed = [line for line in stderr.splitlines() if line.startswith("mlflow-configure: FAILED: ")]
    assert failed, stderr
    return failed[-1]


def test_without_ssm_get_parameters_the_configure_step_fails_with_access_denied_and_with_it_reads_them():
    require_host_binaries()
    with LoopbackStack(start=False, policy_change=host_role.without_action("ssm:GetParameters")) as stack:
        stack.prepare()  # PostgreSQL not started: with its parameters read, the step waits for it next
        denied = stack.configure(env=SHORT_WAIT)
        moto_log = stack.moto.log.read_text()
        written = [stack.path(layout.ENV_FILE).exists(), stack.path(layout.AUTH_CONFIG).exists()]
        # The same stack, the same session: only the role's policy is now the one the program renders.
        host_role.put_host_policy(stack.moto.client("iam"), host_role.rendered_policy(stack.settings))
        allowed = stack.configure(env=SHORT_WAIT)

    line = failure_line(denied.stderr)
    assert denied.returncode == 1
    assert line.startswith("mlflow-configure: FAILED: SSM: gave up after 3 s: cannot read SSM parameters: ")
    assert "(AccessDeniedException)" in line and "assumed-role/mlflow-aws-host/" in line
    assert "not authorized to perform: ssm:GetParameters" in line
    assert "no identity-based policy allows ssm:GetParameters" in moto_log
    assert written == [False, False]

    assert "mlflow-configure: read 9 SSM parameters" in allowed.stderr
    assert failure_line(allowed.stderr).startswith("mlflow-configure: FAILED: PostgreSQL: gave up after 3 s: ")
