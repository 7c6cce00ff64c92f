"""`scripts/deploy` on a machine that reaches only a package index: every installer it runs fails with what
could not be downloaded, from where, and two ways around it, within bounded time.

`curl` is a stand-in on PATH that serves files for the hosts a test lets through and fails for the others
as real curl does: a resolver error (exit 6 and curl's message), or a firewall that drops packets (it waits
until the --connect-timeout it was given, and without one hangs far longer than any test allows). PATH holds
no uv and no pulumi unless a test's installer puts them into the temporary HOME. Nothing touches the network,
~/.pulumi, ~/.local or the project's .venv.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def setting(pattern: str) -> str:
    """A version pinned in scripts/_setup.sh."""
    (value,) = re.findall(pattern, (REPO / "scripts" / "_setup.sh").read_text(), flags=re.M)
    return str(value)


UV_VERSION = setting(r'^UV_VERSION="\$\{UV_VERSION:-([0-9.]+)\}"')
PULUMI_VERSION = setting(r'^PULUMI_VERSION="\$\{PULUMI_VERSION:-([0-9.]+)\}"')
PULUMI_MIN_VERSION = setting(r'^PULUMI_MIN_VERSION="([0-9.]+)"')
UV_INSTALLER = f"https://astral.sh/uv/{UV_VERSION}/install.sh"
PULUMI_INSTALLER = "https://get.pulumi.com"
RUN_TIMEOUT_SECONDS = 60
# The stand-in curl without a connect timeout waits this long: longer than a bounded run may take.
HANG_SECONDS = 40

CURL_STAND_IN = r"""#!/usr/bin/env bash
# A stand-in for curl: records its arguments; serves $CURL_SERVE_DIR/<host> when it exists, else fails
# as $CURL_FAILURE says: "resolve" (no DNS) or "drop" (a firewall that drops packets).
printf 'curl %s\n' "$*" >> "$STUB_LOG"
url="" output="" connect_timeout="" max_time=""
while [ $# -gt 0 ]; do
  case "$1" in
    --connect-timeout) connect_timeout="$2"; shift ;;
    --max-time | -m) max_time="$2"; shift ;;
    --output | -o) output="$2"; shift ;;
    --proto) shift ;;
    -*) ;;
    *) url="$1" ;;
  esac
  shift
done
# The installers' curl reads its bounds from $CURL_HOME/.curlrc, as real curl does.
if [ -n "${CURL_HOME:-}" ] && [ -f "$CURL_HOME/.curlrc" ]; then
  connect_timeout="${connect_timeout:-$(sed -n 's/^connect-timeout = //p' "$CURL_HOME/.curlrc")}"
  max_time="${max_time:-$(sed -n 's/^max-time = //p' "$CURL_HOME/.curlrc")}"
fi
host="${url#*://}"
host="${host%%/*}"
if [ -f "$CURL_SERVE_DIR/$host" ]; then
  cp "$CURL_SERVE_DIR/$host" "${output:-/dev/stdout}"
  exit 0
fi
case "${CURL_FAILURE:-resolve}" in
  drop)
    if [ -z "$connect_timeout" ] || [ -z "$max_time" ]; then
      sleep "$HANG_SECONDS"
      echo "curl: hung without --connect-timeout and --max-time" >&2
      exit 99
    fi
    sleep 1
    echo "curl: (28) Failed to connect to $host port 443 after ${connect_timeout}000 ms: Timeout was reached" >&2
    exit 28 ;;
  *)
    echo "curl: (6) Could not resolve host: $host" >&2
    exit 6 ;;
esac
"""

# What the official installers do, reduced to their downloads: fetch the release with curl (bounded by
# the CURL_HOME the scripts give them), then put the program into the temporary HOME.
UV_INSTALLER_STAND_IN = f"""#!/bin/sh
echo "uv-installer CURL_HOME=$CURL_HOME UV_NO_MODIFY_PATH=$UV_NO_MODIFY_PATH" >> "$STUB_LOG"
sed 's/^/curlrc: /' "$CURL_HOME/.curlrc" >> "$STUB_LOG"
curl --fail --location --output "$HOME/uv.tar.gz" \\
  https://github.com/astral-sh/uv/releases/download/{UV_VERSION}/uv-x86_64-unknown-linux-gnu.tar.gz || exit 1
