"""mlflow-configure: run by mlflow.service before every start (ExecStartPre), in MLflow's venv.

Reads the stack's SSM parameters through the instance role, waits for PostgreSQL, creates the auth
database if absent, writes the server's env file and basic-auth config (mode 0600), upgrades the
tracking schema, and keeps the admin account's password equal to the one in SSM, demoting an admin
the stack had before a rename of adminUsername (an earlier value of that parameter). Every wait is
bounded; a bad settings file, a missing parameter or an unreachable database exits non-zero before any
file is written, and any failure keeps the server from starting. A parameter that breaks its rule
(check_parameters) is named in one log line and changes nothing: the server starts with the last good
configuration, or, on a host that never had one, does not start. A restart that finds both schemas and
the admin as the last complete run left them skips the upgrade and the admin sync, which import MLflow.
Behind a load balancer (the settings' schema_lock), hosts take turns at the schemas.

A release that changes a schema holding data (host_programs/schema_upgrade.py: its migration scripts end
elsewhere than the database's revisions) first snapshots the stack's RDS instance and waits for the
snapshot, then stops every other writer (host_programs/fence.py: the fence row every host's watcher obeys,
and the other hosts' sessions ended), then migrates; a release that changes no schema stops nobody. A
migration that fails before it changed anything lifts the fence, so the hosts it stopped serve again, and
is not retried by this host (a new host, a new `pulumi up`, tries again); one that failed half-way keeps
the fence and names the snapshot to restore.
Behind a load balancer (the settings' schema_lock), hosts take turns at the schemas. With auth oidc, the
same for mlflow-oidc-auth (host_programs/oidc_auth.py, on such hosts only), from one more parameter.
"""

from __future__ import annotations

import configparser
import dataclasses
import io
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar
from urllib.parse import quote

from host_programs import aws, fence, schema_upgrade
from host_programs.settings_file import Section, SettingsError, load

if TYPE_CHECKING:
    from host_programs.oidc_auth import OidcSettings

PROGRAM = "mlflow-configure"
SECTION = "configure"
# Overrides the settings' wait_seconds (the tests' short waits).
WAIT_OVERRIDE_VARIABLE = "MLFLOW_CONFIGURE_WAIT_SECONDS"
MAX_RETRY_DELAY_SECONDS = 10.0
DEFAULT_PERMISSIONS = ("READ", "NO_PERMISSIONS")
# pg_advisory_lock key under which a fleet's hosts take turns at the schemas ("mlflow" in ASCII).
SCHEMA_LOCK_KEY = 0x6D6C666C6F77

T = TypeVar("T")


@dataclass(frozen=True)
class Parameters:
    """The stack's SSM parameters by role: their names in the settings, their values once read."""

    db_host: str
    db_port: str
    db_name: str
    db_username: str
    db_password: str
    admin_username: str
    admin_password: str
    flask_secret_key: str
    gateway_kek_passphrase: str
    oidc_client_secret: str = ""  # auth oidc only (its name then comes from the oidc settings)


# The roles every stack reads: those without a default.
ROLES = tuple(field.name for field in dataclasses.fields(Parameters) if field.default is dataclasses.MISSING)


@dataclass(frozen=True)
class Settings:
    region: str
    names: Parameters  # each role's SSM parameter name
    auth_database: str
    env_file: str
    auth_config: str
    state_file: str  # what the last complete run left: the MLflow release and both schemas' revisions
    default_permission: str  # what users may do with what others created (the stack's defaultPermission)
    wait_seconds: float  # each wait (SSM, PostgreSQL, the schema lock); then systemd starts over
    schema_lock: bool  # behind a load balancer: one host at a time at the schemas
    db_identifier: str  # the stack's RDS instance, snapshotted before a migration
    snapshot_wait_seconds: float  # how long the snapshot may take to become available
    fence_wait_seconds: float  # how long the other hosts' servers may take to stop
    host_id_file: str  # this host's id (made here once), as the fence names it
    admin_revision_file: str  # the admin parameters' versions the server started with (the admin restart)
    oidc: OidcSettings | None = None  # auth oidc: mlflow-oidc-auth's part


def oidc_settings(section: Section) -> OidcSettings | None:
    if section.choice("auth", ("basic", "oidc")) == "basic":
        return None
    from host_programs import oidc_auth

    return oidc_auth.read_settings(section)


