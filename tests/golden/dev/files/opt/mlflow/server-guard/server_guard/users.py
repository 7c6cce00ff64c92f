from __future__ import annotations

from collections.abc import Callable, MutableMapping

Validators = MutableMapping[tuple[str, str], Callable[[], bool]]


def admins_only() -> bool:
    return False


def restrict_to_admins(validators: Validators, validator: Callable[[], bool]) -> list[tuple[str, str]]:
    replaced = [key for key, check in validators.items() if check is validator]
    for key in replaced:
        validators[key] = admins_only
    return replaced
