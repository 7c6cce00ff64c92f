"""The configure step's part for `auth: oidc`: mlflow-oidc-auth's database, schema, settings and the stack's admin.

The plugin keeps its users, groups, tokens, sessions, login attempts and grants in a database of its own on the
stack's RDS instance, so basic-auth's (the auth database) stays as it was for a switch back. Its settings
come from the settings file (userdata/oidc.py: none secret) plus three secrets written only to the env file:
the client secret (SSM), the session cookie's key (the stack's Flask secret key, the same on every host, so a
login started on one host finishes on any other) and the database URI.

The stack's admin (`adminUsername`, its password in SSM) is kept in the plugin's database as an internal
service account, an admin, whose one access token without the `mlf_` prefix is the password: the plugin
checks such a secret against the user's first prefix-less row (its user_tokens repository). So
`mlflow-aws users` and `smoke` sign in as the stack's admin with basic auth, as with basic-auth; the account
never signs in through a browser. The token lasts STACK_ADMIN_TOKEN_DAYS and each start renews it when fewer
than STACK_ADMIN_RENEW_DAYS are left.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from host_programs.settings_file import Section

AUTH_MODES = ("basic", "oidc")
STACK_ADMIN_TOKEN = "mlflow-aws-stack-admin"
STACK_ADMIN_TOKEN_DAYS = 365
STACK_ADMIN_RENEW_DAYS = 30
# The plugin's own alembic version table, in its own database.
VERSION_TABLE = "alembic_version"


@dataclass(frozen=True)
class OidcSettings:
    database: str  # the plugin's database on the stack's RDS instance
    client_secret: str  # the SSM parameter holding the identity provider's client secret
    environment: dict[str, str]  # the plugin's settings by its variable names (userdata/oidc.py)


def read_settings(section: Section) -> OidcSettings | None:
    """The configure section's `oidc` part, None with `auth: basic`."""
    if section.choice("auth", AUTH_MODES) == "basic":
        return None
    oidc = section.section("oidc")
    return OidcSettings(database=oidc.text("database"), client_secret=oidc.text("client_secret"),
                        environment=oidc.text_map("environment"))


def env_settings(settings: OidcSettings, client_secret: str, session_key: str, database_uri: str
                 ) -> list[tuple[str, str]]:
    return [
        *settings.environment.items(),
        ("OIDC_CLIENT_SECRET", client_secret),
        ("SECRET_KEY", session_key),
        ("OIDC_USERS_DB_URI", database_uri),
    ]