def read_settings(path: str) -> Settings:
    root = load(path)
    section = root.section(SECTION)
    override = os.environ.get(WAIT_OVERRIDE_VARIABLE)
    oidc = oidc_settings(section)
    return Settings(
        region=root.text("region"),
        names=Parameters(**section.section("parameters").texts(ROLES),
                         oidc_client_secret=oidc.client_secret if oidc else ""),
        auth_database=section.text("auth_database"),
        env_file=section.text("env_file"),
        auth_config=section.text("auth_config"),
        state_file=section.text("state_file"),
        default_permission=section.choice("default_permission", DEFAULT_PERMISSIONS),
        wait_seconds=float(override) if override else section.number("wait_seconds"),
        schema_lock=section.flag("schema_lock"),
        db_identifier=section.text("db_identifier"),
        snapshot_wait_seconds=section.number("snapshot_wait_seconds"),
        fence_wait_seconds=section.number("fence_wait_seconds"),
        host_id_file=section.text("host_id_file"),
        admin_revision_file=section.text("admin_revision_file"),
        oidc=oidc,
    )


def log(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    log(f"FAILED: {message}")
    sys.exit(1)


def retry(what: str, step: Callable[[], tuple[T | None, str]], wait_seconds: float) -> T:
    """Call step() until it returns a value; it returns (None, reason) to be retried."""
    deadline = time.monotonic() + wait_seconds
    delay = 1.0
    while True:
        value, reason = step()
        if value is not None:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            fail(f"{what}: gave up after {wait_seconds:.0f} s: {reason}")
        log(f"{what}: {reason}; retrying in {min(delay, left):.0f} s ({left:.0f} s left)")
        time.sleep(min(delay, left))
        delay = min(delay * 2, MAX_RETRY_DELAY_SECONDS)


def read_parameters(settings: Settings) -> Parameters:
    return read_parameters_and_revision(settings)[0]


def admin_revision(names: Parameters, versions: Mapping[str, int]) -> str:
    """The versions of what a restart re-reads, as the admin-restart association carries them
    (components/server_secrets.py restart_revision, components/parameters.py parameter_versions):
    "admin-username=v1 admin-password=v2", and with auth oidc " client-secret=v1"."""
    restart_on = (names.admin_username, names.admin_password, names.oidc_client_secret)
    return " ".join(f"{name.rsplit('/', 1)[-1]}=v{versions[name]}" for name in restart_on if name)


def read_parameters_and_revision(settings: Settings) -> tuple[Parameters, str]:
    """The parameters' values, and the admin parameters' versions (admin_revision)."""
    from botocore.exceptions import BotoCoreError, ClientError

    names = {role: name for role, name in dataclasses.asdict(settings.names).items() if name}
    ssm = aws.ssm_client(settings.region)

    def step() -> tuple[tuple[Parameters, str] | None, str]:
        try:
            found = ssm.get_parameters(Names=list(names.values()), WithDecryption=True)["Parameters"]
        except (BotoCoreError, ClientError) as error:
            return None, f"cannot read SSM parameters: {error}"
        values = {parameter["Name"]: parameter["Value"] for parameter in found if "Name" in parameter}
        versions = {parameter["Name"]: parameter.get("Version", 0) for parameter in found if "Name" in parameter}
        missing = [name for name in names.values() if name not in values]
        if missing:
            return None, "missing SSM parameter(s): " + ", ".join(missing)
        return (Parameters(**{role: values[name] for role, name in names.items()}),
                admin_revision(settings.names, versions)), ""

    parameters = retry("SSM", step, settings.wait_seconds)
    log(f"read {len(names)} SSM parameters")
    return parameters


def _name(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", value) is not None


# Each parameter's rule (MLflow's own: mlflow.utils.validation._validate_password, its former default
# admin password, its published default gateway passphrase), checked before anything is written.
PARAMETER_RULES: dict[str, tuple[str, Callable[[str], bool]]] = {
    "db_host": ("a host name or IPv4 address", lambda v: re.fullmatch(r"[A-Za-z0-9.-]{1,253}", v) is not None),
    "db_port": ("a TCP port, 1-65535", lambda v: re.fullmatch(r"[0-9]{1,5}", v) is not None and 0 < int(v) < 65536),
    "db_name": ("a PostgreSQL name (letters, digits, _)", _name),
    "db_username": ("a PostgreSQL name (letters, digits, _)", _name),
    "db_password": ("not empty", bool),
    "admin_username": ("not empty, without ':' or spaces", lambda v: re.fullmatch(r"[^:\s]+", v) is not None),
    "admin_password": ("12 characters or more (MLflow's rule), not password1234",
                       lambda v: len(v) >= 12 and v != "password1234"),
    "flask_secret_key": ("16 characters or more", lambda v: len(v) >= 16),
    "gateway_kek_passphrase": ("16 characters or more, not MLflow's published default",
                               lambda v: len(v) >= 16 and v != "mlflow-default-kek-passphrase-for-development-only"),
    "oidc_client_secret": ("not empty", bool),
}


def broken_rules(names: Parameters, values: Parameters) -> list[tuple[str, str]]:
    """(parameter name, rule) for each value breaking its rule; values themselves are never logged."""
    broken = []
    for role, (rule, check) in PARAMETER_RULES.items():
        if not getattr(names, role):
            continue  # a parameter this stack does not read
        value = getattr(values, role)
        if re.search(r"[\r\n\0]", value):
            broken.append((getattr(names, role), "one line"))
        elif not check(value):
            broken.append((getattr(names, role), rule))
    return broken


def check_parameters(settings: Settings, values: Parameters) -> None:
    """Exit before anything is written when a parameter breaks its rule: status 0 when the last good
    configuration is there (the server starts with it, unchanged), 1 when there is none."""
    broken = broken_rules(settings.names, values)
    if not broken:
        return
    kept = os.path.exists(settings.env_file) and os.path.exists(settings.auth_config)
    outcome = "the server keeps the last good configuration" if kept else "no good configuration to start"
    for name, rule in broken:
        log(f"{'REFUSED' if kept else 'FAILED'}: SSM parameter {name} must be {rule}; {outcome}")
    sys.exit(0 if kept else 1)


def open_database(values: Parameters, database: str, *, application: str = PROGRAM) -> Any:
    """A connection named `application` in pg_stat_activity: the fence ends every other writer's but the
    configure steps' and the watchers' (host_programs/fence.py)."""
    import psycopg2

    return psycopg2.connect(
        host=values.db_host, port=values.db_port, dbname=database, user=values.db_username,
        password=values.db_password, sslmode="require", connect_timeout=5, application_name=application)


def connect(values: Parameters, wait_seconds: float) -> Any:
    import psycopg2

    where = f"{values.db_host}:{values.db_port}"

    def step() -> tuple[Any, str]:
        try:
            return open_database(values, values.db_name), ""
        except psycopg2.OperationalError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            return None, f"PostgreSQL at {where} not ready: {first_line}"

    connection = retry("PostgreSQL", step, wait_seconds)
    log(f"PostgreSQL at {where} answers")
    return connection


def take_schema_lock(values: Parameters, wait_seconds: float) -> Any:
    """A session-level PostgreSQL advisory lock on a connection of its own, held until its caller lets
    the connection go (at the latest when this process exits, also on failure): one host at a time
    creates the auth database and upgrades both schemas. MLflow's own guard around creating tables is a
    file in the host's /tmp, which the other hosts never see. Bounded like the other waits."""
    lock = connect(values, wait_seconds)
    lock.autocommit = True

    def step() -> tuple[Any, str]:
        with lock.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
            if cursor.fetchone()[0]:
                return lock, ""
        return None, "another host is creating or upgrading the schemas"

    retry("schema lock", step, wait_seconds)
    log("holding the schema lock")
    return lock


def ensure_auth_database(connection: Any, auth_database: str) -> None:
    from psycopg2 import errors, sql

    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (auth_database,))
        if cursor.fetchone():
            return
        try:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(auth_database)))
            log(f"created database {auth_database}")
        except errors.DuplicateDatabase:
            pass


