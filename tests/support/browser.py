"""Debian's headless chromium, driven through the DevTools protocol: a page that navigates, follows
redirects across sites (the identity provider's login form and back), fills in forms and runs scripts,
as a person's browser would. Only the standard library and aiohttp's WebSocket client (already an MLflow
dependency) are used, so no browser-automation package is needed.

    with Browser(chromium, profile_dir) as browser:
        browser.navigate(url)
        browser.wait_for("location.pathname === '/oidc/ui/user'")
        text = browser.evaluate("document.body.innerText")
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

STARTUP_SECONDS = 60.0
COMMAND_SECONDS = 60.0
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--disable-default-apps", "--password-store=basic", "--use-mock-keychain"]


class BrowserError(RuntimeError):
    pass


def chromium_executable() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One chromium with one page. `ignore_certificate_errors`: the test identity provider's certificate
    comes from a throwaway CA the browser's own store does not hold."""

    def __init__(self, executable: str, profile: Path, *, ignore_certificate_errors: bool = True) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        arguments = [executable, *HEADLESS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                     "--remote-debugging-address=127.0.0.1", "about:blank"]
        if ignore_certificate_errors:
            arguments.insert(-1, "--ignore-certificate-errors")
        self._log = (profile / "chromium.log").open("wb")
        self.process = subprocess.Popen(arguments, stdout=self._log, stderr=subprocess.STDOUT)
        self._loop = asyncio.new_event_loop()
        self._next_id = 0
        try:
            port = self._devtools_port(profile / "DevToolsActivePort")
            self._loop.run_until_complete(self._connect(port))
            self.command("Page.enable")
            self.command("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, port_file: Path) -> int:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrowserError(f"chromium exited with status {self.process.returncode}")
            if port_file.is_file() and port_file.read_text().strip():
                return int(port_file.read_text().splitlines()[0])
            time.sleep(0.1)
        raise BrowserError(f"chromium wrote no {port_file.name} in {STARTUP_SECONDS:.0f} s")

    async def _connect(self, port: int) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            targets = json.loads(answer.read())
        page = next(target for target in targets if target.get("type") == "page")
        self._session = aiohttp.ClientSession()
        self._socket = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)

    async def _command(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        wanted = self._next_id
        await self._socket.send_json({"id": wanted, "method": method, "params": params})
        while True:
            message = await self._socket.receive_json()
            if message.get("id") == wanted:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        return self._loop.run_until_complete(asyncio.wait_for(self._command(method, params), COMMAND_SECONDS))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]!r} threw: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        self.command("Page.navigate", url=url)

    def wait_for(self, condition: str, *, timeout: float = 60.0, what: str = "") -> None:
        """Poll the JavaScript `condition` until it is true (a navigation in between is fine)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                if self.evaluate(f"Boolean({condition})"):
                    return
            except BrowserError as error:  # the page is between two documents
                last = str(error)
            time.sleep(0.2)
        raise BrowserError(f"{what or condition} did not happen in {timeout:.0f} s (at {self.location()}) {last}")

    def location(self) -> str:
        try:
            return str(self.evaluate("location.href"))
        except BrowserError:
            return "?"

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def fetch_json(self, path: str) -> tuple[int, Any]:
        """The page's own fetch() of `path` (same origin, its cookies): (status, JSON body or None)."""
        answer = self.evaluate(
            f"fetch({json.dumps(path)}, {{credentials: 'same-origin'}})"
            ".then(async r => [r.status, await r.text()])")
        status, body = answer
        try:
            return int(status), json.loads(body)
        except json.JSONDecodeError:
            return int(status), None

    def close(self) -> None:
        async def disconnect() -> None:
            if getattr(self, "_socket", None) is not None:
                await self._socket.close()
            if getattr(self, "_session", None) is not None:
                await self._session.close()

        try:
            self._loop.run_until_complete(disconnect())
        finally:
            self._loop.close()
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
            self._log.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
