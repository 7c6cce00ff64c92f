"""AWS naming rules for physical names derived from the project and stack names."""

from __future__ import annotations

import re

# RDS DB instance identifiers: 1 to 63 letters, digits and hyphens.
RDS_IDENTIFIER_MAX = 63


def database_identifier(project: str, stack: str) -> str:
    """The stack's RDS instance identifier, known before the instance exists (no dependency on it): the
    Database names the instance so, the host snapshots it, the single host's launch waits for it."""
    return dns_safe(f"{project}-{stack}", RDS_IDENTIFIER_MAX)


def dns_safe(text: str, max_length: int) -> str:
    """Lower-case letters, digits and single hyphens, starting with a letter: valid for S3 and RDS names."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"m-{cleaned}"
    return cleaned[:max_length].rstrip("-")
