"""The loopback harness's remapping (tests/support/loopback.py), which every host test relies on to run
the rendered files unchanged except for paths and ports."""

from __future__ import annotations

from pathlib import Path

from tests.support.loopback import loopback_replacements, remap, unit_directives
from userdata import layout

REPLACEMENTS = loopback_replacements(Path("/tmp/t"), venv=Path("/venv"), mlflow_port=4242, nginx_port=8080)


def test_remap_replaces_in_one_pass_longest_key_first():
    assert remap("a ab abc", {"a": "ab", "ab": "X", "abc": "Y"}) == "ab X Y"


def test_host_paths_move_into_the_tree_and_the_venv_is_replaced():
    assert remap(f"{layout.ENV_FILE} {layout.VENV_DIR}/bin/mlflow", REPLACEMENTS) == (
        "/tmp/t/etc/mlflow/mlflow.env /venv/bin/mlflow")


def test_ports_move_only_where_they_are_ports():
    text = "listen 80 default_server;\nserver 127.0.0.1:5000;\n--port 5000 --workers 5000\nlisten 8000;"
    assert remap(text, REPLACEMENTS) == (
        "listen 127.0.0.1:8080 default_server;\nserver 127.0.0.1:4242;\n--port 4242 --workers 5000\nlisten 8000;")


def test_unit_directives_collects_repeated_keys_in_order():
    unit = "[Service]\n# comment\nEnvironment=A=1\nEnvironment=B=2\nExecStart=/bin/true\n"
    assert unit_directives(unit) == {"Environment": ["A=1", "B=2"], "ExecStart": ["/bin/true"]}


def test_the_host_programs_and_their_settings_file_move_into_the_tree():
    text = f"sys.path.insert(0, {layout.HOST_PROGRAMS_DIR!r}) {layout.HOST_SETTINGS} {layout.CONFIG_DIR}/x"
    assert remap(text, REPLACEMENTS) == (
        "sys.path.insert(0, '/tmp/t/usr/local/lib/mlflow-aws') /tmp/t/etc/mlflow-aws/host-settings.json "
        "/tmp/t/etc/mlflow/x")
