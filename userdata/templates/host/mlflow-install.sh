#!/bin/bash
# Installs the pinned MLflow server into its venv with uv. Safe to run again. No bytecode is compiled
# here: mlflow.service caches the bytecode of what it imports in PYTHONPYCACHEPREFIX, a fraction of the
# ~8,600 modules the venv holds (bench/RESULTS.md: install time).
set -euo pipefail

venv={{venv_dir}}
uv_dir={{uv_dir}}
export UV_CACHE_DIR={{uv_cache_dir}}
export UV_PYTHON_DOWNLOADS=never
requirements=({{requirements}})

attempt() {
  # Package indexes have bad minutes; three tries, each bounded, before giving up.
  local try
  for try in 1 2 3; do
    if timeout 900 "$@"; then return 0; fi
    echo "mlflow-install: attempt $try of 3 failed: $*" >&2
    [[ $try == 3 ]] || sleep $((try * 10))
  done
  return 1
}

if [[ ! -x $uv_dir/bin/uv ]]; then
  /usr/bin/python3 -m venv "$uv_dir"
  attempt "$uv_dir/bin/pip" install --quiet --disable-pip-version-check "uv=={{uv_version}}"
fi
[[ -x $venv/bin/python ]] || "$uv_dir/bin/uv" venv --quiet --python /usr/bin/python3 "$venv"
attempt "$uv_dir/bin/uv" pip install --quiet --python "$venv/bin/python" "${requirements[@]}"
echo "mlflow-install: installed ${requirements[*]} into $venv"