def database_uri(values: Parameters, database: str) -> str:
    user = quote(values.db_username, safe="")
    password = quote(values.db_password, safe="")
    where = f"{values.db_host}:{values.db_port}"
    return f"postgresql+psycopg2://{user}:{password}@{where}/{quote(database, safe='')}?sslmode=require"


def env_value(value: str) -> str:
    # systemd's EnvironmentFile= syntax: inside double quotes, \ " ` $ are escaped with a backslash.
    return '"' + "".join("\\" + c if c in '\\"`$' else c for c in value) + '"'


def stage_private(path: str, text: str) -> str:
    """`path`.new, written in full and synced (mode 0600); returns its name."""
    temporary = f"{path}.new"
    if os.path.exists(temporary):
        os.unlink(temporary)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return temporary


def write_private(path: str, text: str) -> None:
    """Replace `path` atomically with a 0600 file: readers see the old file or the new one."""
    write_private_files({path: text})


def write_private_files(texts: Mapping[str, str]) -> None:
    """Every file staged in full before any replaces its old version, so a failure while writing
    (a full disk) leaves the old set; then renamed, and the directories synced."""
    staged = {path: stage_private(path, text) for path, text in texts.items()}
    for path, temporary in staged.items():
        os.replace(temporary, path)
    for directory in {os.path.dirname(path) or "." for path in staged}:
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def auth_config_text(default_permission: str, auth_uri: str, admin_username: str) -> str:
    config = configparser.ConfigParser()
    # configparser reads % as interpolation, and percent-encoded URIs are full of it.
    config["mlflow"] = {
        "default_permission": default_permission,
        "database_uri": auth_uri.replace("%", "%%"),
        "admin_username": admin_username.replace("%", "%%"),
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        # Credential checks (scrypt) are cached per worker for a minute: a changed password reaches
        # every worker within that time.
        "auth_cache_ttl_seconds": "60",
    }
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


