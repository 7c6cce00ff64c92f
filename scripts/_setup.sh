# shellcheck shell=bash
# Shared by scripts/deploy and scripts/destroy (sourced, not run): everything a fresh machine needs
# before a `pulumi` command can run against a stack. Each step says what it does.

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "scripts/_setup.sh is not run by itself: scripts/deploy and scripts/destroy source it (see their --help)." >&2
  case "${1:-}" in -h | --help) exit 0 ;; *) exit 2 ;; esac
fi

# Pinned tool versions; override from the environment, e.g. PULUMI_VERSION=3.280.0 ./scripts/deploy
PULUMI_VERSION="${PULUMI_VERSION:-3.272.0}"  # the Pulumi CLI; matches the pulumi SDK the tests run
# The oldest CLI accepted on PATH: the first engine that honours the `replacement_trigger` resource option
# (3.208.0, pulumi/pulumi#20936). An older one ignores it, and a t3 -> t4g change then fails in place.
# __main__.py's MIN_PULUMI_ENGINE is the same version (tests/unit/test_program.py holds them equal).
PULUMI_MIN_VERSION="3.208.0"
UV_VERSION="${UV_VERSION:-0.13.9}"

# Every download is bounded: a firewall that drops packets fails the connection after
# DOWNLOAD_CONNECT_TIMEOUT seconds, and no download runs longer than DOWNLOAD_MAX_TIME. The installers'
# own downloads get the same bounds through a curl config file (see installer_curl_home).
DOWNLOAD_CONNECT_TIMEOUT=20
DOWNLOAD_MAX_TIME=600

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="$REPO_ROOT/.pulumi-state"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_python() {
  command -v python3 >/dev/null 2>&1 || die "python3 not found; install Python 3.10 or newer (e.g. apt-get install python3)"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "python3 is $(python3 -V 2>&1 | cut -d' ' -f2); this project needs 3.10 or newer"
}

# A private directory for the installers, removed when the script ends. Called directly (never inside
# $(...), whose subshell would remove it at once).
DOWNLOAD_DIR=""
make_download_dir() {
  [ -z "$DOWNLOAD_DIR" ] || return 0
  DOWNLOAD_DIR="$(mktemp -d "${TMPDIR:-/tmp}/mlflow-aws-setup.XXXXXX")"
  trap 'rm -rf "$DOWNLOAD_DIR"' EXIT
}

# The advice for a download that failed: the proxy variables curl honours. Printed with what failed and
# from where, and the other way to install it (the caller's).
proxy_advice() {
  cat <<ADVICE
  - Through a proxy: curl honours HTTPS_PROXY (or https_proxy) and ALL_PROXY, and skips the hosts listed in
    NO_PROXY; set the one your network needs and run this script again, e.g.
      export HTTPS_PROXY=http://proxy.example.com:3128
ADVICE
}

# Why curl failed, in words, from its exit status (curl's man page, EXIT CODES).
curl_failure() {
  case "$1" in
    5) echo "the proxy's name does not resolve: check HTTPS_PROXY / ALL_PROXY" ;;
    6) echo "the host's name does not resolve: no DNS for it from this machine (offline, or only a proxy reaches out)" ;;
    7) echo "the connection was refused or there is no route to the host" ;;
    28) echo "no answer within the time limit (connect ${DOWNLOAD_CONNECT_TIMEOUT} s, whole download ${DOWNLOAD_MAX_TIME} s): a firewall that drops the connection?" ;;
    35 | 60) echo "the TLS connection failed: a proxy that intercepts TLS needs its CA in the system's trust store" ;;
    22) echo "the server answered with an HTTP error" ;;
    56) echo "the connection broke off, or a proxy refused the tunnel" ;;
    *) echo "curl exited with status $1" ;;
  esac
}

# download URL FILE: fetch URL into FILE with bounded timeouts. On failure prints, after "could not
# download", curl's own message and the reason in words, and returns 1.
download() {
  local url="$1" file="$2" output status=0
  output="$(curl --fail --silent --show-error --location --proto '=https' --tlsv1.2 \
    --connect-timeout "$DOWNLOAD_CONNECT_TIMEOUT" --max-time "$DOWNLOAD_MAX_TIME" \
    --output "$file" "$url" 2>&1)" || status=$?
  [ "$status" -eq 0 ] && return 0
  printf '%s\n  %s\n  (%s)\n' "$url" "${output:-curl: exit status $status}" "$(curl_failure "$status")"
  return 1
}

