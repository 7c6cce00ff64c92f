"""The host's software stack on 127.0.0.1, run from the files the user data gives the host.

Everything the EC2 host would run comes out of `userdata.host_files()`, the files the bootstrap writes on
the host (DESIGN decision 16; the boot tests run the bootstrap itself): the configure script and the
`ExecStartPre`/`ExecStart`/`Environment` lines of mlflow.service, and the nginx upstream, proxy snippet
and site. `remap()` rewrites their host paths and ports into a temporary tree and free ports; nothing
is retyped. Around them: a throwaway PostgreSQL cluster (initdb, SSL on with a self-signed
certificate, because the backend URI says sslmode=require; only SSL connections are accepted), and
moto's server as S3 (the artifact bucket, and the host files' bucket with their object) and SSM (the
stack's parameters, put the way the Database and ServerSecrets components put them, names from
naming.py), with authorization on: the tests act as
moto's admin, and the host's processes find a session of the host's role, carrying the policy the
program renders (tests/support/host_role.py), through the instance metadata stand-in (tests/support/imds.py)
as on EC2.

    with LoopbackStack(instance_memory_mib=1024) as stack:   # HostSettings overrides
        mlflow.set_tracking_uri(stack.tracking_uri)          # through nginx
        ...

Interface (all a plain class, usable without pytest):
  LoopbackStack(settings=None, *, start=True, policy_change=None, venv=None, nginx_port=None, **overrides)
                        settings: a HostSettings, or the defaults of `loopback_settings(**overrides)` (tls
                        off, public_ip 127.0.0.1); policy_change: a change to the host role's policy
                        (host_role.without_action); venv: the host venv (default: the project's);
                        nginx_port: a chosen port
  start()               prepare() + start_postgres() + start_mlflow() + start_nginx()
  prepare()             write_host_files(), initdb, start moto, create the bucket, put the parameters,
                        create the host's role and start the metadata stand-in with its session
  write_host_files()    every rendered file, remapped, into the tree (no server started)
  start_postgres() / stop_postgres()
  configure(env=None, timeout=...) -> CompletedProcess    the rendered ExecStartPre, once
  configure_in_background(env=None) -> Popen              the same, not waited for (its log: configure_log)
  start_mlflow() / stop_mlflow() / restart_mlflow()      configure step, then ExecStart; waits for /health
  launch_server(env=None)                                ExecStart alone, after a configure step
  start_nginx() / stop_nginx(); close()                  (close stops everything and removes the tree)
  user_data             the rendered document;  files: host path -> content of every host file
  host_bundle           the object of the host's files, put into moto's host-files bucket by prepare()
  tracking_uri          http://127.0.0.1:<nginx port> (through nginx);  direct_uri: straight to MLflow
  admin_username, admin_password, bucket, region, s3_endpoint, postgres_dsn (tracking database),
  auth_postgres_dsn, parameters (SSM name -> value), secret_values (the SecureString values)
  mlflow_pid, mlflow_process_ids() (the server and its uvicorn workers), mlflow_log, nginx_log
  replacements          host text -> loopback text, for remap(); extend it for other rendered files
  root, logs            the temporary tree and its log directory (kept when MLFLOW_AWS_KEEP_LOOPBACK=1)
  mlflow_port, nginx_port, configure_log
  nginx_config(sites=None) -> Path, nginx_command(conf, *args)   the stand-in nginx.conf and its command
  set_admin_password(password)   a new admin password in SSM (applied at the next start_mlflow)
  set_admin_username(username)   a renamed admin in SSM (likewise)
  path(host_path)       where a host path lives in the temporary tree;  remap(text): with `replacements`
  env_file_values()     the env file the configure step wrote, parsed as systemd parses it
  ssm_client(), s3_client()                              boto3 clients for moto, as its admin
  aws_environment()     what the host's processes get: moto's endpoint and the metadata stand-in's
  imds                  the metadata stand-in (credential_reads, refused)

Module functions: remap(text, replacements), loopback_replacements(...), loopback_settings(**overrides),
host_file_contents(settings), unit_directives(unit_text), parse_env_file(text),
host_binaries_missing(), autocommit_cursor(dsn) (a cursor whose statements commit at once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import os
import pwd
import re
import secrets
import select
import shlex
import shutil
import signal
import ssl
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import psycopg2

import naming
import userdata
from components import naming_rules
from tests.support import host_role
from tests.support.imds import InstanceMetadata, running_instance_metadata
from tests.support.ports import free_port
from userdata import layout, monitoring
from userdata.settings import HostSettings

STARTUP_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0
LOOPBACK = "127.0.0.1"
ADMIN_USERNAME = "admin"
REPOSITORY = Path(__file__).resolve().parents[2]
DB_USERNAME = "mlflow"  # components.database.MASTER_USERNAME
# RDS rejects '/', '@', '"' and spaces in passwords; the rest must survive URL and env-file quoting.
_DB_PASSWORD_ALPHABET = string.ascii_letters + string.digits + "%$#&*()-_=+[]{}<>:?!"
_SECRET_ALPHABET = _DB_PASSWORD_ALPHABET + "\"'`\\@/ "


class LoopbackError(RuntimeError):
    pass


class ConfigureFailed(LoopbackError):
    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        super().__init__(f"configure step exited {result.returncode}:\n{result.stderr[-4000:]}")


def postgres_bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def host_binaries_missing() -> list[str]:
    missing = [name for name in ("nginx", "openssl") if shutil.which(name) is None]
    if postgres_bin_dir() is None:
        missing.append("initdb (postgresql)")
    return missing


def loopback_settings(**overrides: Any) -> HostSettings:
    project, stack = "mlflow-aws", "loopback"
    base = HostSettings(
        project=project,
        stack=stack,
        region="us-east-1",
        ssm_prefix=naming.ssm_prefix(project, stack),
        artifact_bucket="mlflow-aws-loopback-artifacts",
        host_files_bucket="mlflow-aws-loopback-host-files",
        public_hostname=LOOPBACK,  # a default stack: no domain, the address itself
        public_ip=LOOPBACK,
        mlflow_version=importlib.metadata.version("mlflow"),
        instance_memory_mib=1024,  # t3.micro: one worker, the tightest fit and the fastest start
        tls="off",
        db_identifier=naming_rules.database_identifier(project, stack),
    )
    return dataclasses.replace(base, **overrides)


def remap(text: str, replacements: Mapping[str, str]) -> str:
    """Replace every key of `replacements` in one pass, longest key first, so no output is rewritten."""
    if not replacements:
        return text
    pattern = re.compile("|".join(re.escape(key) for key in sorted(replacements, key=len, reverse=True)))
    return pattern.sub(lambda match: replacements[match.group(0)], text)


def loopback_replacements(root: Path, *, venv: Path, mlflow_port: int, nginx_port: int) -> dict[str, str]:
    """Host paths -> the temporary tree, the venv -> `venv`, MLflow's and nginx's ports -> free ones."""
    tree = {
        directory: str(root) + directory
        for directory in (layout.CONFIG_DIR, layout.STATE_DIR, layout.SBIN_DIR, layout.SYSTEMD_DIR,
                          layout.NGINX_DIR, layout.UV_DIR, layout.UV_CACHE_DIR, layout.CACHE_DIR, layout.GUARD_DIR,
                          layout.HOST_PROGRAMS_DIR, layout.HOST_SETTINGS_DIR, layout.NGINX_LOG_DIR,
                          monitoring.STATE_DIR, layout.RUN_DIR)
    }
    bind = f"{layout.MLFLOW_BIND_HOST}:{layout.MLFLOW_PORT}"
    return {
        **tree,
        layout.VENV_DIR: str(venv),
        bind: f"{LOOPBACK}:{mlflow_port}",
        f"localhost:{layout.MLFLOW_PORT}": f"localhost:{mlflow_port}",
        f"--port {layout.MLFLOW_PORT}": f"--port {mlflow_port}",
        f"listen {layout.HTTP_PORT} ": f"listen {LOOPBACK}:{nginx_port} ",
        f"listen {layout.HTTP_PORT};": f"listen {LOOPBACK}:{nginx_port};",
    }


def host_file_contents(settings: HostSettings) -> dict[str, str]:
    """Every host file of `settings` (userdata.host_files, the one list the bootstrap's object holds):
    host path -> content."""
    return {file.path: file.content for file in userdata.host_files(settings)}


def unit_directives(unit_text: str) -> dict[str, list[str]]:
    """`Key=value` lines of a unit (all sections), each key's values in order."""
    directives: dict[str, list[str]] = {}
    for raw in unit_text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        directives.setdefault(key.strip(), []).append(value.strip())
    return directives


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=value lines as systemd's EnvironmentFile= reads them (the forms the configure step writes:
    unquoted, or double-quoted with \\ " ` $ escaped by a backslash; single quotes are literal)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, _, value = line.partition("=")
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            body, out, index = value[1:-1], [], 0
            while index < len(body):
                char = body[index]
                if char == "\\" and index + 1 < len(body):
                    following = body[index + 1]
                    out.append(following if following in '\\"`$' else char + following)
                    index += 2
                else:
                    out.append(char)
                    index += 1
            values[key.strip()] = "".join(out)
        elif value.startswith("'") and value.endswith("'") and len(value) >= 2:
            values[key.strip()] = value[1:-1]
        else:
            values[key.strip()] = value.strip()
    return values


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _wait_http(url: str, deadline: float, alive: Any = None, what: str = "", ca_bundle: Path | None = None) -> None:
    last = ""
    context = ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise LoopbackError(f"{what} exited before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
        time.sleep(0.2)
    raise LoopbackError(f"{url} did not answer 200 in time: {last}")


def _stop_process(process: subprocess.Popen[bytes] | None, *, group: bool) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except ProcessLookupError:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    if group:
        _kill_group_leftovers(process.pid)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return sorted(members)


def _kill_group_leftovers(pgid: int) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_members(pgid):
        os.killpg(pgid, signal.SIGKILL)


@contextlib.contextmanager
def autocommit_cursor(dsn: str) -> Iterator[Any]:
    """A cursor on `dsn` whose every statement commits at once (CREATE and DROP DATABASE need that)."""
    connection = psycopg2.connect(dsn)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


class PostgresCluster:
    """initdb in `base` (owned by the postgres user when running as root: initdb refuses root), SSL on."""

    def __init__(self, base: Path, *, port: int, superuser: str, password: str, database: str) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise LoopbackError("PostgreSQL's initdb is not installed")
        self.bin_dir = bin_dir
        self.base = base
        self.data = base / "data"
        self.log = base / "postgres.log"
        self.port = port
        self.superuser = superuser
        self.password = password
        self.database = database
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(args, user=self.user, capture_output=True, text=True, timeout=timeout,
                                cwd=self.base)
        if result.returncode != 0:
            raise LoopbackError(f"{' '.join(args[:2])} failed: {result.stdout}{result.stderr}")

    def init(self) -> None:
        self.base.mkdir(parents=True)
        password_file = self.base / "password"
        password_file.write_text(self.password + "\n")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", f"/CN={LOOPBACK}",
             "-keyout", str(self.base / "server.key"), "-out", str(self.base / "server.crt")],
            check=True, capture_output=True, timeout=30,
        )
        (self.base / "server.key").chmod(0o600)
        if self.user:
            account = pwd.getpwnam(self.user)
            for path in (self.base, password_file, self.base / "server.key", self.base / "server.crt"):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", self.superuser,
                  f"--pwfile={password_file}", "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync",
                  "--no-instructions")
        password_file.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '{LOOPBACK}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.base}'\n"
                f"ssl = on\nssl_cert_file = '{self.base / 'server.crt'}'\nssl_key_file = '{self.base / 'server.key'}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        # SSL only, like RDS with rds.force_ssl: a plain connection is refused.
        (self.data / "pg_hba.conf").write_text(f"hostssl all all {LOOPBACK}/32 scram-sha-256\n")

    def dsn(self, database: str | None = None) -> str:
        return (f"host={LOOPBACK} port={self.port} dbname={database or self.database} user={self.superuser} "
                f"password='{self.password}' sslmode=require connect_timeout=5")

    def start(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "start", timeout=90)
        # RDS creates the tracking database with the instance; so does this cluster when it first starts.
        with autocommit_cursor(self.dsn("postgres")) as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
            if not cursor.fetchone():
                cursor.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60",
                      "stop", timeout=90)