class DatabaseState(NamedTuple):
    tracking_revisions: list[str]
    auth_revisions: list[str]
    admin: tuple[str, bool]  # the admin's (password_hash, is_admin)


def database_state(settings: Settings, values: Parameters) -> DatabaseState | None:
    """Both schemas' alembic revisions and the admin's (password_hash, is_admin) row, read with
    psycopg2 alone; None when a table or the row is missing (a new database, another schema)."""
    import psycopg2

    try:
        with closing(open_database(values, values.db_name)) as tracking, tracking.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            tracking_revisions = sorted(row[0] for row in cursor.fetchall())
        with closing(open_database(values, settings.auth_database)) as auth, auth.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version_auth")
            auth_revisions = sorted(row[0] for row in cursor.fetchall())
            cursor.execute("SELECT password_hash, is_admin FROM users WHERE username = %s", (values.admin_username,))
            admin = cursor.fetchone()
    except psycopg2.Error:
        return None
    return DatabaseState(tracking_revisions, auth_revisions, (admin[0], admin[1])) if admin else None


def installed_mlflow() -> str:
    from importlib.metadata import version

    return version("mlflow")


def state_record(state: DatabaseState) -> dict[str, Any]:
    return {"mlflow": installed_mlflow(), "tracking": state.tracking_revisions, "auth": state.auth_revisions}


def full_record(settings: Settings, values: Parameters, state: DatabaseState) -> dict[str, Any]:
    """state_record, and with auth oidc what the plugin's database holds (oidc_auth.record)."""
    if settings.oidc is None:
        return state_record(state)
    from host_programs import oidc_auth

    return {**state_record(state), **oidc_auth.record(lambda name: open_database(values, name), settings.oidc,
                                                      values.admin_username, values.admin_password)}


def unchanged_since_last_run(settings: Settings, values: Parameters) -> bool:
    """Whether the last complete run's record still holds: the same MLflow release, both schemas at the
    revisions it left, and the admin an admin with the password in SSM. Any doubt means no."""
    try:
        with open(settings.state_file, encoding="utf-8") as handle:
            recorded = json.load(handle)
    except (OSError, ValueError):
        return False
    state = database_state(settings, values)
    if state is None or recorded != full_record(settings, values, state):
        return False
    password_hash, is_admin = state.admin
    try:
        from werkzeug.security import check_password_hash

        return bool(is_admin) and check_password_hash(password_hash, values.admin_password)
    except (ImportError, ValueError):
        return False


def record_run(settings: Settings, values: Parameters) -> None:
    state = database_state(settings, values)
    if state is not None:
        write_private(settings.state_file, json.dumps(full_record(settings, values, state)) + "\n")


def upgrade_tracking_schema(tracking_uri: str) -> None:
    from mlflow.db import upgrade

    # In-process `mlflow db upgrade`, so the password never shows in a process list.
    upgrade.main(args=[tracking_uri], prog_name="mlflow db upgrade", standalone_mode=False)
    log("tracking schema is current")


def auth_store(auth_uri: str) -> Any:
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store: Any = SqlAlchemyStore()
    store.init_db(auth_uri)
    return store


