"""HTTPS on the host: nginx sites, Let's Encrypt issuance retried until it succeeds, renewal, and the
certificate's state kept in SSM across host replacements.

`render()` adds what these functions return to the cloud-config; with `tls: off` they add nothing.
certbot comes from PyPI (pins.CERTBOT_VERSION) into its own venv: without `domain` the certificate is
for the Elastic IP itself (`--ip-address`, HTTP-01 through `--webroot`, Let's Encrypt's `shortlived`
profile, about 160 hours), which needs certbot 5.4 or newer. Until the certificate exists, port 80
answers only the ACME challenge, `/health` and a 503 that explains the wait (the "pending" site);
`mlflow-tls-site https` then switches nginx to 443, with 80 redirecting. certbot's deploy hook runs
that switch and saves the account and certificate to SSM after issuance and every renewal
(mlflow-certificate-renewal.timer, hourly); a new host restores them before it orders anything.
"""

from __future__ import annotations

import shlex
from typing import Any

import naming
from host_programs import certificate_state
from userdata import layout, pins, scripts
from userdata.files import HostFile
from userdata.programs import HostProgram
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
SAVED_STATE_MARKER = "/var/lib/mlflow-certificate/saved"  # digest of the state last put to SSM
ACME_WEBROOT = "/var/lib/mlflow-acme"
LETSENCRYPT_DIR = "/etc/letsencrypt"
CERTBOT_WORK_DIR = "/var/lib/letsencrypt"
CERTBOT_LOGS_DIR = "/var/log/letsencrypt"
HTTPS_PORT = 443

CERTBOT_DIR = "/opt/certbot"
CERTBOT_VENV = f"{CERTBOT_DIR}/venv"
CERTBOT = f"{CERTBOT_VENV}/bin/certbot"
CERTBOT_INSTALL_SCRIPT = f"{layout.SBIN_DIR}/mlflow-certbot-install"
STATE_SCRIPT = f"{layout.SBIN_DIR}/mlflow-certificate-state"
RENEWAL_SERVICE = f"{layout.SYSTEMD_DIR}/mlflow-certificate-renewal.service"
RENEWAL_TIMER = f"{layout.SYSTEMD_DIR}/mlflow-certificate-renewal.timer"
# Let's Encrypt issues IP address certificates only in this profile. certbot asks for a preferred
# profile only when the directory lists it, and otherwise orders with the server's default.
IP_CERTIFICATE_PROFILE = "shortlived"

TEMPLATE_DIR = TEMPLATES / "tls"

# One issuance run: an immediate attempt, then one after each delay; each certbot call is bounded.
ATTEMPT_DELAYS_SECONDS = (30, 120)
CERTBOT_TIMEOUT_SECONDS = 300
# Between runs: the timer fires this long after the last run ended; failed runs double the wait.
RETRY_INTERVAL_SECONDS = 900
MAX_RUN_BACKOFF_SECONDS = 6 * 3600
# The renewal timer fires hourly, spread over this much so a fleet of stacks does not ask at once.
RENEWAL_RANDOMIZED_DELAY_SECONDS = 600


def certificate_path(s: HostSettings) -> str:
    return f"{LETSENCRYPT_DIR}/live/{s.public_hostname}/fullchain.pem"


def private_key_path(s: HostSettings) -> str:
    return f"{LETSENCRYPT_DIR}/live/{s.public_hostname}/privkey.pem"


