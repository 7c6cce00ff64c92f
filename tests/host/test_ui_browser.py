"""The MLflow UI's own requests, as Debian's headless chromium makes them for a non-admin user through
nginx on the shared loopback stack: the guard refuses none of them (issue 18).

A browser sends a basic-auth login only after a page has asked for it in a dialog, and a headless one has
no dialog (credentials in the URL make the UI's fetch() calls throw), so a small proxy on 127.0.0.1 adds
the user's Authorization header to each of chromium's requests, as a browser does once logged in.
"""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.support import servers

pytestmark = pytest.mark.host

BROWSER_SECONDS = 120
PAGE_MILLISECONDS = 25000
# nginx's default "combined" format: remote_addr - remote_user [time] "request" status ...
ACCESS = re.compile(r'^\S+ - (?P<user>\S+) \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) ')
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host",
              "content-length", "content-encoding"}


def logged_in_proxy(upstream: str, authorization: str) -> ThreadingHTTPServer:
    """Forwards requests for `upstream` with the login added; anything else (chromium's own calls home)
    is answered 502 here and never leaves the machine."""
    origin = upstream.split("://", 1)[1]

    class Forward(BaseHTTPRequestHandler):
        def forward(self) -> None:
            target, _, path = self.path.split("://", 1)[-1].partition("/")
            if target != origin:
                self.send_error(502)
                return
            length = int(self.headers.get("Content-Length") or 0)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            answer = requests.request(self.command, f"{upstream}/{path}", data=self.rfile.read(length) or None,
                                      headers={**headers, "Authorization": authorization}, timeout=60)
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Forward)


@pytest.fixture
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("chromium is not installed (Debian package chromium)")
    return found


@pytest.fixture
def ui_user(loopback_stack) -> Iterator[tuple[str, str]]:
    username, password = f"ui-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    created = requests.post(f"{loopback_stack.tracking_uri}/api/2.0/mlflow/users/create",
                            json={"username": username, "password": password},
                            auth=(loopback_stack.admin_username, loopback_stack.admin_password), timeout=30)
    assert created.status_code == 200, created.text
    yield username, password


def test_the_ui_loads_for_a_non_admin_and_none_of_its_requests_is_refused(loopback_stack, chromium, ui_user,
                                                                          tmp_path: Path):
    username, password = ui_user
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    proxy = logged_in_proxy(loopback_stack.tracking_uri, f"Basic {token}")
    serving = threading.Thread(target=proxy.serve_forever, daemon=True)
    serving.start()
    try:
        page = subprocess.run(
            [chromium, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}",
             f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}", "--proxy-bypass-list=<-loopback>",
             f"--virtual-time-budget={PAGE_MILLISECONDS}", "--dump-dom",
             f"{loopback_stack.tracking_uri}/#/experiments"],
            capture_output=True, text=True, timeout=BROWSER_SECONDS, check=False)
    finally:
        proxy.shutdown()
        proxy.server_close()

    assert page.returncode == 0, page.stderr[-2000:]
    [log] = servers.logged_until_now([(loopback_stack.logs / "nginx-access.log", 0, loopback_stack.tracking_uri)])
    made = [m for m in map(ACCESS.match, log) if m and m["user"] == username]
    api_calls = [m for m in made if m["path"].startswith(("/ajax-api/", "/api/"))]
    assert api_calls, f"the UI made no API request as {username}: {page.stderr[-1000:]}"
    refused = [f'{m["method"]} {m["path"]} {m["status"]}' for m in made if m["status"][0] in "45"]
    assert not refused, refused
