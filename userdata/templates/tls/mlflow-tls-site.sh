#!/bin/bash
# Points nginx at one of the two MLflow sites and reloads it:
#   pending  port 80 only: the ACME challenge, /health, and a 503 explaining the certificate is pending
#   https    port 443 with the certificate; port 80 redirects
# certbot runs `{{site_switch}} https` as its deploy hook, at issuance and after every renewal, so
# nginx always serves the newest certificate. A site nginx rejects is rolled back, never left enabled.
set -euo pipefail

site=${1:-}
case $site in
  pending | https) ;;
  *) echo "usage: mlflow-tls-site pending|https" >&2; exit 2 ;;
esac

enabled={{enabled_site}}
previous=$(readlink "$enabled" || true)
ln -sfn "{{sites_available}}/mlflow-$site" "$enabled"
if ! nginx -t -q; then
  echo "mlflow-tls-site: nginx rejects the $site site; keeping the previous configuration" >&2
  if [[ -n $previous ]]; then ln -sfn "$previous" "$enabled"; else rm -f "$enabled"; fi
  exit 1
fi
systemctl reload-or-restart nginx
echo "mlflow-tls-site: nginx serves the $site site"
