"""HTTPS on the host: nginx sites, Let's Encrypt issuance retried until it succeeds, renewal.

`render()` adds what these functions return to the cloud-config; with `tls: off` they add nothing.
Until the certificate exists, port 80 answers only the ACME challenge, `/health` and a 503 that
explains the wait (the "pending" site); `mlflow-tls-site https` then switches nginx to 443, with 80
redirecting. certbot runs that switch as its deploy hook, so renewals (certbot.timer) reload nginx.
"""

from __future__ import annotations

from userdata import layout
from userdata.files import HostFile
from userdata.settings import HostSettings
from userdata.template import TEMPLATES, fill

SITES_AVAILABLE = f"{layout.NGINX_DIR}/sites-available"
PENDING_SITE = f"{SITES_AVAILABLE}/mlflow-pending"
HTTPS_SITE = f"{SITES_AVAILABLE}/mlflow-https"
# The one enabled MLflow site, whichever it is (the plain-HTTP site of `tls: off` uses it too).
ENABLED_SITE = layout.NGINX_HTTP_SITE_ENABLED
SITE_SWITCH = f"{layout.SBIN_DIR}/mlflow-tls-site"
ISSUANCE_SCRIPT = f"{layout.SBIN_DIR}/mlflow-certificate"
ISSUANCE_SERVICE = f"{layout.SYSTEMD_DIR}/mlflow-certificate.service"
ISSUANCE_TIMER = f"{layout.SYSTEMD_DIR}/mlflow-certificate.timer"
ISSUANCE_STATE = "/var/lib/mlflow-certificate/failed-runs"
ACME_WEBROOT = "/var/lib/mlflow-acme"
LETSENCRYPT_DIR = "/etc/letsencrypt"
HTTPS_PORT = 443

TEMPLATE_DIR = TEMPLATES / "tls"

# One issuance run: an immediate attempt, then one after each delay; each certbot call is bounded.
ATTEMPT_DELAYS_SECONDS = (30, 120)
CERTBOT_TIMEOUT_SECONDS = 300
# Between runs: the timer fires this long after the last run ended; failed runs double the wait.
RETRY_INTERVAL_SECONDS = 900
MAX_RUN_BACKOFF_SECONDS = 6 * 3600


def certificate_path(s: HostSettings) -> str:
    return f"{LETSENCRYPT_DIR}/live/{s.public_hostname}/fullchain.pem"


def private_key_path(s: HostSettings) -> str:
    return f"{LETSENCRYPT_DIR}/live/{s.public_hostname}/privkey.pem"


def tls_packages(s: HostSettings) -> list[str]:
    if s.tls == "off":
        return []
    if s.acme_dns_route53:
        return ["certbot", "python3-certbot-dns-route53"]
    return ["certbot"]


def tls_files(s: HostSettings) -> list[HostFile]:
    if s.tls == "off":
        return []
    attempts = 1 + len(ATTEMPT_DELAYS_SECONDS)
    run_timeout = sum(ATTEMPT_DELAYS_SECONDS) + attempts * CERTBOT_TIMEOUT_SECONDS + 60
    service = _fill(
        "mlflow-certificate.service", hostname=s.public_hostname, issuance_script=ISSUANCE_SCRIPT,
        run_timeout_seconds=str(run_timeout),
    )
    timer = _fill(
        "mlflow-certificate.timer", hostname=s.public_hostname,
        retry_interval_seconds=str(RETRY_INTERVAL_SECONDS),
    )
    site_switch = _fill(
        "mlflow-tls-site.sh", site_switch=SITE_SWITCH, enabled_site=ENABLED_SITE,
        sites_available=SITES_AVAILABLE,
    )
    # Written after the packages: nginx's directories exist then, and an incomplete site never
    # meets the nginx package's first start.
    return [
        HostFile(PENDING_SITE, pending_site(s), defer=True),
        HostFile(HTTPS_SITE, https_site(s), defer=True),
        HostFile(SITE_SWITCH, site_switch, permissions="0755", defer=True),
        HostFile(ISSUANCE_SCRIPT, issuance_script(s), permissions="0755", defer=True),
        HostFile(ISSUANCE_SERVICE, service, defer=True),
        HostFile(ISSUANCE_TIMER, timer, defer=True),
    ]


