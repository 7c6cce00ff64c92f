"""scripts/test's Debian 13 source (pebble on Debian 12) uses the mirror the machine's apt already uses
(tools/debian_mirror.py), read from its sources in both formats; with none, a clear reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools import debian_mirror

REPO = Path(__file__).resolve().parents[2]
BOOKWORM = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: {uri}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


def machine(tmp_path: Path, os_release: str = BOOKWORM, **files: str) -> Path:
    """A file system root with `os_release` and apt source files (names relative to /etc/apt)."""
    (tmp_path / "etc" / "apt" / "sources.list.d").mkdir(parents=True)
    (tmp_path / "etc" / "os-release").write_text(os_release)
    for name, text in files.items():
        (tmp_path / "etc" / "apt" / name.replace("__", "/")).write_text(text)
    return tmp_path


def test_the_mirror_of_a_deb822_source_is_found(tmp_path: Path) -> None:
    root = machine(tmp_path, **{"sources.list.d__debian.sources": DEB822.format(uri="http://mirror.corp.example/debian/")})
    assert debian_mirror.debian_mirror(root) == "http://mirror.corp.example/debian"


def test_the_mirror_of_a_one_line_source_with_options_is_found(tmp_path: Path) -> None:
    sources = (
        "# deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://apt-cache.corp:3142/deb.debian.org/debian bookworm main contrib\n"
        "deb http://security.debian.org/debian-security bookworm-security main\n"
    )
    root = machine(tmp_path, **{"sources.list": sources})
    assert debian_mirror.debian_mirror(root) == "http://apt-cache.corp:3142/deb.debian.org/debian"


def test_third_party_and_security_sources_are_not_taken_for_the_mirror(tmp_path: Path) -> None:
    root = machine(tmp_path, **{
        "sources.list.d__docker.list": "deb https://download.docker.com/linux/debian bookworm stable\n",
        "sources.list.d__google.list": "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n",
        "sources.list.d__security.sources": (
            "Types: deb\nURIs: http://security.debian.org/debian-security\nSuites: bookworm-security\n"
            "Components: main\n"),
        "sources.list.d__zz-debian.sources": DEB822.format(uri="https://deb.corp.example/debian"),
    })
    assert debian_mirror.debian_mirror(root) == "https://deb.corp.example/debian"


def test_disabled_sources_files_apt_ignores_and_the_scripts_own_source_are_skipped(tmp_path: Path) -> None:
    root = machine(tmp_path, **{
        "sources.list.d__a.list.disabled-by-farm": "deb http://wrong.example/debian bookworm main\n",
        "sources.list.d__mlflow-aws-trixie.sources": DEB822.format(uri="http://also-wrong.example/debian"),
        "sources.list.d__off.sources": "Enabled: no\n" + DEB822.format(uri="http://disabled.example/debian"),
        "sources.list.d__z.sources": DEB822.format(uri="http://right.example/debian"),
    })
    assert debian_mirror.debian_mirror(root) == "http://right.example/debian"


def test_a_machine_that_is_not_debian_has_no_debian_mirror(tmp_path: Path) -> None:
    ubuntu = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\nVERSION_CODENAME=noble\n'
    root = machine(tmp_path, ubuntu, **{"sources.list": "deb http://archive.ubuntu.com/ubuntu noble main\n"})
    with pytest.raises(debian_mirror.NoMirror, match=r"Ubuntu 24\.04\.1 LTS"):
        debian_mirror.debian_mirror(root)


def test_no_matching_source_says_what_was_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = machine(tmp_path)
    assert debian_mirror.main(["--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "no Debian mirror found: no apt source has a deb entry for suite bookworm with component main" in err
    assert "sources.list.d" in err


def test_the_script_writes_the_mirror_it_looked_up_into_the_trixie_source() -> None:
    script = (REPO / "scripts" / "test").read_text()
    (source_line,) = [line for line in script.splitlines() if "Suites: trixie" in line]
    assert "URIs: %s" in source_line and "http" not in source_line
    assert '"$mirror"' in source_line
    assert 'mirror="${DEBIAN_MIRROR:-}"' in script and "-m tools.debian_mirror" in script


def test_the_tool_runs_on_the_system_python_alone(tmp_path: Path) -> None:
    root = machine(tmp_path, **{"sources.list.d__debian.sources": DEB822.format(uri="http://m.example/debian")})
    # -S: no site-packages, so nothing but the standard library (scripts/test runs it before .venv exists).
    result = subprocess.run([sys.executable, "-S", "-m", "tools.debian_mirror", "--root", str(root)], cwd=REPO,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "http://m.example/debian\n"
