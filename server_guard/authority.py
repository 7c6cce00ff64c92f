"""What the guard's rules ask of the auth app under them, in one small interface, so the same rules can
stand on MLflow's basic-auth (server_guard.basic_auth) or another auth app.

`login` reads the credentials a request offers: None when it offers none, else the user name it claims
and a check of the password (the authenticated user name, or None). Splitting the two lets the login
throttle decide before any password is checked. `needs_login` is False for what the auth app serves
without one (/health, static files, MLflow's public routes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Scope = dict[str, Any]
Login = tuple[str, Callable[[], str | None]]


@dataclass(frozen=True)
class Authority:
    login: Callable[[Scope], Login | None]
    needs_login: Callable[[Scope], bool]
    is_admin: Callable[[str], bool]
    may_edit_experiment: Callable[[str, str], bool]
