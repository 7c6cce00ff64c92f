#!/bin/bash
# The pinned certbot, and boto3 for its SSM state, in their own venv with mlflow-install's uv. Run
# before each certificate unit start: a PyPI outage is retried with them; once complete, a no-op.
set -euo pipefail
umask 022
export HOME=/root UV_CACHE_DIR={{uv_cache_dir}} UV_PYTHON_DOWNLOADS=never
venv={{venv_dir}} uv={{uv_dir}}
requirements=({{requirements}} {{resolution}})
[[ -r $venv/.installed && $(<"$venv/.installed") == "${requirements[*]}" ]] && exit 0
attempt() {
  local try
  for ((try = 1; try <= {{attempts}}; try++)); do
    timeout {{attempt_timeout_seconds}} "$@" && return 0
    echo "certbot-install: attempt $try of {{attempts}} failed: $*" >&2
    ((try == {{attempts}})) || sleep $((try * {{retry_delay_seconds}}))
  done
  return 1
}
exec 9>"$uv.lock"
flock 9  # mlflow-install may be bootstrapping the same uv
[[ -x $uv/bin/uv ]] || { /usr/bin/python3 -m venv "$uv" && attempt "$uv/bin/pip" install -q "uv=={{uv_version}}"; }
flock -u 9
[[ -x $venv/bin/python ]] || "$uv/bin/uv" venv -q --python /usr/bin/python3 "$venv"
attempt "$uv/bin/uv" pip install -q --python "$venv/bin/python" "${requirements[@]}"
echo "${requirements[*]}" > "$venv/.installed"
