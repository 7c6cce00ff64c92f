"""Suite-wide rules.

Tests that need Debian packages skip on a laptop without them, with the reason. With CI=true (as
GitHub Actions sets it) or MLFLOW_AWS_NO_SKIPS=1 (as `.ci/run` sets it), a skip is reported as a
failure instead, so a missing package can never turn into a silently green run.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest


def skips_are_failures() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("MLFLOW_AWS_NO_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and skips_are_failures() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {reason}"
