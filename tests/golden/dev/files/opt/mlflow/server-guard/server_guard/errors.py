from __future__ import annotations

import json
import logging
import secrets

logger = logging.getLogger("mlflow.server_guard")

DRIVER_TEXT = (" Error: (", "(psycopg2.", "(sqlalchemy.", "[SQL: ", "[parameters: ", "sqlalche.me/",
               "pbkdf2:sha256:", "scrypt:")
GENERIC = "The request failed in the server's database."
MAX_ERROR_BYTES = 1 << 20


def leaks(text: str) -> bool:
    return any(marker in text for marker in DRIVER_TEXT)


def own_sentence(message: str) -> str:
    return message[:min((message.find(marker) for marker in DRIVER_TEXT if marker in message),
                        default=len(message))].strip()


def scrubbed(status: int, body: bytes, *, whole: bool = True) -> bytes | None:
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
