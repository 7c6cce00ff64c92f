"""CloudWatch Logs filter patterns on JSON log events, for the forms this stack's metric filters use.

moto stores metric filters but does not evaluate JSON patterns (it treats them as matching everything),
so the access log's patterns are evaluated here, by the rules of "Filter pattern syntax for metric
filters, subscription filters, filter log events" (Amazon CloudWatch Logs User Guide), JSON section:

    { SELECTOR EQUALITY_OPERATOR STRING }     = or !=, the string quoted or bare, * as a wildcard
    { SELECTOR NUMERIC_OPERATOR NUMBER }      =, !=, <, >, <=, >=, on JSON numbers only
    expressions joined by && and ||, grouped with parentheses; a selector is $.field(.field...)

An event that is not a JSON object matches no JSON pattern. A selector that names no field does not match.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

_TOKEN = re.compile(r'\s*(\|\||&&|\(|\)|<=|>=|!=|=|<|>|"(?:[^"\\]|\\.)*"|[^\s()=!<>&|"]+)')


class PatternError(ValueError):
    pass


def _tokens(pattern: str) -> list[str]:
    text = pattern.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise PatternError(f"not a JSON pattern: {pattern!r}")
    body, tokens, position = text[1:-1], [], 0
    while body[position:].strip():
        match = _TOKEN.match(body, position)
        if not match:
            raise PatternError(f"cannot read {body[position:]!r} in {pattern!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _select(event: Any, selector: str) -> tuple[bool, Any]:
    if not selector.startswith("$."):
        raise PatternError(f"not a selector: {selector!r}")
    value = event
    for name in selector[2:].split("."):
        if not isinstance(value, dict) or name not in value:
            return False, None
        value = value[name]
    return True, value


def _compare(event: Any, selector: str, operator: str, operand: str) -> bool:
    found, value = _select(event, selector)
    if not found:
        return False
    if operand.startswith('"'):
        text = json.loads(operand)
        if operator not in ("=", "!="):
            raise PatternError(f"{operator} compares numbers, not {operand}")
        equal = isinstance(value, str) and fnmatch.fnmatchcase(value, text)
        return equal if operator == "=" else not equal
    try:
        number = float(operand)
    except ValueError:
        if operator not in ("=", "!="):
            raise PatternError(f"{operator} compares numbers, not {operand!r}") from None
        equal = isinstance(value, str) and fnmatch.fnmatchcase(value, operand)
        return equal if operator == "=" else not equal
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return {"=": value == number, "!=": value != number, "<": value < number, ">": value > number,
            "<=": value <= number, ">=": value >= number}[operator]


def matches(pattern: str, message: str) -> bool:
    """Whether a log event whose message is `message` matches `pattern`."""
    tokens = _tokens(pattern)
    try:
        event = json.loads(message)
    except json.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        return False

    def expression(index: int) -> tuple[bool, int]:
        result, index = conjunction(index)
        while index < len(tokens) and tokens[index] == "||":
            right, index = conjunction(index + 1)
            result = result or right
        return result, index

    def conjunction(index: int) -> tuple[bool, int]:
        result, index = term(index)
        while index < len(tokens) and tokens[index] == "&&":
            right, index = term(index + 1)
            result = result and right
        return result, index

    def term(index: int) -> tuple[bool, int]:
        if tokens[index] == "(":
            result, index = expression(index + 1)
            if index >= len(tokens) or tokens[index] != ")":
                raise PatternError(f"unbalanced parentheses in {pattern!r}")
            return result, index + 1
        if index + 3 > len(tokens):
            raise PatternError(f"incomplete comparison in {pattern!r}")
        selector, operator, operand = tokens[index:index + 3]
        if operator not in ("=", "!=", "<", ">", "<=", ">="):
            raise PatternError(f"{operator!r} is not a comparison in {pattern!r}")
        return _compare(event, selector, operator, operand), index + 3

    result, end = expression(0)
    if end != len(tokens):
        raise PatternError(f"unexpected {tokens[end]!r} in {pattern!r}")
    return result


def metric_value(value: str, message: str) -> float:
    """What a metric filter publishes for a matching event: a number, or the number a selector names."""
    if value.startswith("$."):
        found, selected = _select(json.loads(message), value)
        if not found or isinstance(selected, bool) or not isinstance(selected, (int, float)):
            raise PatternError(f"{value} names no number in {message!r}")
        return float(selected)
    return float(value)
