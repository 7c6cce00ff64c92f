"""Every nginx server block the user data writes names no nginx version and answers MLflow's failures
with nginx's generic JSON error (the runtime behaviour: tests/host/test_outage_answers.py)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from server_guard import sources
from tests.support.loopback import host_file_contents, loopback_settings, unit_directives
from userdata import layout, tls

PLAIN = loopback_settings()
TLS = dataclasses.replace(PLAIN, tls="letsencrypt")


def server_blocks(site: str) -> list[str]:
    """The text of each top-level `server { ... }` block."""
    blocks, depth, start = [], 0, 0
    for match in re.finditer(r"[{}]", site):
        if match.group() == "{":
            if depth == 0:
                start = match.start()
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                blocks.append(site[start:match.end()])
    return blocks


# (settings, site, its server blocks): the HTTPS site has its port-80 server too.
SITES = [(PLAIN, layout.NGINX_HTTP_SITE, 1), (TLS, tls.PENDING_SITE, 1), (TLS, tls.HTTPS_SITE, 2)]


@pytest.mark.parametrize(("settings", "site", "count"), SITES, ids=["http", "pending", "https"])
def test_every_server_block_hides_the_version_and_answers_failures_itself(settings, site, count):
    blocks = server_blocks(host_file_contents(settings)[site])
    assert len(blocks) == count
    for block in blocks:
        assert "server_tokens off;" in block
        assert f"include {layout.NGINX_ERRORS_SNIPPET};" in block


def test_the_error_snippet_intercepts_only_the_three_unavailable_codes():
    snippet = host_file_contents(PLAIN)[layout.NGINX_ERRORS_SNIPPET]
    assert re.findall(r"^error_page (.*);$", snippet, re.M) == ["502 503 504 @mlflow_unavailable"]
    assert '"error_code": "TEMPORARILY_UNAVAILABLE"' in snippet


def test_the_service_sets_mlflows_source_setting_the_guard_requires():
    unit = unit_directives(host_file_contents(PLAIN)[layout.UNIT_PATH])
    assert f"{sources.SOURCE_REGEX_VARIABLE}={sources.MODEL_VERSION_SOURCE_REGEX}" in unit["Environment"]
