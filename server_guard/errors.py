"""No SQL and no password hash in any error answer (issue 23, hole 6).

MLflow's SQL stores put the database driver's exception in their messages: creating an experiment (or a
user) whose name exists answers with psycopg2's error, the whole INSERT and its parameters, a password
hash among them. The guard keeps an error answer's status and error_code and MLflow's own sentence up
to the driver's text ("Experiment(name=x) already exists."), replaces the rest with a reference, and
logs the whole original under that reference for the journal.
"""

from __future__ import annotations

import json
import logging
import secrets

logger = logging.getLogger("mlflow.server_guard")

# Where the driver's text starts in MLflow's messages ("...already exists. Error: (psycopg2.errors...")
# and what only database internals and werkzeug's password hashes contain.
DRIVER_TEXT = (" Error: (", "(psycopg2.", "(sqlalchemy.", "[SQL: ", "[parameters: ", "sqlalche.me/",
               "pbkdf2:sha256:", "scrypt:")
GENERIC = "The request failed in the server's database."
# Error answers are short; one longer than this is not read whole, it is replaced.
MAX_ERROR_BYTES = 1 << 20


def leaks(text: str) -> bool:
    return any(marker in text for marker in DRIVER_TEXT)


def own_sentence(message: str) -> str:
    """MLflow's words before the first of the driver's."""
    return message[:min((message.find(marker) for marker in DRIVER_TEXT if marker in message),
                        default=len(message))].strip()


def scrubbed(status: int, body: bytes, *, whole: bool = True) -> bytes | None:
    """The body to send instead of an error answer's `body` (`whole`: not cut at MAX_ERROR_BYTES), or
    None to send it as it is."""
    text = body.decode("utf-8", "replace")
    if whole and not leaks(text):
        return None
    reference = secrets.token_hex(6)
    logger.warning("server guard: error answer %s (HTTP %s) replaced; it read: %s", reference, status, text)
    try:
        document = json.loads(text)
        kept = {key: value for key, value in document.items() if not leaks(json.dumps(value))}
    except (ValueError, AttributeError):
        document, kept = {}, {}
    sentence = own_sentence(str(document.get("message", "")))
    kept.setdefault("error_code", "INTERNAL_ERROR")
    kept["message"] = f"{sentence or GENERIC} Details are in the server's log under reference {reference}."
    return json.dumps(kept).encode()
