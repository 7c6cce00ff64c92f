"""AWS naming rules for physical names derived from the project and stack names."""

from __future__ import annotations

import re


def dns_safe(text: str, max_length: int) -> str:
    """Lower-case letters, digits and single hyphens, starting with a letter: valid for S3 and RDS names."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"m-{cleaned}"
    return cleaned[:max_length].rstrip("-")
