"""`mlflow-aws env`: outputs in, a 0600 env file out, or one clear error and no file."""

from __future__ import annotations

import io
import itertools
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from client import cli
from naming import Outputs
from tests.client.consumers import bash_source, docker_env_file

GOOD_OUTPUTS: dict[str, Any] = {
    Outputs.TRACKING_URI: "https://203.0.113.7",
    Outputs.ADMIN_USERNAME: "admin",
    Outputs.ADMIN_PASSWORD: "Zq8-x_Y.2k~Lm",
    Outputs.REGION: "eu-west-1",
    Outputs.PUBLIC_IP: "203.0.113.7",
    Outputs.ARTIFACT_BUCKET: "mlflow-aws-dev-artifacts-1a2b3c",
}
CLIENT_KEYS = {
    Outputs.CLIENT_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
    Outputs.CLIENT_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
EXPECTED = {
    "MLFLOW_TRACKING_URI": "https://203.0.113.7",
    "MLFLOW_TRACKING_USERNAME": "admin",
    "MLFLOW_TRACKING_PASSWORD": "Zq8-x_Y.2k~Lm",
    "AWS_DEFAULT_REGION": "eu-west-1",
}


def run_env(tmp_path: Path, outputs_text: str, *extra: str) -> tuple[int, Path]:
    source = tmp_path / "outputs.json"
    source.write_text(outputs_text)
    out = tmp_path / "mlflow.env"
    return cli.main(["env", "--outputs", str(source), "--out", str(out), *extra]), out


def test_env_file_holds_the_connection_settings_for_docker_and_bash(tmp_path: Path) -> None:
    code, out = run_env(tmp_path, json.dumps(GOOD_OUTPUTS))
    assert code == 0
    assert docker_env_file(out, lookup={}) == EXPECTED
    assert bash_source(out, home=tmp_path) == EXPECTED


def test_proxy_artifacts_adds_the_variables_that_turn_presigned_transfers_off(tmp_path: Path) -> None:
    code, out = run_env(tmp_path, json.dumps(GOOD_OUTPUTS), "--proxy-artifacts")
    assert code == 0
    proxied = {**EXPECTED, "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
               "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false"}
    assert docker_env_file(out, lookup={}) == proxied
    assert bash_source(out, home=tmp_path) == proxied
    code, out = run_env(tmp_path, json.dumps(GOOD_OUTPUTS))
    assert "MULTIPART" not in out.read_text()


def test_env_file_has_mode_0600_and_a_credentials_warning_on_top(tmp_path: Path) -> None:
    code, out = run_env(tmp_path, json.dumps(GOOD_OUTPUTS))
    assert code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = out.read_text().splitlines()
    header = " ".join(itertools.takewhile(lambda line: line.startswith("#"), lines))
    assert lines[0].startswith("#")
    assert "credentials" in header and "out of git" in header


def test_client_access_keys_are_written_when_the_stack_created_them(tmp_path: Path) -> None:
    code, out = run_env(tmp_path, json.dumps({**GOOD_OUTPUTS, **CLIENT_KEYS}))
    assert code == 0
    assert docker_env_file(out, lookup={}) == {
        **EXPECTED,
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    }


def test_out_dash_prints_the_env_file_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "outputs.json"
    source.write_text(json.dumps(GOOD_OUTPUTS))
    assert cli.main(["env", "--outputs", str(source), "--out", "-"]) == 0
    assert "MLFLOW_TRACKING_PASSWORD=Zq8-x_Y.2k~Lm\n" in capsys.readouterr().out
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["outputs.json"]


def test_outputs_dash_reads_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(GOOD_OUTPUTS)))
    out = tmp_path / "from-stdin.env"
    assert cli.main(["env", "--outputs", "-", "--out", str(out)]) == 0
    assert docker_env_file(out, lookup={}) == EXPECTED


def assert_refused(code: int, out: Path, capsys: pytest.CaptureFixture[str], *phrases: str) -> str:
    error = capsys.readouterr().err
    assert code == 2
    assert not out.exists()
    assert len(error.strip().splitlines()) == 1, error
    for phrase in phrases:
        assert phrase in error
    return error


@pytest.mark.parametrize(
    "key", [Outputs.TRACKING_URI, Outputs.ADMIN_USERNAME, Outputs.ADMIN_PASSWORD, Outputs.REGION]
)
def test_missing_required_output_is_named_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    outputs = {name: value for name, value in GOOD_OUTPUTS.items() if name != key}
    code, out = run_env(tmp_path, json.dumps(outputs))
    assert_refused(code, out, capsys, repr(key), "missing")


@pytest.mark.parametrize("uri", ["203.0.113.7", "mlflow.example.com", "mlflow.example.com:443", "ftp://203.0.113.7",
                                 "https://", "file:///srv/mlruns"])
def test_a_tracking_uri_that_is_not_an_http_url_is_refused_naming_the_output_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], uri: str
) -> None:
    code, out = run_env(tmp_path, json.dumps({**GOOD_OUTPUTS, Outputs.TRACKING_URI: uri}))
    assert_refused(code, out, capsys, f"output 'tracking_uri' is {uri!r}, not an http(s) URL such as https://",
                   "pulumi stack output --json --show-secrets")


@pytest.mark.parametrize("uri", ["http://10.0.0.5:8080", "https://mlflow.example.com/", "https://203.0.113.7"])
def test_http_and_https_tracking_uris_are_written(tmp_path: Path, uri: str) -> None:
    code, out = run_env(tmp_path, json.dumps({**GOOD_OUTPUTS, Outputs.TRACKING_URI: uri}))
    assert code == 0
    assert docker_env_file(out, lookup={})["MLFLOW_TRACKING_URI"] == uri