class MotoServer:
    """moto's ThreadedMotoServer in a child process (tests/support/moto_process.py), authorization on: the
    tests act as the admin identity it creates (`client`), the host as its role (`start_host_role`)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.admin_arn = ""
        self.admin_keys: dict[str, str] = {}

    def start(self) -> None:
        command = [sys.executable, "-m", "tests.support.moto_process", "--host-role", host_role.HOST_ROLE]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                            cwd=REPOSITORY)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], STARTUP_TIMEOUT_SECONDS)
        line = self.process.stdout.readline() if ready else b""
        try:
            started = json.loads(line)
        except ValueError:
            self.stop()
            raise LoopbackError(f"moto did not start: {self.log.read_text(errors='replace')[-2000:]}") from None
        self.port = int(started["port"])
        self.admin_arn = started["admin_arn"]
        self.admin_keys = {"aws_access_key_id": started["admin_access_key_id"],
                           "aws_secret_access_key": started["admin_secret_access_key"]}

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def client(self, service: str, region: str = "us-east-1") -> Any:
        """A boto3 client signed by the tests' admin, which may do anything."""
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint,  # type: ignore[call-overload]
                            **self.admin_keys)

    def start_host_role(self, settings: HostSettings,
                        policy_change: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                        ) -> host_role.RoleCredentials:
        """The host's role with the policy the program renders for `settings` (changed by `policy_change`,
        if given), and the credentials of a session of it."""
        policy = host_role.rendered_policy(settings)
        return host_role.create_host_role(self.client("iam"), self.client("sts"), self.admin_arn,
                                          policy_change(policy) if policy_change else policy)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None


