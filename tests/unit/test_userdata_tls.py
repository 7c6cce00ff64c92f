"""What userdata.tls renders for each TLS mode, and how the rendered issuance script retries.

The script tests run the rendered bash script itself (host paths moved under a temporary root by
the same `remap` and replacements the loopback tests use), with stand-ins for certbot, nginx,
systemctl and sleep on PATH: they prove the script's own logic (attempts, waits, backoff between
runs, the switch to HTTPS) without a network or real waiting. Talking to a real ACME server is
tests/host/test_tls_acme.py.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

import naming
import userdata
from config import load_config
from host_programs import certificate_state
from host_settings import host_settings_for
from tests.support.loopback import remap
from tests.support.tls_loopback import host_replacements
from userdata import layout, pins, programs, tls
from userdata.bundle import files_of
from userdata.files import HostFile
from userdata.settings import LETSENCRYPT_DIRECTORY, HostSettings

HOSTNAME = "203.0.113.10"  # no domain: the Elastic IP itself

DEFAULT = HostSettings(
    project="mlflow-aws", stack="dev", region="eu-west-1", ssm_prefix="/mlflow-aws/dev",
    artifact_bucket="mlflow-aws-dev-artifacts", host_files_bucket="mlflow-aws-dev-host-files",
    public_hostname=HOSTNAME, public_ip="203.0.113.10",
    mlflow_version="3.17.2", instance_memory_mib=2048, tls="letsencrypt",
)
DOMAIN = replace(DEFAULT, public_hostname="mlflow.example.com")
DNS01 = replace(DOMAIN, acme_dns_route53=True)
OFF = replace(DEFAULT, tls="off")


def files_by_path(settings: HostSettings) -> dict[str, str]:
    return {host_file.path: host_file.content for host_file in tls.tls_files(settings)}


def certbot_command(settings: HostSettings) -> str:
    script = tls.issuance_script(settings)
    start = script.index("certbot certonly")
    return script[start:script.index("\n}", start)]


# --- the whole user data -----------------------------------------------------------------------


def test_a_default_stack_renders_user_data_that_obtains_a_certificate_for_its_elastic_ip() -> None:
    cfg = load_config({}, project="mlflow-aws", stack="dev", region="eu-west-1")
    settings = host_settings_for(cfg, artifact_bucket="bucket", host_files_bucket="host-files",
                                 public_ip="203.0.113.10")
    document = yaml.safe_load(userdata.render(settings))

    assert settings.tracking_uri == "https://203.0.113.10"
    assert not any("certbot" in package for package in document["packages"])  # PyPI's, not Ubuntu's 2.9
    written = {file.path: file.content for file in files_of(userdata.host_bundle(settings))}
    for host_file in tls.tls_files(settings):
        assert written[host_file.path] == host_file.content
    assert f"certbot=={pins.CERTBOT_VERSION} " in written[tls.CERTBOT_INSTALL_SCRIPT]
    assert "--cert-name 203.0.113.10 --ip-address 203.0.113.10 --preferred-profile shortlived" in (
        written[tls.ISSUANCE_SCRIPT])
    assert f"--server {LETSENCRYPT_DIRECTORY}" in written[tls.ISSUANCE_SCRIPT]
    # TLS comes last: nginx is installed and mlflow.service started by then.
    runcmd = document["runcmd"]
    boot = tls.tls_boot_commands(settings)
    assert runcmd[-len(boot):] == boot
    assert runcmd.index(f"systemctl start --no-block {layout.UNIT_NAME}") < runcmd.index(boot[0])


def test_tls_off_user_data_has_no_certbot_and_no_https() -> None:
    text = userdata.render(OFF)
    for absent in ("certbot", "letsencrypt", "443", "ssl_certificate", tls.SITE_SWITCH):
        assert absent not in text


# --- tls: off ----------------------------------------------------------------------------------


def test_tls_off_renders_no_files_or_commands() -> None:
    assert tls.tls_files(OFF) == []
    assert tls.tls_boot_commands(OFF) == []


# --- tls: letsencrypt, HTTP-01 (the default) ---------------------------------------------------


def test_letsencrypt_installs_pinned_certbot_and_boto3_without_the_route53_plugin() -> None:
    assert pins.certbot_requirements(dns_route53=False) == [
        f"certbot=={pins.CERTBOT_VERSION}", f"boto3=={pins.BOTO3_VERSION}"]
    script = tls.certbot_install_script(DEFAULT)
    assert f"(certbot=={pins.CERTBOT_VERSION} boto3=={pins.BOTO3_VERSION} " in script
    assert f"--exclude-newer {pins.RESOLVED_AS_OF}" in script
    assert "route53" not in script


def test_certbot_is_new_enough_for_ip_address_certificates_with_webroot() -> None:
    major, minor, _ = (int(part) for part in pins.CERTBOT_VERSION.split("."))
    assert (major, minor) >= (5, 4)


def test_the_certificate_units_install_certbot_before_they_run_it() -> None:
    files = files_by_path(DEFAULT)
    for unit in (tls.ISSUANCE_SERVICE, tls.RENEWAL_SERVICE):
        assert f"ExecStartPre={tls.CERTBOT_INSTALL_SCRIPT}" in files[unit], unit
    assert f"{tls.CERTBOT_VENV}/bin/certbot certonly" in files[tls.ISSUANCE_SCRIPT]


def test_every_template_placeholder_is_filled() -> None:
    for settings in (DEFAULT, DNS01):
        for host_file in tls.tls_files(settings):
            assert "{{" not in host_file.content, host_file.path


def test_scripts_are_executable_and_valid_bash(tmp_path: Path) -> None:
    scripts = [f for f in tls.tls_files(DEFAULT)
               if f.path in (tls.SITE_SWITCH, tls.ISSUANCE_SCRIPT, tls.CERTBOT_INSTALL_SCRIPT)]
    assert len(scripts) == 3
    for host_file in scripts:
        assert host_file.permissions == "0755"
        assert host_file.content.startswith("#!/bin/bash\n")
        script = tmp_path / Path(host_file.path).name
        script.write_text(host_file.content)
        subprocess.run(["bash", "-n", str(script)], check=True, timeout=10)


def test_the_state_program_runs_in_the_certbot_venv_only_with_tls() -> None:
    assert userdata.host_programs(DEFAULT)[-1] == tls.STATE_PROGRAM
    assert tls.STATE_PROGRAM.python == f"{tls.CERTBOT_VENV}/bin/python"
    assert tls.tls_programs(replace(DEFAULT, tls="off")) == []
    rendered = {f.path: f for f in userdata.host_files(DEFAULT)}
    assert rendered[tls.STATE_SCRIPT].permissions == "0755"
    assert tls.STATE_PROGRAM not in userdata.host_programs(replace(DEFAULT, tls="off"))


def test_the_state_program_reads_exactly_the_two_parameters_the_role_may_write(tmp_path: Path) -> None:
    path = tmp_path / "host-settings.json"
    path.write_text(programs.settings_text(DEFAULT, userdata.host_programs(DEFAULT)))
    read = certificate_state.read_settings(str(path))
    assert read.parameters == {
        "/mlflow-aws/dev/tls/acme-account": ["accounts/"],
        "/mlflow-aws/dev/tls/certificate": ["renewal/203.0.113.10.conf", "live/203.0.113.10/", "archive/203.0.113.10/"],
    }
    assert (read.region, read.certificate_name, read.acme_directory) == (
        DEFAULT.region, DEFAULT.public_hostname, DEFAULT.acme_directory)
    assert (str(read.config_dir), str(read.saved_marker), read.unsaved) == (
        tls.LETSENCRYPT_DIR, tls.SAVED_STATE_MARKER, naming.UNSAVED_STATE)


def test_files_are_written_after_the_packages_that_create_their_directories() -> None:
    assert all(host_file.defer for host_file in tls.tls_files(DEFAULT))


def test_certbot_asks_the_configured_acme_directory_for_the_elastic_ip_in_the_shortlived_profile() -> None:
    command = certbot_command(replace(DEFAULT, acme_directory="https://127.0.0.1:14000/dir"))
    assert "--server https://127.0.0.1:14000/dir" in command
    assert f"--cert-name {HOSTNAME} --ip-address {HOSTNAME} --preferred-profile shortlived" in command
    assert "--domain" not in command
    assert "--non-interactive --agree-tos" in command


def test_with_a_domain_certbot_asks_for_the_name_in_the_servers_default_profile() -> None:
    command = certbot_command(DOMAIN)
    assert "--cert-name mlflow.example.com --domain mlflow.example.com" in command
    assert "--ip-address" not in command and "profile" not in command


def test_certbot_uses_lets_encrypt_production_by_default() -> None:
    assert f"--server {LETSENCRYPT_DIRECTORY}" in certbot_command(DEFAULT)


def test_http01_uses_the_webroot_the_port_80_sites_serve() -> None:
    command = certbot_command(DEFAULT)
    assert f"--webroot --webroot-path {tls.ACME_WEBROOT}" in command
    assert "--dns-route53" not in command
    files = files_by_path(DEFAULT)
    for site in (tls.PENDING_SITE, tls.HTTPS_SITE):
        assert "location ^~ /.well-known/acme-challenge/" in files[site]
        assert f"root {tls.ACME_WEBROOT};" in files[site]
    assert f"install -d -m 0755 {tls.ACME_WEBROOT}" in tls.tls_boot_commands(DEFAULT)


def test_acme_email_is_passed_when_given() -> None:
    command = certbot_command(replace(DEFAULT, acme_email="ops@example.com"))
    assert "--email 'ops@example.com'" in command
    assert "--register-unsafely-without-email" not in command


def test_without_acme_email_certbot_registers_without_one() -> None:
    command = certbot_command(DEFAULT)
    assert "--register-unsafely-without-email" in command
    assert "--email" not in command


def test_an_email_with_shell_characters_stays_one_argument() -> None:
    email = "o'neil$(reboot)@example.com"
    words = shlex.split(certbot_command(replace(DEFAULT, acme_email=email)).replace("\\\n", " "))
    assert words[words.index("--email") + 1] == email


def test_the_deploy_hook_switches_nginx_to_https_then_saves_the_state_to_ssm() -> None:
    assert f"--deploy-hook '{tls.SITE_SWITCH} https; {tls.STATE_SCRIPT} save'" in certbot_command(DEFAULT)


def test_the_pending_site_answers_only_the_challenge_health_and_a_503() -> None:
    site = files_by_path(DEFAULT)[tls.PENDING_SITE]
    assert "listen 80 default_server;" in site
    assert "443" not in site
    assert f"proxy_pass http://{layout.NGINX_UPSTREAM_NAME};" in site
    assert "return 503" in site
    assert "mlflow-proxy.conf" not in site  # nothing else reaches MLflow over plain HTTP


def test_the_https_site_serves_mlflow_on_443_with_modern_tls_and_hsts() -> None:
    site = files_by_path(DEFAULT)[tls.HTTPS_SITE]
    assert "listen 443 ssl http2 default_server;" in site
    assert f"ssl_certificate /etc/letsencrypt/live/{HOSTNAME}/fullchain.pem;" in site
    assert f"ssl_certificate_key /etc/letsencrypt/live/{HOSTNAME}/privkey.pem;" in site
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in site
    ciphers = site.split("ssl_ciphers ", 1)[1].split(";", 1)[0].split(":")
    assert all(c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c) for c in ciphers)
    assert 'add_header Strict-Transport-Security "max-age=63072000" always;' in site
    assert "include /etc/nginx/snippets/mlflow-proxy.conf;" in site


def test_the_https_site_redirects_port_80_to_the_public_hostname() -> None:
    site = files_by_path(DEFAULT)[tls.HTTPS_SITE]
    assert f"return 301 https://{HOSTNAME}$request_uri;" in site


def test_boot_replaces_the_default_site_and_starts_issuance_without_waiting() -> None:
    commands = tls.tls_boot_commands(DEFAULT)
    assert commands.index(f"rm -f {layout.NGINX_DEFAULT_SITE_ENABLED}") < commands.index(f"{tls.SITE_SWITCH} pending")
    assert "systemctl enable mlflow-certificate.timer mlflow-certificate-renewal.timer" in commands
    assert "certbot.timer" not in " ".join(commands)  # Ubuntu's certbot package is not installed
    assert commands[-1] == "systemctl start --no-block mlflow-certificate.service"


def test_the_timer_retries_until_the_certificate_exists() -> None:
    timer = files_by_path(DEFAULT)[tls.ISSUANCE_TIMER]
    assert f"OnUnitInactiveSec={tls.RETRY_INTERVAL_SECONDS}s" in timer
    assert "WantedBy=timers.target" in timer
    service = files_by_path(DEFAULT)[tls.ISSUANCE_SERVICE]
    assert f"ExecStart={tls.ISSUANCE_SCRIPT}" in service
    assert "Type=oneshot" in service
    assert "TimeoutStartSec=" in service


def test_renewal_checks_hourly_renews_when_certbot_finds_it_due_and_retries_a_failed_save() -> None:
    files = files_by_path(DEFAULT)
    timer = files[tls.RENEWAL_TIMER]
    assert "OnCalendar=hourly" in timer
    assert f"RandomizedDelaySec={tls.RENEWAL_RANDOMIZED_DELAY_SECONDS}s" in timer
    assert "Persistent=true" in timer
    service = files[tls.RENEWAL_SERVICE]
    assert (f"ExecStart={tls.CERTBOT} renew --non-interactive --no-random-sleep-on-renew "
            "--config-dir /etc/letsencrypt --work-dir /var/lib/letsencrypt --logs-dir /var/log/letsencrypt") in service
    assert "--force-renewal" not in service
    assert f"ExecStartPost={tls.STATE_SCRIPT} save --unless-saved" in service


def test_an_hourly_check_renews_a_160_hour_certificate_with_days_to_spare_after_a_day_of_failures() -> None:
    # certbot's default for a certificate of under 10 days: due at half its lifetime.
    lifetime_hours = 160
    due = lifetime_hours / 2
    worst_case_renewal = due + 1 + tls.RENEWAL_RANDOMIZED_DELAY_SECONDS / 3600 + 24  # a day of failures
    assert lifetime_hours - worst_case_renewal > 48


# --- tls: letsencrypt with hostedZoneId: DNS-01 through Route 53 -------------------------------


def test_dns01_installs_and_uses_the_route53_plugin() -> None:
    assert f"certbot-dns-route53=={pins.CERTBOT_VERSION} " in tls.certbot_install_script(DNS01)
    assert "--dns-route53" in certbot_command(DNS01)


def test_dns01_renders_no_webroot_anywhere() -> None:
    assert "--webroot" not in certbot_command(DNS01)
    for host_file in tls.tls_files(DNS01):
        assert "acme-challenge" not in host_file.content, host_file.path
        assert tls.ACME_WEBROOT not in host_file.content, host_file.path
    assert not any(tls.ACME_WEBROOT in command for command in tls.tls_boot_commands(DNS01))


def test_dns01_still_serves_the_pending_page_and_health_on_port_80() -> None:
    files = files_by_path(DNS01)
    assert "return 503" in files[tls.PENDING_SITE]
    assert "location = /health" in files[tls.HTTPS_SITE]


# --- the issuance script's retries, with stand-ins --------------------------------------------


class ScriptHost:
    """The rendered TLS files under a temporary root, with stand-in commands first on PATH."""

    def __init__(self, root: Path, settings: HostSettings, *, certbot_failures: int) -> None:
        self.replacements = host_replacements(root, nginx_port=8080, https_port=8443)
        self.bin = root / "fake-bin"
        self.bin.mkdir()
        self.calls = root / "calls.log"
        self.certificate = self.path(tls.certificate_path(settings))
        for host_file in tls.tls_files(settings):
            # The install script is not run here (it runs uv; tests/host install certbot with it).
            if host_file.path != tls.CERTBOT_INSTALL_SCRIPT:
                self._install(host_file)
        self.path("/etc/nginx/sites-enabled").mkdir(parents=True)
        record = f'echo "$(basename "$0") $*" >> {shlex.quote(str(self.calls))}'
        self._fake("nginx", f"{record}\nexit 0")
        self._fake("systemctl", f"{record}\nexit 0")
        self._fake("sleep", f"{record}\nexit 0")
        # Fails `certbot_failures` times, then "issues": writes the certificate, as certbot would.
        count = root / "certbot-calls"
        self._fake_at(self.path(tls.CERTBOT), f"""{record}
