"""A small evaluator of IAM identity policies, for the calls no test makes against moto (Route 53's DNS-01)
and for services whose authorization moto does not model (tests/support/moto_authorization.py).

It follows AWS's evaluation logic for one identity policy
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html): a request is
allowed when some statement allows it and none denies it, otherwise denied, explicitly or not. A statement
applies when its Action (or NotAction) matches the action, case-insensitively, and its Resource (or
NotResource) the resource, case-sensitively, with `*` and `?` wildcards, and its Condition holds for the
request's context keys. Conditions: StringEquals, StringNotEquals, StringLike, ArnEquals and ArnLike, on
single values; anything else (another operator, a Principal, a policy variable) is refused with
ValueError rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any


class Outcome(Enum):
    ALLOWED = "allowed"
    EXPLICITLY_DENIED = "explicitly denied"
    IMPLICITLY_DENIED = "implicitly denied"  # no statement allows it


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _wildcard(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    if "${" in pattern:
        raise ValueError(f"policy variables are not evaluated: {pattern}")
    body = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE if ignore_case else 0)


def _matches(patterns: Any, value: str, *, ignore_case: bool) -> bool:
    return any(_wildcard(pattern, ignore_case=ignore_case).match(value) for pattern in _listed(patterns))


def _element(statement: Mapping[str, Any], name: str, value: str, *, ignore_case: bool) -> bool:
    """Whether the statement's `name` (or its Not`name`) covers `value`."""
    if name in statement:
        return _matches(statement[name], value, ignore_case=ignore_case)
    if f"Not{name}" in statement:
        return not _matches(statement[f"Not{name}"], value, ignore_case=ignore_case)
    raise ValueError(f"statement {statement.get('Sid', '')!r} has neither {name} nor Not{name}")


_OPERATORS = {
    "StringEquals": lambda wanted, actual: actual in wanted,
    "StringNotEquals": lambda wanted, actual: actual not in wanted,
    "StringLike": lambda wanted, actual: _matches(wanted, actual, ignore_case=False),
    "ArnEquals": lambda wanted, actual: actual in wanted,
    "ArnLike": lambda wanted, actual: _matches(wanted, actual, ignore_case=False),
}


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        if operator not in _OPERATORS:
            raise ValueError(f"condition operator {operator} is not evaluated here")
        for key, wanted in tests.items():
            actual = next((value for name, value in context.items() if name.lower() == key.lower()), None)
            if actual is None:
                if operator.startswith("StringNot"):
                    continue  # a negated operator holds when the key is absent
                return False
            if not _OPERATORS[operator](_listed(wanted), actual):
                return False
    return True


def _applies(statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str]) -> bool:
    if "Principal" in statement or "NotPrincipal" in statement:
        raise ValueError("an identity policy names no Principal")
    return (_element(statement, "Action", action, ignore_case=True)
            and _element(statement, "Resource", resource, ignore_case=False)
            and _condition_holds(statement.get("Condition", {}), context))


def evaluate(policy: Mapping[str, Any], action: str, resource: str,
             context: Mapping[str, str] | None = None) -> Outcome:
    """What `policy` (a policy document) says to `action` on `resource` with these condition keys."""
    statements = policy["Statement"]
    applying = [statement for statement in ([statements] if isinstance(statements, dict) else statements)
                if _applies(statement, action, resource, context or {})]
    if any(statement["Effect"] == "Deny" for statement in applying):
        return Outcome.EXPLICITLY_DENIED
    if any(statement["Effect"] == "Allow" for statement in applying):
        return Outcome.ALLOWED
    return Outcome.IMPLICITLY_DENIED
