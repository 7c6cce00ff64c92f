#!/bin/bash
# Obtains the Let's Encrypt certificate for {{hostname}}; mlflow-certificate.timer runs this until one
# exists. Each run makes at most {{attempts}} attempts, waiting longer before each; consecutive failed runs
# back off exponentially, so a name that cannot validate yet (DNS not pointing here, port 80 closed)
# does not use up Let's Encrypt's failed-validation limits. A certificate saved in SSM by an earlier
# host for the same name is restored first, so a replaced host places no new order. Renewal is
# mlflow-certificate-renewal.timer's job.
set -uo pipefail

readonly CERTIFICATE={{certificate}}
readonly ENABLED_SITE={{enabled_site}}
readonly PENDING_SITE={{pending_site}}
readonly HTTPS_SITE={{https_site}}
readonly STATE={{state_file}}
readonly ATTEMPT_DELAYS=({{attempt_delays}})
readonly RUN_BACKOFF_SECONDS={{run_backoff_seconds}}
readonly MAX_RUN_BACKOFF_SECONDS={{max_run_backoff_seconds}}

log() { echo "mlflow-certificate: $*"; }

# With the certificate in place and nginx serving it, this script has nothing left to do: stop the
# retries. A switch nginx refuses leaves the timer on, so the next run tries the switch again.
finish() {
  if [[ $(readlink "$ENABLED_SITE") != "$HTTPS_SITE" ]] && ! {{site_switch}} https; then
    log "the certificate exists but nginx refuses the https site; the timer tries again"
    exit 1
  fi
  systemctl disable --now mlflow-certificate.timer
  exit 0
}

request_certificate() {
  timeout {{certbot_timeout_seconds}} {{certbot}} certonly --non-interactive --agree-tos {{account}} \
    --server {{directory}} \
    --cert-name {{hostname}} {{identifier}} \
    {{authenticator}} \
    --deploy-hook {{deploy_hook}} \
    {{certbot_directories}}
}

if [[ -s $CERTIFICATE ]]; then
  log "the certificate for {{hostname}} exists"
  finish
fi
[[ $(readlink "$ENABLED_SITE") == "$PENDING_SITE" ]] || {{site_switch}} pending || exit 1

# Errors reading SSM are reported and end in a new order, never in no certificate.
if {{state_script}} restore && [[ -s $CERTIFICATE ]]; then
  log "restored the saved certificate for {{hostname}}"
  finish
fi
{{address_wait}}

failed_runs=0
last_failure=0
if [[ -r $STATE ]]; then read -r failed_runs last_failure < "$STATE" || true; fi
if ! [[ $failed_runs =~ ^[0-9]+$ && $last_failure =~ ^[0-9]+$ ]]; then
  log "ignoring unreadable retry state in $STATE"
  failed_runs=0
  last_failure=0
fi
if (( failed_runs > 0 )); then
  backoff=$MAX_RUN_BACKOFF_SECONDS
  if (( failed_runs <= 16 && RUN_BACKOFF_SECONDS << (failed_runs - 1) < backoff )); then
    backoff=$(( RUN_BACKOFF_SECONDS << (failed_runs - 1) ))
  fi
  next_run=$(( last_failure + backoff ))
  if (( $(date +%s) < next_run )); then
    log "backing off after $failed_runs failed run(s); next attempt at or after $(date -u -d "@$next_run" +%FT%TZ)"
    exit 0
  fi
fi

attempt=0
for delay in 0 "${ATTEMPT_DELAYS[@]}"; do
  attempt=$(( attempt + 1 ))
  if (( delay > 0 )); then
    log "waiting ${delay}s before attempt $attempt"
    sleep "$delay"
  fi
  log "attempt $attempt of {{attempts}}: requesting a certificate for {{hostname}} from {{directory}}"
  if request_certificate; then
    rm -f "$STATE"
    log "certificate issued for {{hostname}}"
    finish  # the deploy hook has switched nginx to HTTPS; finish does it if the hook could not
  fi
  log "attempt $attempt failed; certbot's log: /var/log/letsencrypt/letsencrypt.log"
done

mkdir -p "$(dirname "$STATE")"
echo "$(( failed_runs + 1 )) $(date +%s)" > "$STATE"
log "no certificate after $attempt attempts (failed run $(( failed_runs + 1 ))); the timer retries"
exit 1
