"""The MLflow UI's own requests, as Debian's headless chromium makes them for a non-admin user through
nginx on the shared loopback stack: the guard refuses none of them (issue 18)."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.host

BROWSER_SECONDS = 120
# nginx's default "combined" format: remote_addr - remote_user [time] "request" status ...
ACCESS = re.compile(r'^\S+ - (?P<user>\S+) \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) ')
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_the_ui_loads_for_a_non_admin_and_none_of_its_requests_is_refused(loopback_stack, tmp_path: Path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian package chromium)")
    username, password = f"ui-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    created = requests.post(f"{loopback_stack.tracking_uri}/api/2.0/mlflow/users/create",
                            json={"username": username, "password": password},
                            auth=(loopback_stack.admin_username, loopback_stack.admin_password), timeout=30)
    assert created.status_code == 200, created.text
    url = loopback_stack.tracking_uri.replace("http://", f"http://{username}:{password}@") + "/#/experiments"

    page = subprocess.run([chromium, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=20000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=BROWSER_SECONDS, check=False)
    time.sleep(1)  # nginx writes its access log as each request ends

    assert page.returncode == 0, page.stderr[-2000:]
    log = (loopback_stack.logs / "nginx-access.log").read_text(errors="replace").splitlines()
    requests_made = [m for m in map(ACCESS.match, log) if m and m["user"] == username]
    api_calls = [m for m in requests_made if m["path"].startswith(("/ajax-api/", "/api/"))]
    assert api_calls, f"the UI made no API request as {username}: {page.stdout[:500]}"
    refused = [f'{m["method"]} {m["path"]} {m["status"]}' for m in requests_made if m["status"][0] in "45"]
    assert not refused, refused