def sync_admin(store: Any, username: str, password: str) -> None:
    """MLflow creates the admin only on an empty user store; later SSM changes are applied here."""
    if not store.has_user(username, use_primary=True):
        store.create_user(username, password, is_admin=True)
        log(f"created admin user {username}")
        return
    if not store.authenticate_user(username, password, use_primary=True):
        store.update_user(username, password=password)
        log(f"set the password of admin user {username} to the one in SSM")
    if not store.get_user(username).is_admin:
        store.update_user(username, is_admin=True)
        log(f"made {username} an admin again")


def former_admin_names(settings: Settings, current: str) -> list[str]:
    """Every earlier value of the admin-username parameter but the current one: the admins a rename left."""
    from botocore.exceptions import BotoCoreError, ClientError

    name = settings.names.admin_username
    ssm = aws.ssm_client(settings.region)

    def step() -> tuple[list[str] | None, str]:
        try:
            pages = ssm.get_paginator("get_parameter_history").paginate(Name=name)
            return [entry["Value"] for page in pages for entry in page["Parameters"] if "Value" in entry], ""
        except (BotoCoreError, ClientError) as error:
            return None, f"cannot read the history of {name}: {error}"

    history = retry("SSM history", step, settings.wait_seconds)
    return [former for former in dict.fromkeys(history) if former != current]


def demote_former_admins(store: Any, former: list[str], current: str) -> None:
    """A renamed admin keeps its account (and what it created) as an ordinary user, not its admin rights."""
    for name in former:
        if store.has_user(name, use_primary=True) and store.get_user(name).is_admin:
            store.update_user(name, is_admin=False)
            log(f"{name} is no longer an admin: the stack's admin is now {current}")


def env_file_text(values: Parameters, tracking_uri: str, oidc: OidcSettings | None = None) -> str:
    settings = [
        ("MLFLOW_BACKEND_STORE_URI", tracking_uri),
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", values.flask_secret_key),
        ("MLFLOW_AUTH_ADMIN_USERNAME", values.admin_username),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", values.admin_password),
        ("MLFLOW_CRYPTO_KEK_PASSPHRASE", values.gateway_kek_passphrase),
    ]
    if os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "").lower() == "true":
        # What `mlflow server --app-name basic-auth` generates for its job runner's gateway calls
        # (mlflow/server/__init__.py), and does only for that app name; one per start, as there.
        settings.append(("_MLFLOW_INTERNAL_GATEWAY_AUTH_TOKEN", secrets.token_hex(32)))
    if oidc is not None:
        from host_programs import oidc_auth

        settings += oidc_auth.env_settings(oidc, values.oidc_client_secret, values.flask_secret_key,
                                           database_uri(values, oidc.database))
    return "".join(f"{key}={env_value(value)}\n" for key, value in settings)


def configure(settings: Settings) -> None:
    values, revision = read_parameters_and_revision(settings)
    check_parameters(settings, values)
    schema_lock = take_schema_lock(values, settings.wait_seconds) if settings.schema_lock else None
    try:
        write_configuration(settings, values)
        write_private(settings.admin_revision_file, revision + "\n")
    finally:
        if schema_lock is not None:
            schema_lock.close()


def host_id(settings: Settings) -> str:
    """This host's id for the fence, made once (a random token: hosts of one stack never share it)."""
    try:
        with open(settings.host_id_file, encoding="utf-8") as handle:
            found = handle.read().strip()
        if found:
            return found
    except OSError:
        pass
    made = f"host-{secrets.token_hex(8)}"
    write_private(settings.host_id_file, made + "\n")
    os.chmod(settings.host_id_file, 0o644)  # the watcher reads it too
    return made


def wait_while_another_host_migrates(connection: Any, host: str, wait_seconds: float) -> fence.FenceRow | None:
    """The fence as it stands once no other host migrates (bounded); refuses to go on after this host's own
    migration failed without changing anything (it is not retried here: a new host tries again)."""
    def step() -> tuple[fence.FenceRow | bool | None, str]:
        with connection.cursor() as cursor:
            row = fence.read_row(cursor)
        if row is not None and row.state == fence.MIGRATING and row.holder != host:
            return None, f"host {row.holder} is migrating the schemas to MLflow {row.release}"
        return (row if row is not None else False), ""

    found = retry("fence", step, wait_seconds)
    row = found if isinstance(found, fence.FenceRow) else None
    if row is not None and row.state == fence.ABORTED and row.holder == host:
        fail(f"this host's migration to MLflow {row.release} failed before it changed anything (see the lines "
             "above in this journal); the other hosts serve again, and this host will not try again: fix the "
             "cause and run pulumi up, which replaces it")
    return row