# A curl config file for the installers' own downloads: the user's own .curlrc (proxy settings, CA files),
# then our bounds. curl reads $CURL_HOME/.curlrc before any other (curl(1), "-K, --config"), and the uv and
# Pulumi installers run curl without -q/--disable, so they read it. Prints the directory for CURL_HOME.
installer_curl_home() {
  local home="$DOWNLOAD_DIR/curl-home" own
  mkdir -p "$home"
  : >"$home/.curlrc"
  for own in "${CURL_HOME:+$CURL_HOME/.curlrc}" "${XDG_CONFIG_HOME:+$XDG_CONFIG_HOME/.curlrc}" "$HOME/.curlrc"; do
    if [ -n "$own" ] && [ -f "$own" ]; then
      cat "$own" >"$home/.curlrc"
      break
    fi
  done
  printf '\nconnect-timeout = %s\nmax-time = %s\n' "$DOWNLOAD_CONNECT_TIMEOUT" "$DOWNLOAD_MAX_TIME" >>"$home/.curlrc"
  printf '%s\n' "$home"
}

uv_alternative() {
  cat <<ADVICE
  - From the Python package index instead (pip honours PIP_INDEX_URL and the same proxy variables):
      python3 -m pip install --user uv==$UV_VERSION    # into ~/.local/bin, which these scripts put on PATH
    where pip refuses with "externally-managed-environment": pipx install uv==$UV_VERSION
ADVICE
}

require_uv() {
  export PATH="$HOME/.local/bin:$PATH"
  command -v uv >/dev/null 2>&1 && return
  local url="https://astral.sh/uv/$UV_VERSION/install.sh" installer failure
  command -v curl >/dev/null 2>&1 || die "uv is missing and so is curl to install it. Install uv yourself:
$(uv_alternative)"
  say "installing uv $UV_VERSION into ~/.local/bin (official installer; your shell profile is left alone)"
  make_download_dir
  installer="$DOWNLOAD_DIR/uv-install.sh"
  if ! failure="$(download "$url" "$installer")"; then
    die "could not download uv's installer from $failure
Two ways around it:
$(proxy_advice)
$(uv_alternative)"
  fi
  if ! env UV_NO_MODIFY_PATH=1 CURL_HOME="$(installer_curl_home)" sh "$installer" >/dev/null \
    || ! command -v uv >/dev/null 2>&1; then
    die "uv's installer (from $url) failed: it downloads uv $UV_VERSION from
https://github.com/astral-sh/uv/releases/download/$UV_VERSION/ (its own message is above).
Two ways around it:
$(proxy_advice)
$(uv_alternative)"
  fi
}

install_project() {
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv (the Pulumi program runs in it: Pulumi.yaml, runtime.options.virtualenv)"
    uv venv --quiet --python python3 .venv
  fi
  say "installing the project into .venv"
  # pip too: Pulumi's pip toolchain finds the provider plugins with `python -m pip list`, and `uv venv`
  # creates a venv without pip.
  uv pip install --quiet --python .venv/bin/python -e . pip
}

# Whether version $1 (as `pulumi version` prints it, e.g. v3.272.0) is at least PULUMI_MIN_VERSION.
pulumi_new_enough() {
  local have="${1#v}"
  [ -n "$have" ] || return 1
  [ "$(printf '%s\n%s\n' "$PULUMI_MIN_VERSION" "$have" | sort -V | head -n 1)" = "$PULUMI_MIN_VERSION" ]
}

# The Pulumi CLI's release archive for this machine, as github.com/pulumi/pulumi/releases names them.
pulumi_archive() {
  local os arch
  case "$(uname -s)" in Darwin) os=darwin ;; *) os=linux ;; esac
  case "$(uname -m)" in arm64 | aarch64) arch=arm64 ;; *) arch=x64 ;; esac
  printf 'pulumi-v%s-%s-%s.tar.gz\n' "$PULUMI_VERSION" "$os" "$arch"
}

pulumi_alternative() {
  local archive
  archive="$(pulumi_archive)"
  cat <<ADVICE
  - By hand: any Pulumi CLI from $PULUMI_MIN_VERSION up works. Download $archive from
    https://github.com/pulumi/pulumi/releases/tag/v$PULUMI_VERSION (or https://get.pulumi.com/releases/sdk/$archive)
    wherever you can, copy it here, and unpack the programs of its pulumi/ directory into ~/.pulumi/bin,
    which these scripts put first on PATH:
      mkdir -p ~/.pulumi/bin && tar -xzf $archive -C ~/.pulumi/bin --strip-components=1
    (or install it with your package manager, e.g. brew install pulumi/tap/pulumi)
ADVICE
}

