"""The host's Ubuntu packages: installed by our own step, waiting on apt's lock and retried with the services.

cloud-init's `packages:` module gives up after 30 s when apt's lock is held, which Ubuntu's own apt timers
(apt-daily, unattended-upgrades) often do in a new instance's first minutes; nothing retries it, so the host
would never get nginx. mlflow-packages (templates/host/mlflow-packages.sh) passes DPkg::Lock::Timeout to
every apt call, bounds each attempt, and is run by the user data first and again before every start of
mlflow.service and mlflow-certificate.service, so an install that met an outage completes later by itself.
Once the packages are in, it puts nginx's MLflow site in place (what needs nginx installed) and records
that it is done.
"""

from __future__ import annotations

import shlex

from userdata import layout, pins
from userdata.settings import HostSettings
from userdata.template import fill

# apt waits this long for the lock on each call; a first boot's unattended upgrade can take minutes.
LOCK_TIMEOUT_SECONDS = 600
ATTEMPTS = 3
ATTEMPT_TIMEOUT_SECONDS = LOCK_TIMEOUT_SECONDS + 300  # the wait, then the download and install
RETRY_DELAY_SECONDS = 15
# Each attempt runs apt twice (update, install).
MAX_SECONDS = ATTEMPTS * 2 * ATTEMPT_TIMEOUT_SECONDS + sum(n * RETRY_DELAY_SECONDS for n in range(1, ATTEMPTS))


def site_setup(s: HostSettings) -> list[str]:
    """nginx's MLflow site, once nginx is installed: the plain-HTTP (or load balancer) site, or with TLS the
    pending site until a certificate exists (a restored or issued one switches nginx to HTTPS)."""
    remove_default = f"rm -f {layout.NGINX_DEFAULT_SITE_ENABLED}"
    if s.tls == "off":
        return [
            remove_default,
            f"ln -sfn {layout.NGINX_HTTP_SITE} {layout.NGINX_HTTP_SITE_ENABLED}",
            "nginx -t -q",
            f"systemctl reload-or-restart {layout.NGINX_UNIT_NAME}",
        ]
    return [remove_default, f"[[ -L {layout.NGINX_HTTP_SITE_ENABLED} ]] || {layout.TLS_SITE_SWITCH} pending"]


def ubuntu_packages(s: HostSettings) -> tuple[str, ...]:
    """nginx and venv's, and gpg with monitoring (the CloudWatch agent's package is checked by its signature)."""
    return (*pins.UBUNTU_PACKAGES, *(pins.MONITORING_PACKAGES if s.monitoring else ()))


def packages_script(s: HostSettings) -> str:
    return fill(
        "mlflow-packages.sh",
        marker=layout.PACKAGES_MARKER,
        packages=" ".join(shlex.quote(package) for package in ubuntu_packages(s)),
        lock_timeout_seconds=str(LOCK_TIMEOUT_SECONDS),
        attempts=str(ATTEMPTS),
        attempt_timeout_seconds=str(ATTEMPT_TIMEOUT_SECONDS),
        retry_delay_seconds=str(RETRY_DELAY_SECONDS),
        site_setup="\n".join(site_setup(s)),
    )
