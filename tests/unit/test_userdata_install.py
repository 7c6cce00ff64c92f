"""The rendered install script, run with bash on this machine against a stand-in uv.

mlflow.service runs it before every start: it must install once, skip at once when the venv holds
the exact requirements, install again when they change, retry a failing download a bounded number of
times, and never mark a venv complete that is not.
"""

from __future__ import annotations

import dataclasses
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

import server_guard
from bench import host_install
from tests.support.loopback import loopback_settings
from userdata import guard, layout, pins, scripts

# Records each call; `pip install` fails while the file `fail-pip` holds a positive count.
STAND_IN_UV = """#!/bin/bash
echo "$*" >> "$(dirname "$0")/../../calls"
echo "PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX-unset} HOME=$HOME" >> "$(dirname "$0")/../../uv-environment"
if [[ $1 == venv ]]; then mkdir -p "${@: -1}/bin" && ln -sf /bin/true "${@: -1}/bin/python"; exit 0; fi
failures=$(dirname "$0")/../../fail-pip
if [[ -s $failures ]] && (( $(<"$failures") > 0 )); then echo $(( $(<"$failures") - 1 )) > "$failures"; exit 1; fi
exit 0
"""


def install_script(root: Path, mlflow_version: str = "3.17.2") -> Path:
    settings = dataclasses.replace(loopback_settings(), mlflow_version=mlflow_version)
    script = host_install.write_install_script(root, cache=root / "cache", settings=settings)
    # The retries' waits, shortened: the count of tries is what is under test, not the clock.
    script.write_text(
        script.read_text().replace(f"sleep $((try * {scripts.INSTALL_RETRY_DELAY_SECONDS}))", "sleep 0")
    )
    uv = root / "uv" / "bin" / "uv"
    uv.parent.mkdir(parents=True, exist_ok=True)
    uv.write_text(STAND_IN_UV)
    uv.chmod(uv.stat().st_mode | stat.S_IXUSR)
    return script


