"""The README's outputs table lists exactly what the program exports, in both shapes, with and without
the optional outputs: the program runs under mocks and its exports are compared with the table's one
declaration (tools/readme_outputs_table.py), which the README's table is generated from."""

from __future__ import annotations

from pathlib import Path

import pytest

from naming import Outputs
from tests.support.pulumi_program import ProgramRun, run_program
from tools import readme_outputs_table as outputs_table
from tools.readme_config_table import TableError, replace_table

REPO = Path(__file__).resolve().parents[2]
FLEET = {"hosts": 2, "domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABC"}

# (stack file, overrides, shape, the boolean keys that are true): each shape once, one bare and one with
# every optional output, so each row is seen both exported and left out. prod has protectData: true.
STACKS = {
    "single host": ("dev", {}, outputs_table.SINGLE_HOST, frozenset()),
    "fleet, protectData and clientAccess": (
        "prod", {**FLEET, "clientAccess": True}, outputs_table.FLEET, frozenset({"protectData", "clientAccess"})),
}


@pytest.fixture(scope="module", params=list(STACKS))
def stack(request: pytest.FixtureRequest) -> tuple[ProgramRun, str, frozenset[str]]:
    name, overrides, shape, config = STACKS[request.param]
    return run_program(name, overrides), shape, config


def declared(shape: str, config: frozenset[str]) -> set[str]:
    return {row.name for row in outputs_table.OUTPUTS if row.exported(shape, config)}


def test_the_program_exports_exactly_the_outputs_the_table_declares(stack) -> None:
    run, shape, config = stack
    assert set(run.outputs) == declared(shape, config)


def test_the_table_marks_as_secret_exactly_the_outputs_the_program_exports_as_secrets(stack) -> None:
    run, shape, config = stack
    secret_rows = {row.name for row in outputs_table.OUTPUTS if row.secret and row.exported(shape, config)}
    assert run.secret_outputs == secret_rows


def test_the_outputs_every_stack_exports_are_those_the_client_recognises_a_stack_by() -> None:
    everywhere = {row.name for row in outputs_table.OUTPUTS if row.shapes == outputs_table.BOTH_SHAPES and not row.when}
    assert everywhere == Outputs.ALWAYS


def test_the_table_has_one_row_for_every_output_name_and_no_other() -> None:
    names = [row.name for row in outputs_table.OUTPUTS]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(outputs_table.declared_names())


def test_the_readme_table_is_the_generated_one() -> None:
    readme = (REPO / "README.md").read_text()
    assert outputs_table.main(["--check", str(REPO / "README.md")]) == 0, (
        "README outputs table is stale; run python -m tools.readme_outputs_table --write README.md"
    )
    for row in outputs_table.OUTPUTS:
        assert f"| `{row.name}` |" in readme


def test_the_table_tool_reports_a_stale_table_and_write_fixes_it(tmp_path: Path, capsys) -> None:
    readme = tmp_path / "README.md"
    stale = outputs_table.render_table(outputs_table.OUTPUTS[:-1])  # the last output is missing
    readme.write_text(f"# Demo\n\n{outputs_table.BEGIN_MARKER}\n{stale}{outputs_table.END_MARKER}\n\nAfter.\n")
    assert outputs_table.main(["--check", str(readme)]) == 1
    assert f"+| `{outputs_table.OUTPUTS[-1].name}` |" in capsys.readouterr().err
    assert outputs_table.main(["--write", str(readme)]) == 0
    assert outputs_table.main(["--check", str(readme)]) == 0
    assert readme.read_text().endswith(f"{outputs_table.END_MARKER}\n\nAfter.\n")


def test_the_table_tool_refuses_a_readme_without_its_markers(tmp_path: Path, capsys) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# No table here\n")
    assert outputs_table.main(["--check", str(readme)]) == 2
    assert outputs_table.BEGIN_MARKER in capsys.readouterr().err
    with pytest.raises(TableError):
        replace_table("no markers", "table", outputs_table.BEGIN_MARKER, outputs_table.END_MARKER)
