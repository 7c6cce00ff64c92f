"""Only admins list users (basic-auth lets every user list all, with their admin flags)."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

Validators = MutableMapping[tuple[str, str], Callable[[], bool]]


def admins_only() -> bool:
    return False  # basic-auth lets admins past every validator: whoever reaches this is not one


def restrict_to_admins(validators: Validators, validator: Callable[[], bool]) -> list[tuple[str, str]]:
    """Replace `validator` wherever basic-auth uses it; returns the (path, method) keys replaced."""
    replaced = [key for key, check in validators.items() if check is validator]
    for key in replaced:
        validators[key] = admins_only
    return replaced