def tls_files(s: HostSettings) -> list[HostFile]:
    if s.tls == "off":
        return []
    attempts = 1 + len(ATTEMPT_DELAYS_SECONDS)
    run_timeout = sum(ATTEMPT_DELAYS_SECONDS) + attempts * CERTBOT_TIMEOUT_SECONDS + 60
    service = _fill(
        "mlflow-certificate.service", hostname=s.public_hostname, issuance_script=ISSUANCE_SCRIPT,
        install_script=CERTBOT_INSTALL_SCRIPT,
        run_timeout_seconds=str(run_timeout + scripts.INSTALL_MAX_SECONDS),
    )
    renewal_service = _fill(
        "mlflow-certificate-renewal.service", hostname=s.public_hostname, install_script=CERTBOT_INSTALL_SCRIPT,
        renew_command=renew_command(), state_script=STATE_SCRIPT,
        run_timeout_seconds=str(CERTBOT_TIMEOUT_SECONDS + scripts.INSTALL_MAX_SECONDS + 60),
    )
    renewal_timer = _fill(
        "mlflow-certificate-renewal.timer", hostname=s.public_hostname,
        randomized_delay_seconds=str(RENEWAL_RANDOMIZED_DELAY_SECONDS),
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
        HostFile(CERTBOT_INSTALL_SCRIPT, certbot_install_script(s), permissions="0755", defer=True),
        HostFile(RENEWAL_SERVICE, renewal_service, defer=True),
        HostFile(RENEWAL_TIMER, renewal_timer, defer=True),
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
        "systemctl enable mlflow-certificate.timer mlflow-certificate-renewal.timer",
        "systemctl start mlflow-certificate.timer mlflow-certificate-renewal.timer",
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


def certbot_identifier_args(s: HostSettings) -> str:
    if s.hostname_is_ip:
        return f"--ip-address {s.public_hostname} --preferred-profile {IP_CERTIFICATE_PROFILE}"
    return f"--domain {s.public_hostname}"


def certbot_directory_args() -> str:
    return f"--config-dir {LETSENCRYPT_DIR} --work-dir {CERTBOT_WORK_DIR} --logs-dir {CERTBOT_LOGS_DIR}"


def deploy_hook() -> str:
    """What certbot runs (through a shell) after issuance and every renewal: nginx serves the new
    certificate, then the state is saved to SSM (a failed save is retried by the renewal timer)."""
    return f"{SITE_SWITCH} https; {STATE_SCRIPT} save"


def renew_command() -> str:
    # certbot's own random sleep (up to 8 minutes) is the timer's RandomizedDelaySec here.
    return f"{CERTBOT} renew --non-interactive --no-random-sleep-on-renew {certbot_directory_args()}"


def certbot_install_script(s: HostSettings) -> str:
    return _fill(
        "certbot-install.sh",
        venv_dir=CERTBOT_VENV,
        uv_dir=layout.UV_DIR,
        uv_cache_dir=layout.UV_CACHE_DIR,
        uv_version=pins.UV_VERSION,
        requirements=" ".join(shlex.quote(r) for r in pins.certbot_requirements(dns_route53=s.acme_dns_route53)),
        resolution=" ".join(shlex.quote(o) for o in pins.certbot_resolution_options()),
        attempts=str(scripts.INSTALL_ATTEMPTS),
        attempt_timeout_seconds=str(scripts.INSTALL_ATTEMPT_TIMEOUT_SECONDS),
        retry_delay_seconds=str(scripts.INSTALL_RETRY_DELAY_SECONDS),
    )


def saved_state_files(s: HostSettings) -> dict[str, list[str]]:
    """SSM parameter -> what it holds, as prefixes of paths below certbot's config directory."""
    name = s.public_hostname
    return {
        naming.parameter_name(s.ssm_prefix, naming.ACME_ACCOUNT): ["accounts/"],
        naming.parameter_name(s.ssm_prefix, naming.TLS_CERTIFICATE): [
            f"renewal/{name}.conf", f"live/{name}/", f"archive/{name}/",
        ],
    }


def certificate_state_settings(s: HostSettings) -> dict[str, Any]:
    """mlflow-certificate-state's section of the settings file (host_programs.certificate_state)."""
    return {
        "parameters": saved_state_files(s),
        "config_dir": LETSENCRYPT_DIR,
        "certificate_name": s.public_hostname,
        "acme_directory": s.acme_directory,
        "saved_marker": SAVED_STATE_MARKER,
        "unsaved": naming.UNSAVED_STATE,
    }


STATE_PROGRAM = HostProgram(STATE_SCRIPT, f"{CERTBOT_VENV}/bin/python", certificate_state, certificate_state_settings)


def tls_programs(s: HostSettings) -> list[HostProgram]:
    """The host programs TLS adds: the certificate's saved state, in certbot's venv."""
    return [] if s.tls == "off" else [STATE_PROGRAM]


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
        certbot_directories=certbot_directory_args(),
        account=certbot_account_args(s),
        certbot=CERTBOT,
        identifier=certbot_identifier_args(s),
        authenticator=certbot_authenticator_args(s),
        deploy_hook=shlex.quote(deploy_hook()),
        state_script=STATE_SCRIPT,
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
