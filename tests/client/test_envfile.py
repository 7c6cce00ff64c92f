"""The env file reads the same under docker --env-file and bash `source`, or is refused."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from client import envfile
from tests.client.consumers import bash_source, docker_env_file

NAME = "MLFLOW_TRACKING_PASSWORD"


def write_one(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "probe.env"
    path.write_text(envfile.render([(NAME, value)]), encoding="utf-8")
    return path


def both_read(tmp_path: Path, value: str) -> tuple[str | None, str | None]:
    path = write_one(tmp_path, value)
    return docker_env_file(path, lookup={}).get(NAME), bash_source(path, home=tmp_path).get(NAME)


@pytest.mark.parametrize(
    "value",
    [
        "pass#word",
        "#leading-hash",
        "trailing-hash#",
        "https://203.0.113.7",
        "http://127.0.0.1:8443/path?a=1",
        "Ab3-_.~x9",
        "a=b=c",
        "*?[x]{a,b}!%^@+,/:",
        "x~y",
    ],
)
def test_safe_values_round_trip_through_docker_and_bash(tmp_path: Path, value: str) -> None:
    assert envfile.disagreement(value) is None
    assert both_read(tmp_path, value) == (value, value)


@pytest.mark.parametrize(
    "value",
    ["two words", "it's", '"quoted"', "'single'", "pa$$word", "$HOME", "cost $5 # cheap", "a#b c", " lead", "trail "],
)
def test_values_with_spaces_quotes_or_dollars_are_refused_because_the_readers_disagree(
    tmp_path: Path, value: str
) -> None:
    assert envfile.disagreement(value) is not None
    docker_value, bash_value = both_read(tmp_path, value)
    assert docker_value == value  # docker always keeps the raw text ...
    assert bash_value != value  # ... and the shell does not, which is why the writer refuses it


PROBE_CHARS = string.printable.replace("\n", "").replace("\r", "").replace("\x0b", "").replace("\x0c", "")


@pytest.mark.parametrize("char", list(PROBE_CHARS), ids=lambda char: f"{ord(char):#04x}")
def test_refused_characters_are_exactly_those_the_two_readers_disagree_on(tmp_path: Path, char: str) -> None:
    # Each printable ASCII character at the start, in the middle, at the end, before a '/' and after a ':'.
    probes = (f"{char}z", f"a{char}z", f"a{char}", f"{char}/z", f"a:{char}/z")
    agreement = {value: both_read(tmp_path, value) == (value, value) for value in probes}
    accepted = [value for value in probes if envfile.disagreement(value) is None]
    # Sound: every value the writer accepts reads the same in both.
    assert all(agreement[value] for value in accepted), {value: agreement[value] for value in accepted}
    # Necessary: a character refused somewhere really makes the readers disagree somewhere.
    if len(accepted) < len(probes):
        assert not all(agreement.values()), f"{char!r} is refused but both readers agree on {probes}"


@pytest.mark.parametrize("value", ["line\nbreak", "carriage\rreturn", "bell\x07", "caf\u00e9", "nb\u00a0sp"])
def test_control_and_non_ascii_characters_are_refused(value: str) -> None:
    assert envfile.disagreement(value) is not None


def test_rendered_file_starts_with_a_comment_saying_it_holds_credentials_and_stays_out_of_git() -> None:
    text = envfile.render([("MLFLOW_TRACKING_URI", "https://example.org")])
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert text.startswith("#")
    assert any("credentials" in line for line in header)
    assert any("git" in line for line in header)


def test_write_creates_the_file_with_mode_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    import os

    path = tmp_path / "mlflow.env"
    previous = os.umask(0)
    try:
        envfile.write(path, "A=b\n")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "A=b\n"


def test_write_replaces_a_world_readable_file_with_a_0600_one(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.env"
    path.write_text("OLD=1\n")
    path.chmod(0o644)
    envfile.write(path, "NEW=2\n")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "NEW=2\n"
    assert [entry.name for entry in tmp_path.iterdir()] == ["mlflow.env"]
