"""The filter-pattern evaluator the access log tests use, against the documented rules it implements."""

from __future__ import annotations

import pytest

from tests.support.log_filter_patterns import PatternError, matches, metric_value


@pytest.mark.parametrize(("pattern", "message", "expected"), [
    ("{ $.status >= 500 }", '{"status": 502}', True),
    ("{ $.status >= 500 }", '{"status": 499}', False),
    ("{ $.status >= 500 }", '{"status": "502"}', False),  # numeric operators compare JSON numbers only
    ("{ $.status >= 500 }", '{"code": 502}', False),  # no such field
    ("{ $.status >= 500 }", "502 Bad Gateway", False),  # not JSON
    ("{ $.method = \"GET\" && $.status = 200 }", '{"method": "GET", "status": 200}', True),
    ("{ $.method = GET || $.status = 201 }", '{"method": "POST", "status": 201}', True),
    ("{ ($.status = 200 || $.status = 204) && $.path = \"/api/*\" }", '{"status": 204, "path": "/api/x"}', True),
    ("{ $.path != \"/health\" }", '{"path": "/health"}', False),
    ("{ $.a.b > 1 }", '{"a": {"b": 2}}', True),
])
def test_json_patterns_follow_cloudwatch_logs_rules(pattern: str, message: str, expected: bool) -> None:
    assert matches(pattern, message) is expected


@pytest.mark.parametrize("pattern", ["$.status >= 500", "{ $.status >= }", "{ $.status ~ 1 }", "{ ($.a = 1 }"])
def test_a_malformed_pattern_is_an_error_not_a_silent_match(pattern: str) -> None:
    with pytest.raises(PatternError):
        matches(pattern, '{"status": 500, "a": 1}')


def test_a_selector_value_is_published_as_its_number() -> None:
    assert metric_value("$.request_time", '{"request_time": 0.125}') == 0.125
    assert metric_value("1", '{"request_time": 0.125}') == 1.0