class LoopbackStack:
    def __init__(self, settings: HostSettings | None = None, *, start: bool = True,
                 policy_change: Callable[[dict[str, Any]], dict[str, Any]] | None = None, venv: Path | None = None,
                 nginx_port: int | None = None, **overrides: Any) -> None:
        self.settings = settings if settings is not None else loopback_settings(**overrides)
        self.policy_change = policy_change
        if settings is not None and overrides:
            self.settings = dataclasses.replace(settings, **overrides)
        self.user_data = userdata.render(self.settings)
        self.host_bundle = userdata.host_bundle(self.settings)
        self.files = host_file_contents(self.settings)
        self.unit = unit_directives(self.files[layout.UNIT_PATH])
        self.root = Path(tempfile.mkdtemp(prefix="mlflow-loopback-"))
        self.root.chmod(0o711)  # PostgreSQL's own user must reach its directory inside
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.mlflow_port, self.nginx_port, postgres_port = free_port(), nginx_port or free_port(), free_port()
        self.replacements = loopback_replacements(self.root, venv=venv or Path(sys.prefix),
                                                  mlflow_port=self.mlflow_port, nginx_port=self.nginx_port)
        self.admin_username = ADMIN_USERNAME
        self.admin_password = _random(_SECRET_ALPHABET, 32)
        self.postgres = PostgresCluster(self.root / "postgres", port=postgres_port, superuser=DB_USERNAME,
                                        password=_random(_DB_PASSWORD_ALPHABET, 40),
                                        database=naming.TRACKING_DATABASE)
        self.moto = MotoServer(self.logs / "moto.log")
        self.imds: InstanceMetadata | None = None
        self._imds_running: contextlib.AbstractContextManager[InstanceMetadata] | None = None
        self.parameters: dict[str, str] = {}
        self.mlflow: subprocess.Popen[bytes] | None = None
        self.nginx: subprocess.Popen[bytes] | None = None
        self.mlflow_log = self.logs / "mlflow.log"
        self.configure_log = self.logs / "configure.log"
        self.nginx_log = self.logs / "nginx-error.log"
        self._prepared = False
        self.startup_timeout = STARTUP_TIMEOUT_SECONDS  # for the configure step, and /health after each launch
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    # -- facts -------------------------------------------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        return f"http://{LOOPBACK}:{self.nginx_port}"

    @property
    def direct_uri(self) -> str:
        return f"http://{LOOPBACK}:{self.mlflow_port}"

    @property
    def bucket(self) -> str:
        return self.settings.artifact_bucket

    @property
    def region(self) -> str:
        return self.settings.region

    @property
    def s3_endpoint(self) -> str:
        return self.moto.endpoint

    @property
    def postgres_dsn(self) -> str:
        return self.postgres.dsn()

    @property
    def auth_postgres_dsn(self) -> str:
        return self.postgres.dsn(naming.AUTH_DATABASE)

    @property
    def secret_values(self) -> list[str]:
        return [self.parameters[naming.parameter_name(self.settings.ssm_prefix, p)]
                for p in naming.HOST_PARAMETERS if p.secure]

    @property
    def mlflow_pid(self) -> int | None:
        return self.mlflow.pid if self.mlflow is not None and self.mlflow.poll() is None else None

    def mlflow_process_ids(self) -> list[int]:
        pid = self.mlflow_pid
        return _group_members(pid) if pid is not None else []

    def path(self, host_path: str) -> Path:
        return Path(remap(host_path, self.replacements))

    def remap(self, text: str) -> str:
        return remap(text, self.replacements)

    def env_file_values(self) -> dict[str, str]:
        return parse_env_file(self.path(layout.ENV_FILE).read_text())

    def aws_environment(self) -> dict[str, str]:
        """What points the host's boto3 (the configure step's, MLflow's, the certificate state's) at moto
        and its credential chain at the metadata stand-in, which hands out the host role's session: no key
        in the environment, no shared credentials or config file, as on the host."""
        if self.imds is None:
            raise LoopbackError("prepare() first: the metadata stand-in starts with the host's role")
        return {
            "AWS_ENDPOINT_URL": self.moto.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.moto.endpoint,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds.endpoint,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_CONFIG_FILE": os.devnull,
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def ssm_client(self) -> Any:
        """SSM as the tests' admin (the host's own calls go through its role)."""
        return self.moto.client("ssm", self.region)

    def s3_client(self) -> Any:
        """S3 as the tests' admin."""
        return self.moto.client("s3", self.region)

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> LoopbackStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.prepare()
        self.start_postgres()
        self.start_mlflow()
        self.start_nginx()

    def write_host_files(self) -> None:
        """Every rendered file, remapped, at its place in the tree; the directories runcmd creates."""
        for host_path, content in self.files.items():
            target = self.path(host_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(self.remap(content))
            target.chmod(0o755 if content.startswith("#!") else 0o644)
        for directory in (layout.CONFIG_DIR, layout.STATE_DIR):
            self.path(directory).mkdir(parents=True, exist_ok=True, mode=0o700)

    def prepare(self) -> None:
        if self._prepared:
            return
        self.write_host_files()
        self.postgres.init()
        self.moto.start()
        self.s3_client().create_bucket(Bucket=self.bucket)
        self.put_host_files()
        self.put_parameters()
        self.create_database_instance()
        self.start_instance_metadata(self.moto.start_host_role(self.settings, self.policy_change))
        self._prepared = True

    def start_instance_metadata(self, credentials: host_role.RoleCredentials) -> None:
        """The metadata stand-in (tests/support/imds.py), handing out the host role's session; the host's
        public address is the stack's Elastic IP (already associated, as after a deploy's move)."""
        self._imds_running = running_instance_metadata(host_role.HOST_ROLE, credentials,
                                                       public_ipv4=self.settings.public_ip)
        self.imds = self._imds_running.__enter__()

    def stop_instance_metadata(self) -> None:
        if self._imds_running is not None:
            self._imds_running.__exit__(None, None, None)
            self._imds_running = None

    def put_host_files(self) -> None:
        """The host-files bucket and the object the user data names, as components/host_files.py uploads it."""
        s3 = self.s3_client()
        s3.create_bucket(Bucket=self.settings.host_files_bucket)
        s3.put_object(Bucket=self.settings.host_files_bucket, Key=self.host_bundle.key, Body=self.host_bundle.body,
                      ContentType="application/json")

    def create_database_instance(self) -> None:
        """The stack's RDS instance as moto knows it (PostgreSQL itself is the local cluster): what the
        configure step snapshots before a release migrates a schema."""
        self.moto.client("rds", self.region).create_db_instance(
            DBInstanceIdentifier=self.settings.db_identifier, DBInstanceClass="db.t4g.micro", Engine="postgres",
            MasterUsername=DB_USERNAME, MasterUserPassword=secrets.token_hex(12), AllocatedStorage=20)

    def put_parameters(self) -> None:
        """The stack's parameters, as components.database and components.server_secrets put them."""
        values = {
            naming.DB_HOST: LOOPBACK,
            naming.DB_PORT: str(self.postgres.port),
            naming.DB_NAME: naming.TRACKING_DATABASE,
            naming.DB_USERNAME: DB_USERNAME,
            naming.DB_PASSWORD: self.postgres.password,
            naming.ADMIN_USERNAME: self.admin_username,
            naming.ADMIN_PASSWORD: self.admin_password,
            naming.FLASK_SECRET_KEY: _random(_SECRET_ALPHABET, 64),
            naming.GATEWAY_KEK_PASSPHRASE: _random(_SECRET_ALPHABET, 64),
        }
        ssm = self.ssm_client()
        for parameter in naming.HOST_PARAMETERS:
            name = naming.parameter_name(self.settings.ssm_prefix, parameter)
            ssm.put_parameter(Name=name, Value=values[parameter], Overwrite=True,
                              Type="SecureString" if parameter.secure else "String")
            self.parameters[name] = values[parameter]

    def set_admin_password(self, password: str) -> None:
        """Change the admin password in SSM, as a new `pulumi up` of ServerSecrets would."""
        name = naming.parameter_name(self.settings.ssm_prefix, naming.ADMIN_PASSWORD)
        self.ssm_client().put_parameter(Name=name, Value=password, Type="SecureString", Overwrite=True)
        self.parameters[name] = password
        self.admin_password = password

    def set_admin_username(self, username: str) -> None:
        """Rename the admin in SSM, as a `pulumi up` after `pulumi config set adminUsername` would."""
        name = naming.parameter_name(self.settings.ssm_prefix, naming.ADMIN_USERNAME)
        self.ssm_client().put_parameter(Name=name, Value=username, Type="String", Overwrite=True)
        self.parameters[name] = username
        self.admin_username = username

    def start_postgres(self) -> None:
        self.postgres.start()

    def stop_postgres(self) -> None:
        self.postgres.stop()

    def _service_environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("AWS_", "MLFLOW_")) and key.upper() not in ("HTTP_PROXY", "HTTPS_PROXY")}
        for assignment in self.unit.get("Environment", []):
            for word in shlex.split(assignment):
                key, _, value = word.partition("=")
                env[key] = remap(value, self.replacements)
        env.update(self.aws_environment())
        env.update(extra or {})
        return env

    def _configure_command(self) -> list[str]:
        # The other ExecStartPre, the install, is the host's own: this stack brings its venv.
        (command,) = [c for c in self.unit["ExecStartPre"] if shlex.split(c)[0] == layout.CONFIGURE_SCRIPT]
        return shlex.split(remap(command, self.replacements))

    def configure(self, env: Mapping[str, str] | None = None, timeout: float | None = None,
                  ) -> subprocess.CompletedProcess[str]:
        """The configure step once; it gets as long as a start (`startup_timeout`) unless told otherwise."""
        result = subprocess.run(self._configure_command(), env=self._service_environment(env),
                                capture_output=True, text=True, timeout=timeout or self.startup_timeout,
                                cwd=self.path(layout.STATE_DIR))
        with self.configure_log.open("a") as log:
            log.write(result.stderr)
        return result

    def configure_in_background(self, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        with self.configure_log.open("ab") as log:
            return subprocess.Popen(self._configure_command(), env=self._service_environment(env),
                                    stdout=log, stderr=log, cwd=self.path(layout.STATE_DIR))

    def start_mlflow(self, env: Mapping[str, str] | None = None) -> None:
        """What systemd does on `start`: ExecStartPre (must succeed), then ExecStart with the env file."""
        result = self.configure(env)
        if result.returncode != 0:
            raise ConfigureFailed(result)
        self.launch_server(env)

    def launch_server(self, env: Mapping[str, str] | None = None) -> None:
        """ExecStart alone (after a configure step that already succeeded); waits for /health."""
        environment = self._service_environment(env)
        for assignment in self.unit.get("EnvironmentFile", []):
            path = Path(remap(assignment.lstrip("-"), self.replacements))
            if path.exists():
                environment.update(parse_env_file(path.read_text()))
        (command,) = self.unit["ExecStart"]
        (workdir,) = self.unit["WorkingDirectory"]
        with self.mlflow_log.open("ab") as log:
            self.mlflow = subprocess.Popen(shlex.split(remap(command, self.replacements)), env=environment,
                                           stdout=log, stderr=log, cwd=remap(workdir, self.replacements),
                                           start_new_session=True)
        process = self.mlflow
        try:
            _wait_http(f"{self.direct_uri}/health", time.monotonic() + self.startup_timeout,
                       alive=lambda: process.poll() is None, what="mlflow server")
        except LoopbackError as error:
            raise LoopbackError(f"{error}\n{self.mlflow_log.read_text(errors='replace')[-4000:]}") from None

    def stop_mlflow(self) -> None:
        _stop_process(self.mlflow, group=True)
        self.mlflow = None

    def restart_mlflow(self) -> None:
        self.stop_mlflow()
        self.start_mlflow()

    def nginx_config(self, sites: list[str] | None = None) -> Path:
        """A top-level nginx.conf standing in for Debian's: the rendered upstream and site(s), remapped,
        with pid, logs and temp files in the tree. `sites`: host paths (default: the HTTP site)."""
        work = self.root / "nginx"
        for directory in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (work / directory).mkdir(parents=True, exist_ok=True)
        includes = "\n".join(f"    include {self.path(site)};" for site in (sites or [layout.NGINX_HTTP_SITE]))
        # Debian's nginx.conf includes conf.d/*.conf in http{}, in name order, before the sites.
        conf_d = sorted(path for path in self.files if path.startswith(f"{layout.NGINX_DIR}/conf.d/"))
        http_includes = "\n".join(f"    include {self.path(path)};" for path in conf_d)
        self.path(layout.NGINX_LOG_DIR).mkdir(parents=True, exist_ok=True)
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        conf = work / "nginx.conf"
        conf.write_text(
            f"{user}worker_processes 1;\npid {work}/nginx.pid;\nerror_log {self.nginx_log} info;\n"
            "events { worker_connections 768; }\n"  # as Debian's and Ubuntu's nginx.conf
            "http {\n"
            f"    access_log {self.logs}/nginx-access.log;\n"
            f"    client_body_temp_path {work}/client_body;\n    proxy_temp_path {work}/proxy;\n"
            f"    fastcgi_temp_path {work}/fastcgi;\n    uwsgi_temp_path {work}/uwsgi;\n"
            f"    scgi_temp_path {work}/scgi;\n"
            f"{http_includes}\n{includes}\n}}\n"
        )
        return conf

    def nginx_command(self, conf: Path, *extra: str) -> list[str]:
        nginx = shutil.which("nginx") or "nginx"
        return [nginx, "-p", str(conf.parent), "-c", str(conf), "-e", str(self.nginx_log), *extra]

    def start_nginx(self, sites: list[str] | None = None) -> None:
        conf = self.nginx_config(sites)
        with (self.logs / "nginx-stdout.log").open("ab") as log:
            self.nginx = subprocess.Popen(self.nginx_command(conf, "-g", "daemon off;"), stdout=log,
                                          stderr=log)
        process = self.nginx
        _wait_http(f"{self.tracking_uri}/health", time.monotonic() + STARTUP_TIMEOUT_SECONDS,
                   alive=lambda: process.poll() is None, what="nginx")

    def stop_nginx(self) -> None:
        _stop_process(self.nginx, group=False)
        self.nginx = None

    def close_steps(self) -> tuple[Callable[[], None], ...]:
        """What close() stops, in order: every server this stack started."""
        return (self.stop_nginx, self.stop_mlflow, self.stop_postgres, self.moto.stop, self.stop_instance_metadata)

    def close(self) -> None:
        errors = []
        steps = self.close_steps()
        for step in steps:
            try:
                step()
            except Exception as error:
                errors.append(error)
        if os.environ.get("MLFLOW_AWS_KEEP_LOOPBACK") != "1":
            shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise errors[0]