def pending_site(s: HostSettings) -> str:
    return _fill(
        "nginx-pending.conf", hostname=s.public_hostname, http_port=str(layout.HTTP_PORT),
        acme_challenge=_acme_challenge_location(s), upstream=layout.NGINX_UPSTREAM_NAME,
        errors_snippet=layout.NGINX_ERRORS_SNIPPET,
    )


def https_site(s: HostSettings) -> str:
    return _fill(
        "nginx-https.conf", hostname=s.public_hostname, http_port=str(layout.HTTP_PORT),
        https_port=str(HTTPS_PORT), acme_challenge=_acme_challenge_location(s),
        upstream=layout.NGINX_UPSTREAM_NAME, certificate=certificate_path(s),
        private_key=private_key_path(s), proxy_snippet=layout.NGINX_PROXY_SNIPPET,
        errors_snippet=layout.NGINX_ERRORS_SNIPPET,
    )


def tls_boot_commands(s: HostSettings) -> list[str]:
    if s.tls == "off":
        return []
    commands = [
        f"rm -f {layout.NGINX_DEFAULT_SITE_ENABLED}",
        f"{SITE_SWITCH} pending",
        "systemctl daemon-reload",
        "systemctl enable certbot.timer mlflow-certificate.timer",
        "systemctl start certbot.timer mlflow-certificate.timer",
        # Not waited for: issuance may retry for minutes, and nothing else at boot depends on it.
        "systemctl start --no-block mlflow-certificate.service",
    ]
    if not s.acme_dns_route53:
        commands.insert(0, f"install -d -m 0755 {ACME_WEBROOT}")
    return commands


def certbot_authenticator_args(s: HostSettings) -> str:
    if s.acme_dns_route53:
        # The plugin finds the zone and signs its Route 53 calls with the instance role.
        return "--dns-route53"
    return f"--webroot --webroot-path {ACME_WEBROOT}"


def certbot_account_args(s: HostSettings) -> str:
    if s.acme_email:
        return f"--email {_shell_word(s.acme_email)}"
    return "--register-unsafely-without-email"


def issuance_script(s: HostSettings) -> str:
    return _fill(
        "mlflow-certificate.sh",
        hostname=s.public_hostname,
        directory=s.acme_directory,
        certificate=certificate_path(s),
        enabled_site=ENABLED_SITE,
        pending_site=PENDING_SITE,
        https_site=HTTPS_SITE,
        state_file=ISSUANCE_STATE,
        site_switch=SITE_SWITCH,
        letsencrypt_dir=LETSENCRYPT_DIR,
        account=certbot_account_args(s),
        authenticator=certbot_authenticator_args(s),
        attempts=str(1 + len(ATTEMPT_DELAYS_SECONDS)),
        attempt_delays=" ".join(str(delay) for delay in ATTEMPT_DELAYS_SECONDS),
        certbot_timeout_seconds=str(CERTBOT_TIMEOUT_SECONDS),
        run_backoff_seconds=str(RETRY_INTERVAL_SECONDS),
        max_run_backoff_seconds=str(MAX_RUN_BACKOFF_SECONDS),
    )


def _acme_challenge_location(s: HostSettings) -> str:
    # DNS-01 needs nothing on port 80, and a restricted allowedCidrs may keep Let's Encrypt off it.
    return "" if s.acme_dns_route53 else _fill("acme-challenge.conf", webroot=ACME_WEBROOT)


def _shell_word(value: str) -> str:
    # Config validation keeps emails plain; quoting keeps a surprising one from becoming shell syntax.
    return "'" + value.replace("'", "'\\''") + "'"


def _fill(name: str, **values: str) -> str:
    return fill(name, TEMPLATE_DIR, **values)