mkdir -p "$HOME/.local/bin" && cp "$STUB_DIR/uv-program" "$HOME/.local/bin/uv"
"""
PULUMI_INSTALLER_STAND_IN = f"""#!/bin/sh
echo "pulumi-installer $* CURL_HOME=$CURL_HOME" >> "$STUB_LOG"
release=https://github.com/pulumi/pulumi/releases/download/v{PULUMI_VERSION}
curl --fail --location --output "$HOME/pulumi.tar.gz" "$release/pulumi-v{PULUMI_VERSION}-linux-x64.tar.gz" || exit 1
mkdir -p "$HOME/.pulumi/bin" && cp "$STUB_DIR/pulumi-program" "$HOME/.pulumi/bin/pulumi"
"""
UV_PROGRAM = """#!/usr/bin/env bash
echo "uv $*" >> "$STUB_LOG"
"""
# Enough of the CLI to pass the version check and the login; `config get aws:region` then ends the run.
PULUMI_PROGRAM = """#!/usr/bin/env bash
echo "pulumi $*" >> "$STUB_LOG"
case "$*" in
  version) echo v3.272.0 ;;
  "stack ls --json") echo "[]" ;;
  "config get aws:region") exit 1 ;;
esac
exit 0
"""


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def path_without(directory: Path, names: set[str]) -> str:
    """This machine's system PATH without the programs `names`: a directory that holds one of them is
    replaced by a directory of links to everything else in it. python3 is the one running the tests."""
    entries = []
    for index, original in enumerate(["/usr/local/bin", "/usr/bin", "/bin"]):
        source = Path(original)
        if not source.is_dir():
            continue
        if not any((source / name).exists() for name in names):
            entries.append(original)
            continue
        farm = directory / f"path-{index}"
        farm.mkdir()
        for item in source.iterdir():
            if item.name not in names:
                (farm / item.name).symlink_to(item)
        entries.append(str(farm))
    python = directory / "python"
    python.mkdir()
    (python / "python3").symlink_to(os.path.realpath(sys.executable))
    return os.pathsep.join([str(python), *entries])


@dataclass
class Machine:
    """A temporary HOME, stand-ins and a PATH without uv and pulumi, for running a copy of the scripts."""

    root: Path
    stubs: Path
    served: Path
    log: Path
    env: dict[str, str]

    def serve(self, host: str, text: str) -> None:
        (self.served / host).write_text(text)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def curl_calls(self) -> list[str]:
        return [call for call in self.calls() if call.startswith("curl ")]

    def run(self, repo: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
        """scripts/deploy of `repo`; its whole process group is killed if it outlives RUN_TIMEOUT_SECONDS."""
        started = time.monotonic()
        process = subprocess.Popen(
            [str(repo / "scripts" / "deploy"), *args], cwd=repo, env={**self.env, **env},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"scripts/deploy still ran after {RUN_TIMEOUT_SECONDS} s: a download is not bounded")
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        return result, time.monotonic() - started


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    stubs, served, home = tmp_path / "stubs", tmp_path / "served", tmp_path / "home"
    for directory in (stubs, served, home):
        directory.mkdir()
    _executable(stubs / "curl", CURL_STAND_IN)
    _executable(stubs / "uv-program", UV_PROGRAM)
    _executable(stubs / "pulumi-program", PULUMI_PROGRAM)
    log = tmp_path / "calls.log"
    env = {
        "PATH": os.pathsep.join([str(stubs), path_without(tmp_path, {"uv", "uvx", "pulumi", "curl"})]),
        "HOME": str(home),
        "TMPDIR": str(tmp_path),
        "LANG": "C.UTF-8",
        "STUB_LOG": str(log),
        "STUB_DIR": str(stubs),
        "CURL_SERVE_DIR": str(served),
        "HANG_SECONDS": str(HANG_SECONDS),
        "PULUMI_CONFIG_PASSPHRASE": "correct horse",
    }
    return Machine(tmp_path, stubs, served, log, env)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the scripts, whose .venv is the one running the tests (never written: uv is a stand-in)."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", copy / "scripts")
    (copy / ".venv").symlink_to(Path(sys.prefix))
    return copy


def with_uv(machine: Machine) -> None:
    shutil.copy(machine.stubs / "uv-program", machine.stubs / "uv")


def assert_proxy_advice(stderr: str) -> None:
    assert "Two ways around it:" in stderr
    assert "curl honours HTTPS_PROXY (or https_proxy) and ALL_PROXY" in stderr and "NO_PROXY" in stderr
    assert "export HTTPS_PROXY=http://proxy.example.com:3128" in stderr


def assert_uv_alternative(stderr: str) -> None:
    assert f"python3 -m pip install --user uv=={UV_VERSION}" in stderr
    assert f"pipx install uv=={UV_VERSION}" in stderr


def assert_pulumi_alternative(stderr: str) -> None:
    assert f"any Pulumi CLI from {PULUMI_MIN_VERSION} up works" in stderr
    assert f"https://github.com/pulumi/pulumi/releases/tag/v{PULUMI_VERSION}" in stderr
    assert "~/.pulumi/bin" in stderr and "--strip-components=1" in stderr


# ---------------------------------------------------------------- uv


def test_uv_installer_that_cannot_be_resolved_says_what_from_where_and_two_ways_around(machine, repo):
    result, _ = machine.run(repo, "--yes")
    assert result.returncode != 0
    assert f"error: could not download uv's installer from {UV_INSTALLER}" in result.stderr
    assert "curl: (6) Could not resolve host: astral.sh" in result.stderr
    assert "the host's name does not resolve" in result.stderr
    assert_proxy_advice(result.stderr)
    assert_uv_alternative(result.stderr)


def test_every_download_is_bounded_in_connect_and_total_time(machine, repo):
    result, elapsed = machine.run(repo, "--yes", CURL_FAILURE="drop")
    assert result.returncode != 0
    (call,) = machine.curl_calls()
    assert "--connect-timeout 20" in call and "--max-time 600" in call
    assert "curl: (28) Failed to connect to astral.sh port 443" in result.stderr
    assert "no answer within the time limit (connect 20 s, whole download 600 s)" in result.stderr
    assert elapsed < HANG_SECONDS


def test_uv_installer_whose_own_download_fails_names_github_and_the_ways_around(machine, repo):
    machine.serve("astral.sh", UV_INSTALLER_STAND_IN)
    result, _ = machine.run(repo, "--yes")
    assert result.returncode != 0
    assert "curl: (6) Could not resolve host: github.com" in result.stderr  # the installer's own message
    assert f"uv's installer (from {UV_INSTALLER}) failed: it downloads uv {UV_VERSION} from" in result.stderr
    assert f"https://github.com/astral-sh/uv/releases/download/{UV_VERSION}/" in result.stderr
    assert_proxy_advice(result.stderr)
    assert_uv_alternative(result.stderr)


def test_the_installers_own_downloads_are_bounded_too(machine, repo):
    machine.serve("astral.sh", UV_INSTALLER_STAND_IN)
    result, elapsed = machine.run(repo, "--yes", CURL_FAILURE="drop")
    assert result.returncode != 0
    assert "curl: (28) Failed to connect to github.com port 443 after 20000 ms" in result.stderr
    assert elapsed < HANG_SECONDS


def test_an_installer_gets_the_users_own_curl_settings_then_the_bounds(machine, repo):
    (Path(machine.env["HOME"]) / ".curlrc").write_text("proxy = http://proxy.example.com:3128\n")
    machine.serve("astral.sh", UV_INSTALLER_STAND_IN)
    machine.run(repo, "--yes")
    calls = machine.calls()
    installer = next(call for call in calls if call.startswith("uv-installer "))
    assert "UV_NO_MODIFY_PATH=1" in installer
    curlrc = [call.removeprefix("curlrc: ") for call in calls if call.startswith("curlrc: ")]
    assert [line for line in curlrc if line] == [
        "proxy = http://proxy.example.com:3128", "connect-timeout = 20", "max-time = 600",
    ]
    curl_home = Path(installer.split("CURL_HOME=")[1].split()[0])
    assert not curl_home.exists(), "the scripts' download directory outlived them"


def test_missing_uv_and_pulumi_are_installed_by_their_installers_and_the_deploy_goes_on(machine, repo):
    machine.serve("astral.sh", UV_INSTALLER_STAND_IN)
    machine.serve("get.pulumi.com", PULUMI_INSTALLER_STAND_IN)
    machine.serve("github.com", "release archive")
    result, _ = machine.run(repo, "--yes")
    calls = machine.calls()
    assert f"pulumi-installer --version {PULUMI_VERSION} --no-edit-path" in " ".join(calls)
    assert any(call.startswith("uv pip install") for call in calls)  # the uv the installer put in ~/.local/bin
    assert any(call.startswith("pulumi login") for call in calls)  # the pulumi it put in ~/.pulumi/bin
    assert "aws:region is not set" in result.stderr  # where this stand-in pulumi ends the run


# ---------------------------------------------------------------- the Pulumi CLI


def test_pulumi_installer_that_cannot_be_resolved_says_how_to_install_the_cli_by_hand(machine, repo):
    with_uv(machine)
    result, _ = machine.run(repo, "--yes")
    assert result.returncode != 0
    assert f"error: could not download the Pulumi CLI's installer from {PULUMI_INSTALLER}" in result.stderr
    assert "curl: (6) Could not resolve host: get.pulumi.com" in result.stderr
    assert_proxy_advice(result.stderr)
    assert_pulumi_alternative(result.stderr)
    (call,) = machine.curl_calls()
    assert "--connect-timeout 20" in call and "--max-time 600" in call


def test_pulumi_installer_whose_own_download_fails_names_where_it_downloads_from(machine, repo):
    with_uv(machine)
    machine.serve("get.pulumi.com", PULUMI_INSTALLER_STAND_IN)
    result, _ = machine.run(repo, "--yes")
    assert result.returncode != 0
    assert f"the Pulumi CLI's installer (from {PULUMI_INSTALLER}) failed: it downloads pulumi-v{PULUMI_VERSION}-" in (
        result.stderr)
    assert "https://github.com/pulumi/pulumi/releases or https://get.pulumi.com/releases/sdk/" in result.stderr
    assert_proxy_advice(result.stderr)
    assert_pulumi_alternative(result.stderr)


def test_without_curl_the_other_way_to_install_uv_is_given(machine, repo):
    (machine.stubs / "curl").unlink()
    result, _ = machine.run(repo, "--yes")
    assert result.returncode != 0
    assert "uv is missing and so is curl to install it" in result.stderr
    assert_uv_alternative(result.stderr)


# ---------------------------------------------------------------- real curl reads the installers' bounds


@pytest.mark.host
def test_real_curl_stops_at_the_bounds_the_installers_are_given(tmp_path: Path):
    if not shutil.which("curl"):
        pytest.skip("curl not installed (Debian package: curl)")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".curlrc").write_text("user-agent = the-users-own\n")
    with socket.socket() as listener:  # accepts, never answers: only --max-time ends the wait
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        script = (
            f'. "{REPO}/scripts/_setup.sh"; DOWNLOAD_CONNECT_TIMEOUT=1; DOWNLOAD_MAX_TIME=2; make_download_dir; '
            f'home="$(installer_curl_home)"; cat "$home/.curlrc"; CURL_HOME="$home" curl -sS "{url}"'
        )
        started = time.monotonic()
        result = subprocess.run(["bash", "-c", script], env={"PATH": os.environ["PATH"], "HOME": str(home)},
                                capture_output=True, text=True, timeout=30, check=False)
        elapsed = time.monotonic() - started
    assert result.returncode == 28, result.stderr
    assert "Operation timed out after 2" in result.stderr
    assert elapsed < 10
    assert result.stdout.startswith("user-agent = the-users-own\n")
    assert "connect-timeout = 1\nmax-time = 2\n" in result.stdout


# ---------------------------------------------------------------- a fresh clone


def test_a_fresh_clone_with_no_uv_and_no_route_to_the_installers_prints_the_advice_and_fails_fast(machine):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = machine.root / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
                   check=True, capture_output=True, timeout=120)
    result, elapsed = machine.run(clone)
    assert result.returncode != 0
    assert elapsed < RUN_TIMEOUT_SECONDS
    assert f"error: could not download uv's installer from {UV_INSTALLER}" in result.stderr
    assert "curl: (6) Could not resolve host: astral.sh" in result.stderr
    assert_proxy_advice(result.stderr)
    assert_uv_alternative(result.stderr)
    assert not (clone / ".venv").exists()
    assert not (Path(machine.env["HOME"]) / ".local" / "bin" / "uv").exists()
