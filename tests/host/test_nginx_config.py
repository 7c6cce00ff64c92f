"""`nginx -t` accepts the rendered upstream, proxy snippet and plain-HTTP site (remapped into a
temporary tree by the loopback harness, as the loopback stack runs them)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.loopback import LoopbackStack
from userdata import layout

pytestmark = pytest.mark.host


@pytest.fixture
def unstarted_stack():
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (Debian package nginx)")
    stack = LoopbackStack(start=False)
    try:
        stack.write_host_files()
        yield stack
    finally:
        stack.close()


def nginx_test(stack: LoopbackStack) -> subprocess.CompletedProcess[str]:
    conf = stack.nginx_config([layout.NGINX_HTTP_SITE])
    return subprocess.run(stack.nginx_command(conf, "-t"), capture_output=True, text=True, timeout=60, check=False)


def test_nginx_accepts_the_rendered_site(unstarted_stack):
    result = nginx_test(unstarted_stack)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr


def test_nginx_rejects_a_broken_snippet(unstarted_stack):
    snippet = unstarted_stack.path(layout.NGINX_PROXY_SNIPPET)
    snippet.write_text(snippet.read_text().replace("client_max_body_size 0;", "client_max_body_size zero;"))
    result = nginx_test(unstarted_stack)
    assert result.returncode != 0
    assert "client_max_body_size" in result.stderr