n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo $n > {count}
if [ $n -le {certbot_failures} ]; then echo "challenge failed" >&2; exit 1; fi
mkdir -p {shlex.quote(str(self.certificate.parent))}
echo CERTIFICATE > {shlex.quote(str(self.certificate))}""")
        # Nothing saved in SSM unless a test says otherwise (the real script: tests/host).
        self.fake_state(restores=False)

    def fake_state(self, *, restores: bool, exit_code: int = 0) -> None:
        restore = (f"mkdir -p {shlex.quote(str(self.certificate.parent))}; "
                   f"echo RESTORED > {shlex.quote(str(self.certificate))}") if restores else ":"
        self._fake_at(self.path(tls.STATE_SCRIPT), f"""echo "certificate-state $*" >> {shlex.quote(str(self.calls))}
[ "$1" = restore ] && {{ {restore}; }}
exit {exit_code}""")

    def path(self, host_path: str) -> Path:
        return Path(remap(host_path, self.replacements))

    def run(self) -> subprocess.CompletedProcess[str]:
        script = self.path(tls.ISSUANCE_SCRIPT)
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.bin.parent)}
        return subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=30)

    def calls_to(self, command: str) -> list[str]:
        lines = self.calls.read_text().splitlines() if self.calls.exists() else []
        return [line.removeprefix(command + " ") for line in lines if line.split(" ", 1)[0] == command]

    def enabled_site(self) -> str:
        return str(self.path(tls.ENABLED_SITE).resolve())

    @property
    def state(self) -> Path:
        return self.path("/var/lib/mlflow-certificate/failed-runs")

    def _install(self, host_file: HostFile) -> None:
        target = self.path(host_file.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        content = remap(host_file.content, self.replacements)
        # These scripts run as root here: a host path left unmapped would touch this machine.
        outside = re.findall(r"(?<![\w./:-])/(?:etc|var|usr|opt)/[\w./-]*", content)
        assert outside == [], f"{host_file.path} still names host paths: {outside}"
        target.write_text(content)
        target.chmod(int(host_file.permissions, 8))

    def _fake(self, name: str, body: str) -> None:
        self._fake_at(self.bin / name, body)

    def _fake_at(self, path: Path, body: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)


@pytest.fixture(autouse=True)
def _needs_bash() -> None:
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("the rendered scripts need bash and coreutils' timeout")


def test_a_first_successful_attempt_switches_to_https_and_stops_the_timer(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=0)
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert len(host.calls_to("certbot")) == 1
    assert host.calls_to("sleep") == []
    assert host.enabled_site() == str(host.path(tls.HTTPS_SITE))
    assert "disable --now mlflow-certificate.timer" in host.calls_to("systemctl")
    assert "reload-or-restart nginx" in host.calls_to("systemctl")


def test_a_certificate_nginx_refuses_to_serve_keeps_the_retry_timer_on(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=0)
    env = {"PATH": f"{host.bin}:/usr/bin:/bin"}
    subprocess.run([str(host.path(tls.SITE_SWITCH)), "pending"], env=env, check=True, capture_output=True, timeout=10)
    host.certificate.parent.mkdir(parents=True)
    host.certificate.write_text("CERTIFICATE")
    host._fake("nginx", "echo 'nginx: [emerg] cannot load certificate' >&2; exit 1")
    result = host.run()
    assert result.returncode == 1
    assert "nginx refuses the https site; the timer tries again" in result.stdout
    assert host.enabled_site() == str(host.path(tls.PENDING_SITE))
    assert "disable --now mlflow-certificate.timer" not in host.calls_to("systemctl")


def test_failed_attempts_are_retried_with_growing_waits_within_one_run(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=2)
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert len(host.calls_to("certbot")) == 3
    assert host.calls_to("sleep") == [str(delay) for delay in tls.ATTEMPT_DELAYS_SECONDS]
    assert "attempt 2 failed" in result.stdout
    assert host.certificate.exists()
    assert not host.state.exists()


def test_a_run_whose_attempts_all_fail_stops_and_leaves_nginx_pending(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=100)
    result = host.run()
    assert result.returncode == 1
    assert len(host.calls_to("certbot")) == 1 + len(tls.ATTEMPT_DELAYS_SECONDS)
    assert host.enabled_site() == str(host.path(tls.PENDING_SITE))
    failed_runs, last_failure = host.state.read_text().split()
    assert failed_runs == "1"
    assert abs(int(last_failure) - time.time()) < 60
    assert "the timer retries" in result.stdout


def test_after_a_failed_run_the_next_run_backs_off(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=100)
    host.run()
    certbot_calls = len(host.calls_to("certbot"))
    result = host.run()
    assert result.returncode == 0
    assert "backing off after 1 failed run" in result.stdout
    assert len(host.calls_to("certbot")) == certbot_calls


def test_the_backoff_doubles_with_each_failed_run(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=100)
    host.state.parent.mkdir(parents=True)
    # Three failed runs, the last one 3 intervals ago: the wait is 4 intervals, so still backing off.
    host.state.write_text(f"3 {int(time.time()) - 3 * tls.RETRY_INTERVAL_SECONDS}\n")
    assert "backing off after 3 failed run" in host.run().stdout
    assert host.calls_to("certbot") == []
    # ... and 5 intervals ago: time to try again.
    host.state.write_text(f"3 {int(time.time()) - 5 * tls.RETRY_INTERVAL_SECONDS}\n")
    host.run()
    assert len(host.calls_to("certbot")) == 1 + len(tls.ATTEMPT_DELAYS_SECONDS)
    assert host.state.read_text().split()[0] == "4"


def test_the_backoff_between_runs_is_capped(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=0)
    host.state.parent.mkdir(parents=True)
    host.state.write_text(f"40 {int(time.time()) - tls.MAX_RUN_BACKOFF_SECONDS + 60}\n")
    assert "backing off after 40 failed run" in host.run().stdout
    host.state.write_text(f"40 {int(time.time()) - tls.MAX_RUN_BACKOFF_SECONDS - 1}\n")
    assert host.run().returncode == 0
    assert len(host.calls_to("certbot")) == 1


def test_an_unreadable_retry_state_counts_as_no_failed_run(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=0)
    host.state.parent.mkdir(parents=True)
    host.state.write_text("garbage\n")
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert "ignoring unreadable retry state" in result.stdout
    assert len(host.calls_to("certbot")) == 1


def test_with_a_certificate_in_place_a_run_requests_nothing(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=0)
    host.certificate.parent.mkdir(parents=True)
    host.certificate.write_text("CERTIFICATE")
    result = host.run()
    assert result.returncode == 0
    assert host.calls_to("certbot") == []
    assert host.enabled_site() == str(host.path(tls.HTTPS_SITE))
    assert "disable --now mlflow-certificate.timer" in host.calls_to("systemctl")


def test_a_certificate_saved_in_ssm_is_restored_before_any_order(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=0)
    host.fake_state(restores=True)
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert host.calls_to("certificate-state") == ["restore"]
    assert host.calls_to("certbot") == []
    assert host.certificate.read_text() == "RESTORED\n"
    assert host.enabled_site() == str(host.path(tls.HTTPS_SITE))
    assert "disable --now mlflow-certificate.timer" in host.calls_to("systemctl")


def test_nothing_saved_in_ssm_means_a_new_order(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=0)
    assert host.run().returncode == 0
    assert host.calls_to("certificate-state") == ["restore"]
    assert len(host.calls_to("certbot")) == 1


def test_an_ssm_state_that_cannot_be_read_still_ends_in_a_new_order(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=0)
    host.fake_state(restores=False, exit_code=1)
    result = host.run()
    assert result.returncode == 0, result.stderr
    assert len(host.calls_to("certbot")) == 1
    assert host.enabled_site() == str(host.path(tls.HTTPS_SITE))


def test_a_site_nginx_rejects_is_rolled_back(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=0)
    switch = host.path(tls.SITE_SWITCH)
    env = {"PATH": f"{host.bin}:/usr/bin:/bin"}
    subprocess.run([str(switch), "pending"], env=env, check=True, capture_output=True, timeout=10)
    host._fake("nginx", "echo 'nginx: [emerg] cannot load certificate' >&2; exit 1")
    result = subprocess.run([str(switch), "https"], env=env, capture_output=True, text=True, timeout=10)
    assert result.returncode == 1
    assert "keeping the previous configuration" in result.stderr
    assert host.enabled_site() == str(host.path(tls.PENDING_SITE))


def test_the_site_switch_refuses_an_unknown_site(tmp_path: Path) -> None:
    host = ScriptHost(tmp_path, DEFAULT, certbot_failures=0)
    switch = host.path(tls.SITE_SWITCH)
    result = subprocess.run([str(switch), "plain"], env={"PATH": f"{host.bin}:/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert not host.path(tls.ENABLED_SITE).is_symlink()