require_pulumi() {
  export PATH="$HOME/.pulumi/bin:$PATH"
  if command -v pulumi >/dev/null 2>&1; then
    local have
    have="$(pulumi version 2>/dev/null || true)"
    pulumi_new_enough "$have" || die "the Pulumi CLI on PATH ($(command -v pulumi)) is ${have:-of unknown version}; \
this project needs $PULUMI_MIN_VERSION or newer, whose engine replaces the host when instanceType changes CPU \
architecture. Upgrade it (into ~/.pulumi/bin, which these scripts put first on PATH):
  curl -fsSL https://get.pulumi.com | sh -s -- --version $PULUMI_VERSION --no-edit-path"
    return
  fi
  local url="https://get.pulumi.com" installer failure
  command -v curl >/dev/null 2>&1 || die "the Pulumi CLI is missing and so is curl to install it. Install it yourself:
$(pulumi_alternative)"
  say "installing the Pulumi CLI $PULUMI_VERSION into ~/.pulumi/bin (official installer; add it to your PATH to use pulumi directly)"
  make_download_dir
  installer="$DOWNLOAD_DIR/pulumi-install.sh"
  if ! failure="$(download "$url" "$installer")"; then
    die "could not download the Pulumi CLI's installer from $failure
Two ways around it:
$(proxy_advice)
$(pulumi_alternative)"
  fi
  if ! env CURL_HOME="$(installer_curl_home)" sh "$installer" --version "$PULUMI_VERSION" --no-edit-path >/dev/null \
    || ! command -v pulumi >/dev/null 2>&1; then
    die "the Pulumi CLI's installer (from $url) failed: it downloads $(pulumi_archive) from
https://github.com/pulumi/pulumi/releases or https://get.pulumi.com/releases/sdk/ (its own message is above).
Two ways around it:
$(proxy_advice)
$(pulumi_alternative)"
  fi
}

use_backend() {
  if [ -n "${PULUMI_BACKEND_URL:-}" ]; then
    say "state backend: $PULUMI_BACKEND_URL (from PULUMI_BACKEND_URL)"
    return
  fi
  mkdir -p "$STATE_DIR"
  say "state backend: file://$STATE_DIR (set PULUMI_BACKEND_URL to use another, e.g. s3://bucket)"
  pulumi login --non-interactive "file://$STATE_DIR" >/dev/null
}

stack_exists() {
  pulumi stack ls --json 2>/dev/null | python3 -c '
import json, sys
names = {entry["name"].rsplit("/", 1)[-1] for entry in json.load(sys.stdin)}
sys.exit(0 if sys.argv[1] in names else 1)' "$1"
}

# The passphrase encrypts the stack's secrets (the admin password, the DB password) in its state.
# Never stored by this script: from PULUMI_CONFIG_PASSPHRASE(_FILE), or typed at a terminal.
require_passphrase() {
  local stack="$1" is_new="$2" again
  if [ -n "${PULUMI_CONFIG_PASSPHRASE:-}" ] || [ -n "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    return
  fi
  if [ ! -t 0 ]; then
    die "PULUMI_CONFIG_PASSPHRASE is not set. It encrypts the secrets in the state of stack $stack; \
export it (or PULUMI_CONFIG_PASSPHRASE_FILE) and run again. Keep it safe: without it the stack's secrets cannot be read."
  fi
  read -rsp "Passphrase for stack '$stack' (encrypts its secrets; keep it safe): " PULUMI_CONFIG_PASSPHRASE
  echo >&2
  [ -n "$PULUMI_CONFIG_PASSPHRASE" ] || die "an empty passphrase is not accepted"
  if [ "$is_new" = yes ]; then
    read -rsp "Same passphrase again: " again
    echo >&2
    [ "$again" = "$PULUMI_CONFIG_PASSPHRASE" ] || die "the passphrases differ"
  fi
  export PULUMI_CONFIG_PASSPHRASE
}

# Runs the same credential chain the Pulumi AWS provider uses, before anything is planned, and tells a
# network failure (no route, DNS, a proxy, a timeout) from credentials AWS refused (client/aws_check.py).
require_aws_credentials() {
  local region
  region="$(pulumi config get aws:region 2>/dev/null)" \
    || die "aws:region is not set for this stack; fix: pulumi config set aws:region eu-west-1"
  "$REPO_ROOT/.venv/bin/python" -m client.aws_check "$region" || exit 1
}

prepare() {
  local stack="$1" create="$2" is_new=no
  cd "$REPO_ROOT" || exit 1  # pulumi finds Pulumi.yaml from the working directory
  require_python
  require_uv
  install_project
  require_pulumi
  use_backend
  if ! stack_exists "$stack"; then
    [ "$create" = yes ] || die "stack '$stack' does not exist in this backend"
    is_new=yes
  fi
  require_passphrase "$stack" "$is_new"
  if [ "$is_new" = yes ]; then
    say "creating stack $stack (settings from Pulumi.$stack.yaml)"
    pulumi stack select --create "$stack" >/dev/null
  else
    pulumi stack select "$stack" >/dev/null
  fi
  require_aws_credentials
}
