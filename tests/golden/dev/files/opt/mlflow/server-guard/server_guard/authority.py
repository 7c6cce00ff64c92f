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
