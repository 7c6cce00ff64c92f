"""Who may see whom: only admins list users.

basic-auth lets every member list all users with their admin flags (`users/list`, for a reviewer
picker). On a team server that hands an attacker the admins' names, so the guard makes the route
admins-only; basic-auth lets admins past every validator, so the replacement refuses everyone it sees.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

Validators = MutableMapping[tuple[str, str], Callable[[], bool]]


def admins_only() -> bool:
    return False


def restrict_to_admins(validators: Validators, validator: Callable[[], bool]) -> list[tuple[str, str]]:
    """Replace `validator` wherever basic-auth uses it; returns the (path, method) keys replaced."""
    replaced = [key for key, check in validators.items() if check is validator]
    for key in replaced:
        validators[key] = admins_only
    return replaced
