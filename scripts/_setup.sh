# shellcheck shell=bash
# Shared by scripts/deploy and scripts/destroy (sourced, not run): everything a fresh machine needs
# before a `pulumi` command can run against a stack. Each step says what it does.

# Pinned tool versions; override from the environment, e.g. PULUMI_VERSION=3.280.0 ./scripts/deploy
PULUMI_VERSION="${PULUMI_VERSION:-3.272.0}"  # the Pulumi CLI; matches the pulumi SDK the tests run
# The oldest CLI accepted on PATH: the first engine that honours the `replacement_trigger` resource option
# (3.208.0, pulumi/pulumi#20936). An older one ignores it, and a t3 -> t4g change then fails in place.
PULUMI_MIN_VERSION="3.208.0"
UV_VERSION="${UV_VERSION:-0.13.9}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="$REPO_ROOT/.pulumi-state"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_python() {
  command -v python3 >/dev/null 2>&1 || die "python3 not found; install Python 3.10 or newer (e.g. apt-get install python3)"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "python3 is $(python3 -V 2>&1 | cut -d' ' -f2); this project needs 3.10 or newer"
}

require_uv() {
  export PATH="$HOME/.local/bin:$PATH"
  command -v uv >/dev/null 2>&1 && return
  command -v curl >/dev/null 2>&1 || die "uv is missing and so is curl to install it; install uv: https://docs.astral.sh/uv/"
  say "installing uv $UV_VERSION into ~/.local/bin (official installer; your shell profile is left alone)"
  curl -LsSf "https://astral.sh/uv/$UV_VERSION/install.sh" | env UV_NO_MODIFY_PATH=1 sh >/dev/null
  command -v uv >/dev/null 2>&1 || die "uv installation failed"
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
  command -v curl >/dev/null 2>&1 || die "the Pulumi CLI is missing and so is curl to install it: https://www.pulumi.com/docs/install/"
  say "installing the Pulumi CLI $PULUMI_VERSION into ~/.pulumi/bin (official installer; add it to your PATH to use pulumi directly)"
  curl -fsSL https://get.pulumi.com | sh -s -- --version "$PULUMI_VERSION" --no-edit-path >/dev/null
  command -v pulumi >/dev/null 2>&1 || die "Pulumi CLI installation failed"
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
    die "PULUMI_CONFIG_PASSPHRASE is not set. It encrypts the secrets in stack '$stack''s state; \
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

# Runs the same credential chain the Pulumi AWS provider uses, before anything is planned.
require_aws_credentials() {
  local region
  region="$(pulumi config get aws:region 2>/dev/null)" \
    || die "aws:region is not set for this stack; fix: pulumi config set aws:region eu-west-1"
  "$REPO_ROOT/.venv/bin/python" - "$region" <<'PY' || exit 1
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError

region = sys.argv[1]
try:
    identity = boto3.client("sts", region_name=region).get_caller_identity()
except (BotoCoreError, ClientError) as error:
    sys.exit(
        f"error: AWS credentials do not work ({error}).\n"
        "Give this shell credentials first, e.g. `aws configure`, `aws sso login --profile NAME` "
        "then `export AWS_PROFILE=NAME`, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."
    )
print(f"==> AWS account {identity['Account']} as {identity['Arn']}, region {region}", file=sys.stderr)
PY
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
