"""The configure step's rule for each SSM parameter (host_programs.configure.PARAMETER_RULES), checked
before anything is written; the step itself on a loopback stack: tests/host/test_configure_faults.py."""

from __future__ import annotations

import dataclasses

import pytest

import naming
from host_programs import configure
from tests.support.loopback import loopback_settings
from userdata import scripts

SETTINGS = loopback_settings()
NAMES = configure.Parameters(**{role: naming.parameter_name(SETTINGS.ssm_prefix, parameter)
                                for role, parameter in scripts.CONFIGURE_PARAMETERS.items()})
ROLE_OF = {parameter: role for role, parameter in scripts.CONFIGURE_PARAMETERS.items()}
GOOD = configure.Parameters(
    db_host="mlflow-db.abc123.eu-west-1.rds.amazonaws.com",
    db_port="5432",
    db_name="mlflow",
    db_username="mlflow",
    db_password="p%$#&*()-_=+[]{}<>:?!",
    admin_username="admin",
    admin_password="a-long-enough-pw",
    flask_secret_key="x" * 64,
    gateway_kek_passphrase="y" * 64,
)


def name(parameter: naming.SsmParameter) -> str:
    return naming.parameter_name(SETTINGS.ssm_prefix, parameter)


def test_every_host_parameter_has_a_rule_and_the_stacks_values_pass():
    assert set(configure.ROLES) == {ROLE_OF[p] for p in naming.HOST_PARAMETERS}
    assert set(configure.PARAMETER_RULES) == {*configure.ROLES, "oidc_client_secret"}
    assert configure.broken_rules(NAMES, GOOD) == []


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
def test_a_value_breaking_its_rule_is_named_with_the_rule(parameter, value, rule):
    broken = dataclasses.replace(GOOD, **{ROLE_OF[parameter]: value})
    ((broken_name, broken_rule),) = configure.broken_rules(NAMES, broken)
    assert broken_name == name(parameter)
    assert rule in broken_rule


def test_the_env_file_carries_the_gateway_passphrase_and_a_job_runner_token_only_with_the_job_runner(
    monkeypatch
):
    from tests.support.loopback import parse_env_file

    def written() -> dict[str, str]:
        return parse_env_file(configure.env_file_text(GOOD, "postgresql+psycopg2://u:p@h:5432/mlflow"))

    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    env = written()
    assert env["MLFLOW_CRYPTO_KEK_PASSPHRASE"] == GOOD.gateway_kek_passphrase
    assert (env["MLFLOW_AUTH_ADMIN_USERNAME"], env["MLFLOW_AUTH_ADMIN_PASSWORD"]) == ("admin", GOOD.admin_password)
    assert "_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN" not in env
    # `--app-name basic-auth` makes this token for the job runner; another app name must bring its own.
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    first, second = written(), written()
    assert len(first["_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN"]) == 64
    assert first["_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN"] != second["_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN"]
