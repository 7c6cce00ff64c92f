"""From a failed request to one line saying what went wrong and what to check.

Used by `mlflow-aws smoke` for both its own probes (an HTTP status) and the MLflow client's
exceptions (which wrap the `requests` error that says whether DNS, TCP or TLS failed).
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

REACH_HINT = "check the instance is running and allowedCidrs includes your IP"
TLS_HINT = (
    "the certificate is not one this client trusts for that name; `mlflow-aws verify` says which "
    "(README troubleshooting, server: TLS certificate)"
)
# What OpenSSL reports when the other end answers a TLS handshake in plain HTTP: "wrong version number"
# (OpenSSL 1.1 and 3.0), "record layer failure" or "packet length too long" (3.2 and later).
PLAIN_HTTP_MARKERS = ("wrong version number", "record layer failure", "packet length too long", "http request")
PLAIN_HTTP_HINT = (
    "that port answers in plain HTTP, not TLS: the server runs without TLS (tls: off) or the URI names a "
    "plain-HTTP port; use the stack's tracking_uri output as it is (`mlflow-aws env` writes it)"
)
# Before its certificate is issued the host does not listen on 443 at all.
HTTPS_REFUSED_HINT = "or, on a new stack, the TLS certificate is still pending and 443 not open yet (see README)"
PROXY_ERRORS = (502, 503, 504)
INVALID_HOST = "Invalid Host header"
CERTIFICATE_PENDING = "waiting for its TLS certificate"  # the 503 nginx answers before issuance
_TOO_MANY = re.compile(r"too many (\d{3}) error responses")


def _host(uri: str) -> str:
    return urlsplit(uri).hostname or uri


def http_status(status: int, body: str, uri: str, username: str | None) -> str:
    if status == 401:
        if not username:
            return (
                f"credentials rejected by {uri} (HTTP 401): MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD "
                "are not set; pass --env with the file `mlflow-aws env` wrote"
            )
        return (
            f"credentials rejected by {uri} (HTTP 401) for user {username!r}: check MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD match the stack's admin_username and admin_password (run `mlflow-aws env`)"
        )
    if status == 403 and INVALID_HOST in body:
        return (
            f"host not allowed by {uri} (HTTP 403): the server's --allowed-hosts does not include {_host(uri)}; "
            "use the stack's tracking_uri output"
        )
    if status == 403:
        return (
            f"permission denied by {uri} (HTTP 403) for user {username!r}: grant it access to the experiment "
            "and registered model, or use the admin credentials"
        )
    if status == 503 and CERTIFICATE_PENDING in body:
        return (
            f"{uri} is still waiting for its TLS certificate (HTTP 503): retry in a few minutes; "
            "see README troubleshooting"
        )
    if status in PROXY_ERRORS:
        return (
            f"{uri} answers but MLflow behind it does not (HTTP {status}): it is starting or crashed; check the "
            "mlflow service on the host (sudo journalctl -u mlflow-configure -u mlflow) through the stack's "
            "ssm_session_command"
        )
    if status == 404:
        return f"{uri} answered HTTP 404: the tracking URI does not point at an MLflow server; check tracking_uri"
    excerpt = " ".join(body.split())[:120]
    return f"unexpected HTTP {status} from {uri}: {excerpt or '(empty body)'}"


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, what caused it, and the `reason` urllib3 keeps inside its retry error, without repeats."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += [arg for arg in current.args if isinstance(arg, BaseException)]
        pending += [item for item in linked if isinstance(item, BaseException)]


def _connection_cause(chain: list[BaseException]) -> str | None:
    names = {type(item).__name__ for item in chain}
    if any(isinstance(item, socket.gaierror) for item in chain) or "NameResolutionError" in names:
        return "its name does not resolve"
    if any(isinstance(item, ConnectionRefusedError) for item in chain) or any(
        "Connection refused" in str(item) for item in chain
    ):
        return "connection refused"
    if any(isinstance(item, TimeoutError) for item in chain) or names & {"ConnectTimeout", "ReadTimeout", "Timeout"}:
        return "timed out"
    if names & {"ConnectionError", "NewConnectionError", "MaxRetryError", "ProtocolError", "RemoteDisconnected"}:
        return "connection failed"
    return None


def _tls_reason(chain: list[BaseException]) -> str | None:
    for item in chain:
        if isinstance(item, ssl.SSLError):
            return str(getattr(item, "reason", None) or item)
    for item in chain:
        if type(item).__name__ == "SSLError":
            return str(item).split("(Caused by")[-1].strip(" ()")[:120]
    return None


def _retried_status(chain: list[BaseException]) -> int | None:
    """The status urllib3 gave up on after retries ("too many 502 error responses")."""
    for item in chain:
        match = _TOO_MANY.search(str(item))
        if match:
            return int(match.group(1))
    return None


def exception(error: BaseException, uri: str, username: str | None) -> str:
    """One line for any error raised while talking to the server."""
    chain = list(_chain(error))
    tls = _tls_reason(chain)
    if tls is not None:
        plain_http = any(marker in tls.lower().replace("_", " ") for marker in PLAIN_HTTP_MARKERS)
        return f"TLS failed for {uri} ({tls}): {PLAIN_HTTP_HINT if plain_http else TLS_HINT}"
    retried = _retried_status(chain)
    if retried is not None:
        return http_status(retried, "", uri, username)
    cause = _connection_cause(chain)
    if cause is not None:
        pending = f" {HTTPS_REFUSED_HINT}" if cause == "connection refused" and uri.startswith("https:") else ""
        return f"cannot reach {uri} ({cause}): {REACH_HINT}{pending}"
    status = _status_of_mlflow_error(error)
    if status is not None:
        return http_status(status, str(error), uri, username)
    first_line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first_line[:300]}"


# MLflow turns an HTTP error into an exception whose error_code names the status.
_MLFLOW_ERROR_STATUS = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "TEMPORARILY_UNAVAILABLE": 503}


def _status_of_mlflow_error(error: BaseException) -> int | None:
    code = getattr(error, "error_code", None)
    if isinstance(code, str) and code in _MLFLOW_ERROR_STATUS:
        return _MLFLOW_ERROR_STATUS[code]
    text = str(error)
    for status in (401, 403, *PROXY_ERRORS):
        if f"error code {status} " in text or f"status code {status}" in text or f"{status} Server Error" in text:
            return status
    return None
