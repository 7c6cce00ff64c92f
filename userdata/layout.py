"""Where things live on the host: paths and the MLflow port that the rendered files share.

The loopback harness (tests/support/loopback.py) maps these same values to a temporary tree and free
ports, so everything the host runs is tested without retyping a path.
"""

from __future__ import annotations

MLFLOW_USER = "mlflow"
MLFLOW_BIND_HOST = "127.0.0.1"
MLFLOW_PORT = 5000

VENV_DIR = "/opt/mlflow/venv"
GUARD_DIR = "/opt/mlflow/server-guard"  # the server guard's source (server_guard/), installed into VENV_DIR
UV_DIR = "/opt/uv"
UV_CACHE_DIR = "/var/cache/uv"
STATE_DIR = "/var/lib/mlflow"
CACHE_DIR = "/var/cache/mlflow"  # mlflow.service's CacheDirectory=
PYCACHE_DIR = f"{CACHE_DIR}/pycache"
CONFIG_DIR = "/etc/mlflow"
ENV_FILE = f"{CONFIG_DIR}/mlflow.env"
AUTH_CONFIG = f"{CONFIG_DIR}/basic_auth.ini"

SBIN_DIR = "/usr/local/sbin"
INSTALL_SCRIPT = f"{SBIN_DIR}/mlflow-install"
INSTALL_MARKER_NAME = ".mlflow-aws-installed"  # in VENV_DIR: the requirements the venv was completed with
CONFIGURE_SCRIPT = f"{SBIN_DIR}/mlflow-configure"
# The host's own programs (host_programs/, userdata/programs.py) and the per-stack settings they read,
# both root's: the server's user may read them, never change them.
HOST_PROGRAMS_DIR = "/usr/local/lib/mlflow-aws"  # holds the package host_programs/, put on sys.path
HOST_SETTINGS_DIR = "/etc/mlflow-aws"
HOST_SETTINGS = f"{HOST_SETTINGS_DIR}/host-settings.json"
CONFIGURE_STATE = f"{STATE_DIR}/configured.json"  # the configure step's record of its last complete run

SYSTEMD_DIR = "/etc/systemd/system"
UNIT_NAME = "mlflow.service"
UNIT_PATH = f"{SYSTEMD_DIR}/{UNIT_NAME}"

NGINX_DIR = "/etc/nginx"
NGINX_UNIT_NAME = "nginx.service"  # the distribution's unit, hardened by a drop-in
NGINX_HARDENING_DROP_IN = f"{SYSTEMD_DIR}/{NGINX_UNIT_NAME}.d/mlflow-aws-hardening.conf"
NGINX_WRITABLE_PATHS = ("/var/log/nginx", "/var/lib/nginx", "/run")
NGINX_UPSTREAM = f"{NGINX_DIR}/conf.d/mlflow-upstream.conf"
NGINX_PROXY_SNIPPET = f"{NGINX_DIR}/snippets/mlflow-proxy.conf"
NGINX_ERRORS_SNIPPET = f"{NGINX_DIR}/snippets/mlflow-errors.conf"  # 502/503/504 answered by nginx
NGINX_HTTP_SITE = f"{NGINX_DIR}/sites-available/mlflow"
NGINX_HTTP_SITE_ENABLED = f"{NGINX_DIR}/sites-enabled/mlflow"
NGINX_DEFAULT_SITE_ENABLED = f"{NGINX_DIR}/sites-enabled/default"
NGINX_UPSTREAM_NAME = "mlflow"  # `proxy_pass http://mlflow` in every site
HTTP_PORT = 80
