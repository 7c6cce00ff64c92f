"""`mlflow-aws smoke` says in one line what failed and what to check, for every way the server can refuse.

A scripted HTTP server on 127.0.0.1 plays the server's side (401, 403, 502, ...); the MLflow client's
own exceptions are produced by the real client against it.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from client import smoke, smoke_diagnosis


class ScriptedServer(http.server.ThreadingHTTPServer):
    responses: dict[str, tuple[int, str]]


class ScriptedHandler(http.server.BaseHTTPRequestHandler):
    server: ScriptedServer

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        status, body = self.server.responses.get(path, self.server.responses.get("*", (404, "not found")))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer(("127.0.0.1", 0), ScriptedHandler)
    scripted.responses = {"/health": (200, "OK")}
    thread = threading.Thread(target=scripted.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield scripted
    finally:
        scripted.shutdown()
        scripted.server_close()
        thread.join(timeout=10)


def uri_of(server: ScriptedServer, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.server_address[1]}"


def closed_port_uri() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the probe socket is closed


def run_smoke(tmp_path: Path, uri: str, capsys: pytest.CaptureFixture[str], password: str = "secret-1") -> str:
    env_file = tmp_path / "mlflow.env"
    env_file.write_text(
        f"# test\nMLFLOW_TRACKING_URI={uri}\nMLFLOW_TRACKING_USERNAME=admin\nMLFLOW_TRACKING_PASSWORD={password}\n"
    )
    code = smoke.main(str(env_file))
    output = capsys.readouterr().out
    assert code == 1, output
    failed = [line for line in output.splitlines() if "FAILED" in line]
    assert len(failed) == 1, output
    return failed[0]


def test_wrong_credentials_say_credentials_rejected(
    server: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.responses["*"] = (401, "You are not authenticated.")
    line = run_smoke(tmp_path, uri_of(server), capsys)
    assert line.startswith("authenticate")
    assert "credentials rejected" in line and "HTTP 401" in line and "MLFLOW_TRACKING_PASSWORD" in line
    assert "secret-1" not in line


def test_host_not_in_allowed_hosts_says_so(
    server: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.responses["*"] = (403, "Invalid Host header - possible DNS rebinding attack detected")
    line = run_smoke(tmp_path, uri_of(server), capsys)
    assert "host not allowed" in line and "--allowed-hosts" in line


def test_forbidden_user_says_permission_denied(
    server: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.responses["*"] = (403, "Permission denied")
    line = run_smoke(tmp_path, uri_of(server), capsys)
    assert "permission denied" in line and "'admin'" in line


def test_proxy_error_says_mlflow_behind_nginx_is_down(
    server: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.responses["/health"] = (502, "<html>502 Bad Gateway</html>")
    line = run_smoke(tmp_path, uri_of(server), capsys)
    assert line.startswith("reach server")
    assert "HTTP 502" in line and "mlflow service" in line


def test_server_waiting_for_its_certificate_says_so(
    server: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before issuance the host answers /health but everything else with this 503 (userdata/tls.py).
    server.responses["*"] = (503, "This MLflow server is waiting for its TLS certificate. Retry in a few minutes.")
    line = run_smoke(tmp_path, uri_of(server), capsys)
    assert line.startswith("authenticate") and "waiting for its TLS certificate (HTTP 503)" in line


def test_not_an_mlflow_server_says_so(
    server: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.responses["/health"] = (404, "nothing here")
    assert "does not point at an MLflow server" in run_smoke(tmp_path, uri_of(server), capsys)


def test_closed_port_says_cannot_reach_and_what_to_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = closed_port_uri()
    line = run_smoke(tmp_path, uri, capsys)
    assert f"cannot reach {uri} (connection refused)" in line
    assert "instance is running" in line and "allowedCidrs" in line


def test_closed_https_port_also_suggests_the_certificate_may_be_pending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = closed_port_uri().replace("http:", "https:")
    line = run_smoke(tmp_path, uri, capsys)
    assert f"cannot reach {uri} (connection refused)" in line and "certificate is still pending" in line


def test_https_to_a_plain_http_server_says_the_port_speaks_plain_http_not_that_a_certificate_is_pending(
    server: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = uri_of(server, "https")
    line = run_smoke(tmp_path, uri, capsys)
    assert line.startswith("reach server (/health)")
    assert f"TLS failed for {uri}" in line
    assert "that port answers in plain HTTP, not TLS" in line and "tls: off" in line
    assert "pending" not in line


@pytest.mark.parametrize("reason", [
    "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",  # OpenSSL 1.1 and 3.0
    "[SSL: RECORD_LAYER_FAILURE] record layer failure (_ssl.c:1000)",  # OpenSSL 3.2 and later
    "[SSL: PACKET_LENGTH_TOO_LONG] packet length too long (_ssl.c:1000)",
])
def test_every_openssl_wording_of_a_plain_http_answer_is_recognised(reason: str) -> None:
    message = smoke_diagnosis.exception(ssl.SSLError(1, reason), "https://203.0.113.7", "admin")
    assert "that port answers in plain HTTP, not TLS" in message


def test_an_untrusted_certificate_points_to_verify_not_to_plain_http() -> None:
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                            "self-signed certificate (_ssl.c:1006)")
    message = smoke_diagnosis.exception(error, "https://203.0.113.7", "admin")
    assert "not one this client trusts" in message and "mlflow-aws verify" in message
    assert "plain HTTP" not in message


def test_without_env_file_the_environment_variables_are_used(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.responses["*"] = (401, "You are not authenticated.")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri_of(server))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-1")
    assert smoke.main(None) == 1
    assert f"credentials rejected by {uri_of(server)} (HTTP 401) for user 'alice'" in capsys.readouterr().out


def test_env_file_without_tracking_uri_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env_file = tmp_path / "mlflow.env"
    env_file.write_text("MLFLOW_TRACKING_USERNAME=admin\n")
    assert smoke.main(str(env_file)) == 2
    assert "MLFLOW_TRACKING_URI is not set" in capsys.readouterr().err


def test_missing_env_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(str(tmp_path / "absent.env")) == 2
    assert "mlflow-aws env" in capsys.readouterr().err


# The MLflow client's own exceptions (raised after the probes passed) are explained the same way.


@pytest.fixture
def quick_mlflow_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "secret-1")


def mlflow_error(uri: str) -> BaseException:
    import mlflow

    with pytest.raises(Exception) as raised:
        mlflow.MlflowClient(uri, uri).search_experiments(max_results=1)
    return raised.value


@pytest.mark.usefixtures("quick_mlflow_client")
def test_mlflow_client_connection_refused_is_explained() -> None:
    uri = closed_port_uri()
    message = smoke_diagnosis.exception(mlflow_error(uri), uri, "admin")
    assert message.startswith(f"cannot reach {uri} (connection refused)")


@pytest.mark.usefixtures("quick_mlflow_client")
def test_mlflow_client_401_is_explained(server: ScriptedServer) -> None:
    server.responses["*"] = (401, "You are not authenticated.")
    uri = uri_of(server)
    assert smoke_diagnosis.exception(mlflow_error(uri), uri, "admin").startswith(f"credentials rejected by {uri}")


@pytest.mark.usefixtures("quick_mlflow_client")
def test_mlflow_client_502_is_explained(server: ScriptedServer) -> None:
    server.responses["*"] = (502, "Bad Gateway")
    uri = uri_of(server)
    assert "MLflow behind it does not (HTTP 502)" in smoke_diagnosis.exception(mlflow_error(uri), uri, "admin")


@pytest.mark.usefixtures("quick_mlflow_client")
def test_mlflow_client_tls_failure_is_explained(server: ScriptedServer) -> None:
    uri = uri_of(server, "https")
    message = smoke_diagnosis.exception(mlflow_error(uri), uri, "admin")
    assert message.startswith(f"TLS failed for {uri}") and "plain HTTP" in message


def test_name_that_does_not_resolve_is_explained() -> None:
    # Built from the real exception types requests raises, without asking a DNS server.
    cause = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    error = requests.exceptions.ConnectionError("lookup failed")
    error.__context__ = cause
    message = smoke_diagnosis.exception(error, "https://mlflow.example.org", "admin")
    assert message.startswith("cannot reach https://mlflow.example.org (its name does not resolve)")


# The client's MLflow against the server's: a newer client is a warning (README, "The client's MLflow").


@pytest.mark.parametrize(("client", "server", "warned"), [
    ("3.17.2", "3.17.2", False),
    ("3.17.3", "3.17.2", False),  # a patch release adds no API
    ("3.16.1", "3.17.2", False),
    ("3.18.0", "3.17.2", True),
    ("4.0.0", "3.17.2", True),
    ("3.17.2", "not a version", False),
])
def test_only_a_client_of_a_later_minor_release_than_the_server_is_warned_about(
    client: str, server: str, warned: bool
) -> None:
    warning = smoke.newer_client_warning(client, server)
    assert (warning is not None) == warned
    if warning:
        assert f"this client's MLflow {client} is newer than the server's {server}" in warning
        assert f"pip install 'mlflow-skinny=={server}'" in warning


def test_smoke_warns_when_the_server_reports_an_older_release_than_the_client(
    server: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smoke, "client_mlflow_version", lambda: "3.17.2")
    server.responses["/version"] = (200, "3.16.1")
    server.responses["*"] = (200, "{}")
    env_file = tmp_path / "mlflow.env"
    env_file.write_text(f"MLFLOW_TRACKING_URI={uri_of(server)}\nMLFLOW_TRACKING_USERNAME=admin\n"
                        "MLFLOW_TRACKING_PASSWORD=secret-1\n")
    smoke.main(str(env_file))
    output = capsys.readouterr().out
    assert any(line.startswith("server version (/version)") and " ... ok (" in line for line in output.splitlines())
    assert "warning: this client's MLflow 3.17.2 is newer than the server's 3.16.1" in output


def test_smoke_does_not_warn_when_the_server_runs_the_clients_release(
    server: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smoke, "client_mlflow_version", lambda: "3.17.2")
    server.responses["/version"] = (200, "3.17.2")
    server.responses["*"] = (200, "{}")
    env_file = tmp_path / "mlflow.env"
    env_file.write_text(f"MLFLOW_TRACKING_URI={uri_of(server)}\nMLFLOW_TRACKING_USERNAME=admin\n"
                        "MLFLOW_TRACKING_PASSWORD=secret-1\n")
    smoke.main(str(env_file))
    assert "warning:" not in capsys.readouterr().out
