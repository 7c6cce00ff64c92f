"""The host programs' settings file (layout.HOST_SETTINGS): rendered from HostSettings, read back by the
programs, and refused, key and file named in one line, before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import userdata
from host_programs import certificate_state, configure
from host_programs.settings_file import SettingsError, load
from tests.support.loopback import host_file_contents, loopback_replacements, loopback_settings, remap
from userdata import layout, programs

TLS = loopback_settings(tls="letsencrypt")


def settings_document(settings: Any = TLS) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(programs.settings_text(settings, userdata.host_programs(settings)))
    return document


def write(tmp_path: Path, document: dict[str, Any]) -> str:
    path = tmp_path / "host-settings.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_the_settings_file_is_data_only_json_with_one_section_per_program():
    document = settings_document()
    assert set(document) == {"region", configure.SECTION, certificate_state.SECTION}
    assert set(settings_document(loopback_settings())) == {"region", configure.SECTION}
    assert programs.settings_text(TLS, userdata.host_programs(TLS)) == programs.settings_text(
        TLS, userdata.host_programs(TLS))


def test_both_programs_read_the_rendered_file(tmp_path):
    path = write(tmp_path, settings_document())
    assert configure.read_settings(path).region == TLS.region
    assert certificate_state.read_settings(path).certificate_name == TLS.public_hostname


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("wait_seconds", None, "configure.wait_seconds is missing"),
    ("wait_seconds", "1200", "configure.wait_seconds must be a positive number"),
    ("wait_seconds", 0, "configure.wait_seconds must be a positive number"),
    ("schema_lock", "yes", "configure.schema_lock must be true or false"),
    ("default_permission", "ALL", "configure.default_permission must be one of NO_PERMISSIONS, READ"),
    ("env_file", "", "configure.env_file must be a non-empty string"),
    ("parameters", {"db_host": "/x"}, "configure.parameters.db_port is missing"),
])
def test_a_missing_or_bad_configure_key_is_named_with_the_file(tmp_path, key, value, problem):
    document = settings_document()
    if value is None:
        del document[configure.SECTION][key]
    else:
        document[configure.SECTION][key] = value
    path = write(tmp_path, document)
    with pytest.raises(SettingsError) as refused:
        configure.read_settings(path)
    assert str(refused.value) == f"settings file {path}: {problem}"


def test_a_missing_region_or_section_is_named(tmp_path):
    document = settings_document()
    del document["region"]
    with pytest.raises(SettingsError, match=r": region is missing$"):
        configure.read_settings(write(tmp_path, document))
    document = settings_document(loopback_settings())
    with pytest.raises(SettingsError, match=r": certificate_state is missing$"):
        certificate_state.read_settings(write(tmp_path, document))


@pytest.mark.parametrize(("parameters", "problem"), [
    ({}, "certificate_state.parameters must be a non-empty object"),
    ({"/p": []}, "certificate_state.parameters./p must be a non-empty list of non-empty strings"),
    ({"/p": ["accounts/", 3]}, "certificate_state.parameters./p must be a non-empty list of non-empty strings"),
])
def test_the_state_programs_parameters_must_each_list_what_they_hold(tmp_path, parameters, problem):
    document = settings_document()
    document[certificate_state.SECTION]["parameters"] = parameters
    path = write(tmp_path, document)
    with pytest.raises(SettingsError) as refused:
        certificate_state.read_settings(path)
    assert str(refused.value) == f"settings file {path}: {problem}"


def test_a_missing_file_or_one_that_is_not_a_json_object_is_refused(tmp_path):
    with pytest.raises(SettingsError, match=r"\(the file\) cannot be read: No such file"):
        load(str(tmp_path / "absent.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SettingsError, match=r"\(the file\) is not JSON"):
        load(str(tmp_path / "bad.json"))
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(SettingsError, match=r"\(the file\) must hold one JSON object"):
        load(str(tmp_path / "list.json"))


def test_the_configure_step_with_a_bad_settings_file_says_so_in_one_line_exits_1_and_writes_nothing(
    tmp_path, capsys
):
    document = settings_document()
    document[configure.SECTION]["env_file"] = str(tmp_path / "mlflow.env")
    document[configure.SECTION]["auth_config"] = str(tmp_path / "basic_auth.ini")
    del document[configure.SECTION]["state_file"]
    path = write(tmp_path, document)
    with pytest.raises(SystemExit) as exited:
        configure.main([], path)
    assert exited.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"mlflow-configure: FAILED: settings file {path}: configure.state_file is missing"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host-settings.json"]


def test_the_state_program_with_a_bad_settings_file_says_so_in_one_line_and_exits_non_zero(tmp_path):
    document = settings_document()
    del document[certificate_state.SECTION]["acme_directory"]
    path = write(tmp_path, document)
    with pytest.raises(SystemExit) as exited:
        certificate_state.main(["restore"], path)
    assert exited.value.code == (f"mlflow-certificate-state: settings file {path}: "
                                 "certificate_state.acme_directory is missing")


def test_the_rendered_executable_runs_the_shipped_modules_and_names_a_bad_key(tmp_path):
    """The configure step as the host runs it: its executable and the lean modules, remapped into a tree."""
    replacements = loopback_replacements(tmp_path, venv=Path(sys.prefix), mlflow_port=5001, nginx_port=8081)
    for host_path, content in host_file_contents(TLS).items():
        if host_path == layout.HOST_SETTINGS or host_path.startswith(layout.HOST_PROGRAMS_DIR):
            target = Path(remap(host_path, replacements))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(remap(content, replacements))
    executable = Path(remap(layout.CONFIGURE_SCRIPT, replacements))
    executable.parent.mkdir(parents=True, exist_ok=True)
    executable.write_text(remap(host_file_contents(TLS)[layout.CONFIGURE_SCRIPT], replacements))
    executable.chmod(0o755)
    settings_file = Path(remap(layout.HOST_SETTINGS, replacements))
    document = json.loads(settings_file.read_text())
    document[configure.SECTION]["wait_seconds"] = "soon"
    settings_file.write_text(json.dumps(document))
    result = subprocess.run([str(executable)], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"mlflow-configure: FAILED: settings file {settings_file}: configure.wait_seconds must be a positive number"]
