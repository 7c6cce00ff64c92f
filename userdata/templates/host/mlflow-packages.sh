#!/bin/bash
# Installs the host's Ubuntu packages and puts nginx's MLflow site in place, once. The user data runs it
# first at boot, and mlflow.service and mlflow-certificate.service run it again before every start:
# Ubuntu's own apt timers often hold apt's lock in a new instance's first minutes (cloud-init's
# `packages:` gives up on it after 30 s, and nothing retries), and a mirror can fail. So every apt call
# waits for the lock (DPkg::Lock::Timeout), each attempt is bounded, and an install that still fails is
# retried with the services instead of leaving a host without nginx. Once done, it returns at once.
set -euo pipefail

readonly MARKER={{marker}}
readonly PACKAGES=({{packages}})
readonly APT=(apt-get -q -o DPkg::Lock::Timeout={{lock_timeout_seconds}} -o Dpkg::Options::=--force-confold)

[[ -e $MARKER ]] && exit 0
mkdir -p "$(dirname "$MARKER")"
exec 9>"$MARKER.lock"
flock 9  # the services may start it together
[[ -e $MARKER ]] && exit 0

installed() {
  local package
  for package in "${PACKAGES[@]}"; do
    dpkg -s "$package" 2>/dev/null | grep -qx 'Status: install ok installed' || return 1
  done
}

attempt=0
until installed; do
  attempt=$((attempt + 1))
  if ((attempt > {{attempts}})); then
    echo "mlflow-packages: ${PACKAGES[*]} not installed after {{attempts}} attempts; the next service start retries" >&2
    exit 1
  fi
  echo "mlflow-packages: attempt $attempt of {{attempts}}: installing ${PACKAGES[*]}"
  if timeout {{attempt_timeout_seconds}} "${APT[@]}" update \
    && DEBIAN_FRONTEND=noninteractive timeout {{attempt_timeout_seconds}} "${APT[@]}" install -y "${PACKAGES[@]}"; then
    continue
  fi
  echo "mlflow-packages: attempt $attempt failed" >&2
  ((attempt == {{attempts}})) || sleep $((attempt * {{retry_delay_seconds}}))
done
{{site_setup}}
echo "${PACKAGES[*]}" > "$MARKER"
echo "mlflow-packages: ${PACKAGES[*]} installed; nginx has the MLflow site"