def test_outputs_of_another_pulumi_project_are_called_that(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = {"vpcId": "vpc-0abc", "url": "https://shop.example.com", "clusterName": "prod"}
    code, out = run_env(tmp_path, json.dumps(other))
    error = assert_refused(code, out, capsys, "these are not this project's outputs",
                           "only clusterName, url, vpcId", "--stack NAME")
    assert "pulumi up" not in error


def test_empty_outputs_say_the_stack_is_not_deployed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_env(tmp_path, "{}")
    assert_refused(code, out, capsys, "the outputs are empty: the stack has not been deployed yet", "pulumi stack ls")


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("", "empty"),
        ("{not json", "not JSON"),
        ('["tracking_uri"]', "JSON list"),
        ("Current stack outputs (4):", "not JSON"),
    ],
)
def test_malformed_outputs_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, phrase: str
) -> None:
    code, out = run_env(tmp_path, text)
    assert_refused(code, out, capsys, phrase, "pulumi stack output --json --show-secrets")


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ({"nested": "x"}, "JSON dict"),
        (["a"], "JSON list"),
        (True, "JSON bool"),
        ("", "empty"),
        ("[secret]", "--show-secrets"),
    ],
)
def test_malformed_value_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: Any, phrase: str
) -> None:
    code, out = run_env(tmp_path, json.dumps({**GOOD_OUTPUTS, Outputs.ADMIN_PASSWORD: value}))
    assert_refused(code, out, capsys, repr(Outputs.ADMIN_PASSWORD), phrase)


@pytest.mark.parametrize("present", sorted(CLIENT_KEYS))
def test_half_of_the_client_access_keys_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], present: str
) -> None:
    (missing,) = set(CLIENT_KEYS) - {present}
    code, out = run_env(tmp_path, json.dumps({**GOOD_OUTPUTS, present: CLIENT_KEYS[present]}))
    assert_refused(code, out, capsys, repr(missing), "missing")


@pytest.mark.parametrize("password", ["with space", "it's", 'say "hi"', "pa$$word", "back`tick`"])
def test_value_the_two_readers_would_disagree_on_is_refused_without_echoing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], password: str
) -> None:
    code, out = run_env(tmp_path, json.dumps({**GOOD_OUTPUTS, Outputs.ADMIN_PASSWORD: password}))
    error = assert_refused(code, out, capsys, "MLFLOW_TRACKING_PASSWORD", repr(Outputs.ADMIN_PASSWORD), "docker")
    assert password not in error


def test_refusal_keeps_an_existing_env_file_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mlflow.env"
    out.write_text("PREVIOUS=1\n")
    source = tmp_path / "outputs.json"
    source.write_text(json.dumps({**GOOD_OUTPUTS, Outputs.ADMIN_PASSWORD: "has space"}))
    assert cli.main(["env", "--outputs", str(source), "--out", str(out)]) == 2
    assert out.read_text() == "PREVIOUS=1\n"


def test_unreadable_outputs_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mlflow.env"
    code = cli.main(["env", "--outputs", str(tmp_path / "absent.json"), "--out", str(out)])
    assert_refused(code, out, capsys, "absent.json")


def test_out_in_a_missing_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "outputs.json"
    source.write_text(json.dumps(GOOD_OUTPUTS))
    out = tmp_path / "no-such-dir" / "mlflow.env"
    code = cli.main(["env", "--outputs", str(source), "--out", str(out)])
    assert_refused(code, out, capsys, "--out")


def test_outputs_and_stack_together_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["env", "--outputs", "x.json", "--stack", "dev", "--out", str(tmp_path / "e.env")])
    assert exit_info.value.code == 2
    assert "--outputs and --stack" in capsys.readouterr().err


# --stack runs the Pulumi CLI: a fake `pulumi` on PATH stands in for it.


def install_fake_pulumi(bin_dir: Path, script_body: str) -> Path:
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text("#!/bin/sh\n" + script_body)
    fake.chmod(0o755)
    return fake


def test_stack_runs_pulumi_stack_output_with_secrets_for_that_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs_json = tmp_path / "canned.json"
    outputs_json.write_text(json.dumps(GOOD_OUTPUTS))
    arguments = tmp_path / "arguments"
    install_fake_pulumi(tmp_path / "bin", f'echo "$@" > {arguments}\ncat {outputs_json}\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    out = tmp_path / "mlflow.env"
    assert cli.main(["env", "--stack", "dev", "--out", str(out)]) == 0
    assert arguments.read_text().split() == ["stack", "output", "--json", "--show-secrets", "--stack", "dev"]
    assert docker_env_file(out, lookup={}) == EXPECTED


def test_failing_pulumi_is_reported_with_its_error_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fake_pulumi(tmp_path / "bin", "echo 'error: no stack named \"prod\" found' >&2\nexit 255\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin:/bin")
    out = tmp_path / "mlflow.env"
    code = cli.main(["env", "--stack", "prod", "--out", str(out)])
    assert_refused(code, out, capsys, "pulumi stack output", 'no stack named "prod" found')


def test_missing_pulumi_cli_says_to_install_it_or_pass_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    out = tmp_path / "mlflow.env"
    code = cli.main(["env", "--stack", "dev", "--out", str(out)])
    assert_refused(code, out, capsys, "the pulumi CLI is not on PATH: ./scripts/deploy installs it into ~/.pulumi/bin",
                   'export PATH="$HOME/.pulumi/bin:$PATH"', "or pass --outputs FILE")
