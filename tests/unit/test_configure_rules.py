"""The configure step's rule for each SSM parameter (the rendered script's PARAMETER_RULES), checked
before anything is written; the step itself on a loopback stack: tests/host/test_configure_faults.py."""

from __future__ import annotations

from typing import Any

import pytest

import naming
import userdata
from tests.support.loopback import loopback_settings, rendered_files
from userdata import layout

SETTINGS = loopback_settings()


def name(parameter: naming.SsmParameter) -> str:
    return naming.parameter_name(SETTINGS.ssm_prefix, parameter)


GOOD = {
    name(naming.DB_HOST): "mlflow-db.abc123.eu-west-1.rds.amazonaws.com",
    name(naming.DB_PORT): "5432",
    name(naming.DB_NAME): "mlflow",
    name(naming.DB_USERNAME): "mlflow",
    name(naming.DB_PASSWORD): "p%$#&*()-_=+[]{}<>:?!",
    name(naming.ADMIN_USERNAME): "admin",
    name(naming.ADMIN_PASSWORD): "a-long-enough-pw",
    name(naming.FLASK_SECRET_KEY): "x" * 64,
    name(naming.GATEWAY_KEK_PASSPHRASE): "y" * 64,
}


@pytest.fixture(scope="module")
def script() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "configure"}
    text = rendered_files(userdata.render(SETTINGS))[layout.CONFIGURE_SCRIPT]
    exec(compile(text, "configure", "exec"), namespace)
    return namespace


def test_every_host_parameter_has_a_rule_and_the_stacks_values_pass(script):
    assert set(script["PARAMETER_RULES"]) == {name(p) for p in naming.HOST_PARAMETERS}
    assert script["broken_rules"](GOOD) == []


@pytest.mark.parametrize(("parameter", "value", "rule"), [
    (naming.DB_HOST, "db host", "host name"),
    (naming.DB_PORT, "0", "TCP port"),
    (naming.DB_PORT, "65536", "TCP port"),
    (naming.DB_PORT, "5432x", "TCP port"),
    (naming.DB_NAME, "1mlflow", "PostgreSQL name"),
    (naming.DB_USERNAME, "ml-flow", "PostgreSQL name"),
    (naming.DB_PASSWORD, "", "not empty"),
    (naming.ADMIN_USERNAME, "ad:min", "':'"),
    (naming.ADMIN_PASSWORD, "eleven-char", "12 characters"),
    (naming.ADMIN_PASSWORD, "password1234", "password1234"),
    (naming.FLASK_SECRET_KEY, "short", "16 characters"),
    (naming.GATEWAY_KEK_PASSPHRASE, "mlflow-default-kek-passphrase-for-development-only", "published default"),
    (naming.FLASK_SECRET_KEY, "x" * 40 + "\n", "one line"),
])
def test_a_value_breaking_its_rule_is_named_with_the_rule(script, parameter, value, rule):
    ((broken_name, broken_rule),) = script["broken_rules"]({**GOOD, name(parameter): value})
    assert broken_name == name(parameter)
    assert rule in broken_rule


def test_the_env_file_carries_the_gateway_passphrase_and_a_job_runner_token_only_with_the_job_runner(
    script, monkeypatch
):
    from tests.support.loopback import parse_env_file

    def written() -> dict[str, str]:
        return parse_env_file(script["env_file_text"](GOOD, "postgresql+psycopg2://u:p@h:5432/mlflow", "admin",
                                                      GOOD[name(naming.ADMIN_PASSWORD)]))

    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    env = written()
    assert env["MLFLOW_CRYPTO_KEK_PASSPHRASE"] == GOOD[name(naming.GATEWAY_KEK_PASSPHRASE)]
    assert "_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN" not in env
    # `--app-name basic-auth` makes this token for the job runner; another app name must bring its own.
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    first, second = written(), written()
    assert len(first["_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN"]) == 64
    assert first["_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN"] != second["_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN"]