def now() -> datetime.datetime:
    """Naive UTC, as the plugin stores its timestamps."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def token_is_current(token_hash: str, expires_at: datetime.datetime, password: str) -> bool:
    from werkzeug.security import check_password_hash

    renew_at = now() + datetime.timedelta(days=STACK_ADMIN_RENEW_DAYS)
    return expires_at > renew_at and check_password_hash(token_hash, password)


def record(open_database: Callable[[str], Any], settings: OidcSettings, admin_username: str,
           admin_password: str) -> dict[str, Any]:
    """What the configure step's record of a complete run holds of the plugin: its release, its schema's
    revisions, and whether the stack's admin is as the password in SSM wants it (a token to renew is not).
    Read with psycopg2 alone, so a restart that finds it unchanged imports nothing of the plugin."""
    from importlib.metadata import version

    import psycopg2

    try:
        with closing(open_database(settings.database)) as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT version_num FROM {VERSION_TABLE}")
            revisions = sorted(row[0] for row in cursor.fetchall())
            cursor.execute("SELECT t.token_hash, t.expires_at, u.is_admin AND u.active FROM user_tokens t "
                           "JOIN users u ON u.id = t.user_id WHERE u.username = %s AND t.name = %s",
                           (admin_username.lower(), STACK_ADMIN_TOKEN))
            admin = cursor.fetchone()
    except psycopg2.Error:
        return {"oidc": None}
    current = bool(admin) and bool(admin[2]) and token_is_current(admin[0], admin[1], admin_password)
    return {"mlflow-oidc-auth": version("mlflow-oidc-auth"), "oidc": revisions, "oidc_admin": current}


def configure(settings: OidcSettings, database_uri: str, values: Any, former_admins: list[str]) -> list[str]:
    """The plugin's schema and the stack's admin in its database; returns what it did, for the log."""
    store = plugin_store(database_uri, values.flask_secret_key)
    return ["mlflow-oidc-auth's schema is current",
            *sync_stack_admin(store, values.admin_username, values.admin_password),
            *demote_former_admins(store, former_admins, values.admin_username)]


def plugin_store(database_uri: str, session_key: str) -> Any:
    """The plugin's store on its database, its migrations applied (alembic, under the caller's schema lock)."""
    import os

    # The plugin reads its settings when imported; its session key only silences a warning here.
    os.environ.setdefault("SECRET_KEY", session_key)
    from mlflow_oidc_auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(database_uri)
    return store


def sync_stack_admin(store: Any, username: str, password: str) -> list[str]:
    """Make the stack's admin an active internal service account and admin whose one prefix-less token is
    `password`; returns what it changed, for the log (never a value)."""
    from mlflow_oidc_auth.db.models import SqlUser, SqlUserToken
    from mlflow_oidc_auth.repository.user import normalize_username
    from mlflow_oidc_auth.repository.user_token import TOKEN_HASH_METHOD
    from werkzeug.security import generate_password_hash

    changed: list[str] = []
    name = normalize_username(username)
    if not store.has_user(name):
        store.create_user(name, name, is_admin=True, is_service_account=True, written_by="manual",
                          service_account_source="internal")
        changed.append(f"created the stack's admin {name} in mlflow-oidc-auth (an internal service account)")
    profile = store.get_user_profile(name)
    if not (profile.is_admin and profile.active and profile.is_service_account):
        store.update_user(name, is_admin=True, active=True, is_service_account=True, written_by="manual",
                          admin_override=True)
        changed.append(f"made {name} an active admin again")
    with store.ManagedSessionMaker(read_only=False) as session:
        user = session.query(SqlUser).filter(SqlUser.username == name).one()
        rows = session.query(SqlUserToken).filter(SqlUserToken.user_id == user.id,
                                                  SqlUserToken.token_prefix.is_(None)).all()
        if len(rows) == 1 and rows[0].name == STACK_ADMIN_TOKEN and \
                token_is_current(rows[0].token_hash, rows[0].expires_at, password):
            return changed
        for row in rows:
            session.delete(row)
        session.flush()
        session.add(SqlUserToken(user_id=user.id, name=STACK_ADMIN_TOKEN, token_prefix=None,
                                 token_hash=generate_password_hash(password, method=TOKEN_HASH_METHOD),
                                 created_at=now(), created_by="mlflow-configure",
                                 expires_at=now() + datetime.timedelta(days=STACK_ADMIN_TOKEN_DAYS)))
    changed.append(f"set the token of {name} to the admin password in SSM, for {STACK_ADMIN_TOKEN_DAYS} days")
    return changed


def demote_former_admins(store: Any, former: list[str], current: str) -> list[str]:
    """A renamed stack admin keeps its account as an ordinary one: no admin rights, no password token."""
    from mlflow_oidc_auth.db.models import SqlUser, SqlUserToken

    changed: list[str] = []
    with store.ManagedSessionMaker(read_only=False) as session:
        for name in former:
            user = session.query(SqlUser).filter(SqlUser.username == name.lower()).one_or_none()
            if user is None:
                continue
            revoked = session.query(SqlUserToken).filter(SqlUserToken.user_id == user.id,
                                                         SqlUserToken.name == STACK_ADMIN_TOKEN).delete()
            if user.is_admin or revoked:
                user.is_admin = False
                changed.append(f"{name} is no longer an admin of mlflow-oidc-auth: the stack's admin is now {current}")
    return changed
