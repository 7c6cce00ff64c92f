#!/bin/bash
# Installs the pinned MLflow server into its venv with uv. mlflow.service runs it (as root) before
# every start, so a first boot that met a PyPI or network outage keeps retrying with the service
# instead of leaving a host without a server; once the venv holds these exact requirements, it
# returns at once. No bytecode is compiled here: mlflow.service caches the bytecode of what it
# imports in PYTHONPYCACHEPREFIX, a fraction of the ~8,600 modules the venv holds
# (bench/RESULTS.md: install time).
set -euo pipefail
# The unit's UMask (0077), HOME and bytecode cache are the server's: the venv must be readable by the
# mlflow user, and root's pip and uv must leave no files of theirs in the server's directories.
umask 022
export HOME=/root
unset PYTHONPYCACHEPREFIX

venv={{venv_dir}}
uv_dir={{uv_dir}}
marker=$venv/{{marker_name}}
export UV_CACHE_DIR={{uv_cache_dir}}
export UV_PYTHON_DOWNLOADS=never
requirements=({{requirements}})
resolution=({{resolution}})
# The server guard (MLflow's --app-name): its source, written by the user data, is part of what the
# venv must hold, so a changed guard reinstalls.
guard={{guard_dir}}
wanted="${requirements[*]} ${resolution[*]} {{guard_distribution}} sha256:{{guard_digest}}"

if [[ -r $marker && $(<"$marker") == "$wanted" ]]; then
  exit 0
fi

attempt() {
  # Package indexes have bad minutes; {{attempts}} tries, each bounded, before the service tries again.
  local try
  for ((try = 1; try <= {{attempts}}; try++)); do
    if timeout {{attempt_timeout_seconds}} "$@"; then return 0; fi
    echo "mlflow-install: attempt $try of {{attempts}} failed: $*" >&2
    ((try == {{attempts}})) || sleep $((try * {{retry_delay_seconds}}))
  done
  return 1
}

echo "mlflow-install: installing ${requirements[*]} into $venv"
exec 9>"$uv_dir.lock"
flock 9  # the TLS units' install script bootstraps the same uv
if [[ ! -x $uv_dir/bin/uv ]]; then
  /usr/bin/python3 -m venv "$uv_dir"
  attempt "$uv_dir/bin/pip" install --quiet --disable-pip-version-check "uv=={{uv_version}}"
fi
flock -u 9
[[ -x $venv/bin/python ]] || "$uv_dir/bin/uv" venv --quiet --python /usr/bin/python3 "$venv"
attempt "$uv_dir/bin/uv" pip install --quiet --python "$venv/bin/python" "${resolution[@]}" "${requirements[@]}" \
  --reinstall-package {{guard_distribution}} "$guard"
# Written last: a venv that is not complete never passes for installed.
echo "$wanted" > "$marker"
echo "mlflow-install: installed ${requirements[*]} into $venv"
