#!/bin/bash
# Installs the Amazon CloudWatch agent, the release pinned in userdata/pins.py, from AWS's own bucket
# in {{region}}, and starts it with the stack's configuration: the journal of mlflow.service, nginx and
# the certificate units and nginx's JSON access log into the stack's log groups, memory, disk and CPU
# into its namespace. The package's signature must be made by AWS's published key, whose fingerprint is
# pinned here (AWS's "Verifying the signature of the CloudWatch agent package"); anything else is
# refused and the unit fails, visibly. mlflow-cloudwatch-agent.timer runs this; MLflow never waits for
# it. A download that does not succeed (no route to S3, an S3 outage) is a temporary failure: one journal
# line, exit {{tempfail}} (which the unit counts as success), and the next run waits longer each time.
set -uo pipefail

readonly STATE={{state_file}}
readonly INSTALLED={{installed_marker}}
readonly RUN_BACKOFF_SECONDS={{run_backoff_seconds}}
readonly MAX_RUN_BACKOFF_SECONDS={{max_run_backoff_seconds}}
readonly FINGERPRINT={{fingerprint}}
readonly CONFIG={{config_file}}
readonly CTL=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl

log() { echo "mlflow-cloudwatch-agent: $*"; }

# The release and the configuration the running agent was started with: nothing to do.
wanted="{{release}} $(sha256sum "$CONFIG" | cut -d' ' -f1)"
if [[ -r $INSTALLED && $(<"$INSTALLED") == "$wanted" ]]; then
  systemctl disable --now mlflow-cloudwatch-agent.timer
  exit 0
fi

failed_runs=0
last_failure=0
if [[ -r $STATE ]]; then read -r failed_runs last_failure < "$STATE" || true; fi
[[ $failed_runs =~ ^[0-9]+$ && $last_failure =~ ^[0-9]+$ ]] || { failed_runs=0; last_failure=0; }
if (( failed_runs > 0 )); then
  backoff=$MAX_RUN_BACKOFF_SECONDS
  if (( failed_runs <= 16 && RUN_BACKOFF_SECONDS << (failed_runs - 1) < backoff )); then
    backoff=$(( RUN_BACKOFF_SECONDS << (failed_runs - 1) ))
  fi
  (( $(date +%s) >= last_failure + backoff )) || exit 0  # backing off, silently
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
base={{download_base}}/ubuntu/$(dpkg --print-architecture)/{{release}}
download() {
  curl --fail --silent --show-error --location --proto =https --tlsv1.2 --retry 2 --connect-timeout 10 \
    --max-time {{download_timeout_seconds}} -o "$work/$2" "$1"
}
if ! { download {{download_base}}/assets/amazon-cloudwatch-agent.gpg key.gpg \
       && download "$base/amazon-cloudwatch-agent.deb.sig" agent.deb.sig \
       && download "$base/amazon-cloudwatch-agent.deb" agent.deb; } 2>"$work/curl.err"; then
  mkdir -p "$(dirname "$STATE")"
  echo "$(( failed_runs + 1 )) $(date +%s)" > "$STATE"
  log "download failed (run $(( failed_runs + 1 ))), retried later: $(head -c 300 "$work/curl.err")"
  exit {{tempfail}}
fi

export GNUPGHOME=$work/gnupg
install -d -m 0700 "$GNUPGHOME"
gpg --batch --quiet --import "$work/key.gpg" 2>/dev/null
# VALIDSIG names the primary key's fingerprint last: the signature must be the pinned key's.
if ! gpg --batch --status-fd 1 --verify "$work/agent.deb.sig" "$work/agent.deb" 2>/dev/null \
    | grep -Eq "^\[GNUPG:\] VALIDSIG .* $FINGERPRINT\$"; then
  log "REFUSED: the package's signature is not made by AWS's key $FINGERPRINT; not installed"
  exit 1
fi
version=$(dpkg-deb --field "$work/agent.deb" Version)
if [[ $version != {{release}}* ]]; then
  log "REFUSED: the signed package is release $version, not the pinned {{release}}; not installed"
  exit 1
fi
dpkg -i "$work/agent.deb" >/dev/null || { log "dpkg could not install $version"; exit 1; }
# The agent runs as cwagent: it reads nginx's logs (group adm) and the journal (systemd-journal).
usermod -a -G adm,systemd-journal cwagent
# nginx's master (root) created the JSON log at its first start; logrotate makes later ones www-data:adm.
chown www-data:adm {{access_log}}
"$CTL" -a fetch-config -m ec2 -s -c "file:$CONFIG" >/dev/null || { log "the agent refused $CONFIG"; exit 1; }
rm -f "$STATE"
echo "$wanted" > "$INSTALLED"
log "CloudWatch agent $version installed and started with $CONFIG"
systemctl disable --now mlflow-cloudwatch-agent.timer
