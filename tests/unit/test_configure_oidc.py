"""The configure step with `auth: oidc`, on its own: what the settings file says of mlflow-oidc-auth, the
client secret it reads and checks, and the plugin's settings it writes to the env file. Against PostgreSQL
and the real plugin: tests/host/test_oidc_sign_in.py and tests/boot/test_oidc_boot.py."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

import naming
import userdata
from host_programs import configure
from host_programs.settings_file import SettingsError
from tests.support.loopback import loopback_settings, parse_env_file
from userdata import oidc, programs
from userdata.settings import OidcSettings

IDP = OidcSettings(issuer="https://login.example.com/tenant/v2.0", client_id="mlflow-client",
                   admin_group="mlflow-admins", allowed_groups=("mlflow-users", "Data Science"))
OIDC = loopback_settings(auth="oidc", oidc=IDP)
BASIC = loopback_settings()


def settings_file(tmp_path: Path, settings: Any) -> str:
    path = tmp_path / "host-settings.json"
    path.write_text(programs.settings_text(settings, userdata.host_programs(settings)))
    return str(path)


def values(**changes: str) -> configure.Parameters:
    base = {role: "a-value-long-enough-for-every-rule" for role in configure.ROLES}
    return configure.Parameters(**{**base, "db_port": "5432", "db_name": "mlflow", "db_username": "mlflow",
                                   "db_host": "db.internal", "admin_username": "admin",
                                   "oidc_client_secret": "the-client-secret", **changes})


def test_an_oidc_stack_reads_the_client_secret_and_the_plugins_settings(tmp_path):
    read = configure.read_settings(settings_file(tmp_path, OIDC))
    assert read.names.oidc_client_secret == naming.parameter_name(OIDC.ssm_prefix, naming.OIDC_CLIENT_SECRET)
    assert read.oidc is not None and read.oidc.database == naming.OIDC_AUTH_DATABASE
    assert read.oidc.environment == oidc.plugin_environment(OIDC)


def test_a_basic_stack_reads_no_client_secret(tmp_path):
    read = configure.read_settings(settings_file(tmp_path, BASIC))
    assert read.oidc is None and read.names.oidc_client_secret == ""
    assert configure.broken_rules(read.names, values(oidc_client_secret="")) == []


@pytest.mark.parametrize(("secret", "rule"), [("", "not empty"), ("two\nlines", "one line")])
def test_a_bad_client_secret_in_ssm_is_named_with_its_rule(tmp_path, secret, rule):
    read = configure.read_settings(settings_file(tmp_path, OIDC))
    assert configure.broken_rules(read.names, values(oidc_client_secret=secret)) == [
        (read.names.oidc_client_secret, rule)]


def test_an_unknown_auth_mode_in_the_settings_file_is_named(tmp_path):
    document = json.loads(Path(settings_file(tmp_path, BASIC)).read_text())
    document[configure.SECTION]["auth"] = "saml"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SettingsError, match=r"configure\.auth must be one of basic, oidc"):
        configure.read_settings(str(path))


def test_the_env_file_carries_the_plugins_settings_and_its_three_secrets(tmp_path):
    read = configure.read_settings(settings_file(tmp_path, OIDC))
    secrets = values(flask_secret_key="the-stacks-flask-key", db_password="p@ss")
    env = parse_env_file(configure.env_file_text(secrets, "postgresql+psycopg2://u:p@h/mlflow", read.oidc))
    assert {key: env[key] for key in oidc.plugin_environment(OIDC)} == oidc.plugin_environment(OIDC)
    assert env["OIDC_CLIENT_SECRET"] == "the-client-secret"
    assert env["SECRET_KEY"] == env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "the-stacks-flask-key"
    assert env["OIDC_USERS_DB_URI"].endswith(f"@db.internal:5432/{naming.OIDC_AUTH_DATABASE}?sslmode=require")
    assert "OIDC_CLIENT_SECRET" not in parse_env_file(configure.env_file_text(secrets, "postgresql://x"))


def test_the_plugin_is_told_the_redirect_uri_issuer_audience_and_groups():
    env = oidc.plugin_environment(OIDC)
    assert env["OIDC_REDIRECT_URI"] == f"{OIDC.tracking_uri}/callback"
    assert env["OIDC_DISCOVERY_URL"] == "https://login.example.com/tenant/v2.0/.well-known/openid-configuration"
    assert (env["OIDC_ISSUER"], env["OIDC_CLIENT_ID"], env["OIDC_AUDIENCE"]) == (
        IDP.issuer, "mlflow-client", "mlflow-client")
    assert (env["OIDC_GROUP_NAME"], env["OIDC_ADMIN_GROUP_NAME"]) == ("mlflow-users,Data Science", "mlflow-admins")
    assert env["DEFAULT_MLFLOW_PERMISSION"] == "READ" and env["AUTOMATIC_LOGIN_REDIRECT"] == "true"


@pytest.mark.parametrize(("settings", "uri", "secure"), [
    (dataclasses.replace(OIDC, tls="letsencrypt", public_hostname="mlflow.example.com"),
     "https://mlflow.example.com/callback", "true"),
    (dataclasses.replace(OIDC, public_hostname="mlflow.example.com", public_ip="", load_balancer_cidr="10.20.0.0/16"),
     "https://mlflow.example.com/callback", "true"),
    (OIDC, "http://127.0.0.1/callback", "false"),
])
def test_the_redirect_uri_follows_the_tracking_uri_and_the_cookie_is_secure_over_https(settings, uri, secure):
    env = oidc.plugin_environment(settings)
    assert (env["OIDC_REDIRECT_URI"], env["SESSION_COOKIE_SECURE"]) == (uri, secure)


def test_mlflow_service_tells_the_guard_which_app_to_wrap():
    from tests.support.loopback import host_file_contents, unit_directives
    from userdata import layout

    def environment(settings: Any) -> list[str]:
        return unit_directives(host_file_contents(settings)[layout.UNIT_PATH])["Environment"]

    assert "MLFLOW_AWS_AUTH=oidc" in environment(OIDC)
    assert not any(line.startswith("MLFLOW_AWS_AUTH=") for line in environment(BASIC))