def database_revisions(values: Parameters, auth_database: str) -> schema_upgrade.Revisions | None:
    """Both schemas' revisions; None for a database with no schema yet (nothing to migrate from)."""
    import psycopg2

    found = []
    for database, table in ((values.db_name, "alembic_version"), (auth_database, "alembic_version_auth")):
        try:
            with closing(open_database(values, database)) as connection, connection.cursor() as cursor:
                cursor.execute(f"SELECT version_num FROM {table}")  # a fixed name, never input
                found.append(sorted(row[0] for row in cursor.fetchall()))
        except psycopg2.errors.UndefinedTable:
            return None
    return schema_upgrade.Revisions(found[0], found[1])


def write_configuration(settings: Settings, values: Parameters) -> None:
    """The auth database, the two files the server reads, then the schemas and the admin when they changed."""
    connection = connect(values, settings.wait_seconds)
    try:
        ensure_auth_database(connection, settings.auth_database)
        host = host_id(settings)
        serving = wait_while_another_host_migrates(connection, host, settings.wait_seconds)
        if settings.oidc:
            ensure_auth_database(connection, settings.oidc.database)
    finally:
        connection.close()

    tracking_uri = database_uri(values, values.db_name)
    auth_uri = database_uri(values, settings.auth_database)
    write_private_files({
        settings.auth_config: auth_config_text(settings.default_permission, auth_uri, values.admin_username),
        settings.env_file: env_file_text(values, tracking_uri, settings.oidc),
    })
    log(f"wrote {settings.env_file} and {settings.auth_config}")

    if unchanged_since_last_run(settings, values):
        log(f"schemas and admin {values.admin_username} as the last run left them: no upgrade needed")
        return
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = settings.auth_config
    release = installed_mlflow()
    plan = schema_upgrade.Plan(database_revisions(values, settings.auth_database), schema_upgrade.release_heads())
    migration: fence.Migration | None = None
    try:
        if plan.migrates:
            log(f"MLflow {release} migrates the schemas from {plan.describe()}")
            migration = start_migration(settings, values, serving, host, release)
        upgrade_tracking_schema(tracking_uri)
        store = auth_store(auth_uri)
        if migration is not None:
            migration.finish()
        sync_admin(store, values.admin_username, values.admin_password)
        former = former_admin_names(settings, values.admin_username)
        demote_former_admins(store, former, values.admin_username)
        if settings.oidc:
            from host_programs import oidc_auth

            for change in oidc_auth.configure(settings.oidc, database_uri(values, settings.oidc.database), values,
                                              former):
                log(change)
        record_run(settings, values)
    except Exception as error:
        if migration is not None:
            migration.failed(unchanged=database_revisions(values, settings.auth_database) == plan.database)
        fail(f"{type(error).__name__}: {error}")
    with closing(open_database(values, values.db_name)) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            fence.record_serving(cursor, host, release)


def start_migration(settings: Settings, values: Parameters, serving: fence.FenceRow | None, host: str,
                    release: str) -> fence.Migration:
    """The snapshot (the other hosts still serve meanwhile), then the fence: every other writer stopped."""
    import datetime

    earlier = serving.release if serving is not None else "unknown"
    snapshot = schema_upgrade.snapshot_identifier(settings.db_identifier, earlier, release,
                                                  datetime.datetime.now(datetime.timezone.utc))
    schema_upgrade.take_snapshot(aws.rds_client(settings.region), settings.db_identifier, snapshot,
                                 settings.snapshot_wait_seconds, log)
    migration = fence.Migration(lambda: open_database(values, values.db_name), host, release, snapshot, log)
    migration.begin(settings.fence_wait_seconds)
    return migration


def main(arguments: Sequence[str], settings_file: str) -> int:
    if arguments:
        fail(f"takes no arguments, got {' '.join(arguments)}")
    # mlflow.service names its sessions mlflow-server (PGAPPNAME), and a migration ends every such session but
    # its own: the step's sessions, MLflow's migrations included (libpq reads PGAPPNAME), are spared by name.
    os.environ["PGAPPNAME"] = PROGRAM
    try:
        settings = read_settings(settings_file)
    except SettingsError as error:
        fail(str(error))
    configure(settings)
    log("done")
    return 0