def run(script: Path, env: dict[str, str] | None = None, umask: str = "022") -> subprocess.CompletedProcess[str]:
    # As the unit runs it: the unit's UMask and Environment= lines apply to the "+" command too.
    return subprocess.run(["bash", "-c", f"umask {umask}; exec {shlex.quote(str(script))}"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def calls(root: Path) -> list[str]:
    path = root / "calls"
    return path.read_text().splitlines() if path.exists() else []


def guard_install_words(root: Path) -> list[str]:
    """The end of the install call: the server guard, from the files the user data writes."""
    return ["--reinstall-package", server_guard.DISTRIBUTION, str(root / "server-guard")]


def guard_marker_words() -> list[str]:
    return [server_guard.DISTRIBUTION, f"sha256:{guard.digest('basic')}"]


def test_a_first_run_makes_the_venv_installs_the_pins_and_marks_it_complete(tmp_path: Path) -> None:
    result = run(install_script(tmp_path))
    assert result.returncode == 0, result.stderr
    venv_call, install_call = calls(tmp_path)
    assert venv_call.startswith("venv ") and install_call.startswith("pip install ")
    wanted = [*pins.resolution_options("3.17.2"), *pins.python_requirements("3.17.2")]
    assert shlex.split(install_call)[-len(wanted) - 3:] == [*wanted, *guard_install_words(tmp_path)]
    assert (tmp_path / "server-guard" / "pyproject.toml").read_text() == guard.pyproject()
    marker = tmp_path / "venv" / layout.INSTALL_MARKER_NAME
    assert sorted(marker.read_text().split()) == sorted([*wanted, *guard_marker_words()])


def test_a_changed_server_guard_installs_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run(install_script(tmp_path))
    installs = len(calls(tmp_path))
    monkeypatch.setattr(guard, "digest", lambda auth=None: "0" * 64)  # what any edit of server_guard/ changes
    assert run(install_script(tmp_path)).returncode == 0
    assert len(calls(tmp_path)) == installs + 1
    assert shlex.split(calls(tmp_path)[-1])[-3:] == guard_install_words(tmp_path)
    assert (tmp_path / "venv" / layout.INSTALL_MARKER_NAME).read_text().split()[-1] == "sha256:" + "0" * 64


def test_the_tested_release_resolves_as_the_tests_did_and_another_as_pypi_is(tmp_path: Path) -> None:
    run(install_script(tmp_path / "tested", pins.TESTED_MLFLOW_VERSION))
    run(install_script(tmp_path / "other", "3.18.0"))
    (tested,) = [shlex.split(c) for c in calls(tmp_path / "tested") if c.startswith("pip install")]
    (other,) = [shlex.split(c) for c in calls(tmp_path / "other") if c.startswith("pip install")]
    assert tested[tested.index("--exclude-newer") + 1] == pins.RESOLVED_AS_OF
    assert "--exclude-newer" not in other


def test_a_complete_venv_is_left_alone_without_touching_the_network(tmp_path: Path) -> None:
    script = install_script(tmp_path)
    run(script)
    before = calls(tmp_path)
    result = run(script)
    assert result.returncode == 0 and result.stderr == ""
    assert calls(tmp_path) == before


def test_other_requirements_install_again(tmp_path: Path) -> None:
    run(install_script(tmp_path, "3.17.2"))
    assert run(install_script(tmp_path, "3.18.0")).returncode == 0
    assert calls(tmp_path)[-1].startswith("pip install ") and "mlflow[auth]==3.18.0" in calls(tmp_path)[-1]
    marker = tmp_path / "venv" / layout.INSTALL_MARKER_NAME
    assert marker.read_text().split() == [*pins.python_requirements("3.18.0"), *guard_marker_words()]
    assert not [c for c in calls(tmp_path) if "3.18.0" in c and "--exclude-newer" in c]


def test_the_venv_is_readable_by_the_service_user_and_root_leaves_the_services_directories_alone(
    tmp_path: Path,
) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPYCACHEPREFIX": str(tmp_path / "service-cache"),
           "HOME": str(tmp_path / "service-home")}
    assert run(install_script(tmp_path), env=env, umask="0077").returncode == 0
    for path in (tmp_path / "venv", tmp_path / "venv" / "bin", tmp_path / "venv" / layout.INSTALL_MARKER_NAME):
        assert path.stat().st_mode & 0o004, f"{path} is not world-readable"
    assert (tmp_path / "uv-environment").read_text().split() == ["PYTHONPYCACHEPREFIX=unset", "HOME=/root"] * 2


def test_a_failing_download_is_retried_and_then_succeeds(tmp_path: Path) -> None:
    script = install_script(tmp_path)
    (tmp_path / "fail-pip").write_text(str(scripts.INSTALL_ATTEMPTS - 1))
    result = run(script)
    assert result.returncode == 0, result.stderr
    assert len([call for call in calls(tmp_path) if call.startswith("pip install")]) == scripts.INSTALL_ATTEMPTS
    assert (tmp_path / "venv" / layout.INSTALL_MARKER_NAME).exists()


def test_a_download_that_keeps_failing_fails_the_start_and_marks_nothing(tmp_path: Path) -> None:
    script = install_script(tmp_path)
    (tmp_path / "fail-pip").write_text(str(scripts.INSTALL_ATTEMPTS))
    result = run(script)
    assert result.returncode != 0
    assert f"attempt {scripts.INSTALL_ATTEMPTS} of {scripts.INSTALL_ATTEMPTS} failed" in result.stderr
    assert not (tmp_path / "venv" / layout.INSTALL_MARKER_NAME).exists()
    # The next start of the service tries again, and then succeeds.
    assert run(script).returncode == 0
    assert (tmp_path / "venv" / layout.INSTALL_MARKER_NAME).exists()
