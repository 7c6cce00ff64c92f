"""The README tells the truth: its configuration table is Pulumi.yaml's, its links resolve, and its
commands are the ones that exist and that CI runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tools import readme_config_table as table_tool

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

FENCE = re.compile(r"^(```|~~~)")
INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")


def prose_lines(markdown: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines: list[str] = []
    in_fence = False
    for line in markdown.splitlines():
        if FENCE.match(line.strip()):
            in_fence = not in_fence
            continue
        if not in_fence:
            lines.append(line)
    return lines


def code_blocks(markdown: str) -> list[str]:
    blocks: list[str] = []
    current: list[str] = []
    in_fence = False
    for line in markdown.splitlines():
        if FENCE.match(line.strip()):
            if in_fence:
                blocks.append("\n".join(current))
                current = []
            in_fence = not in_fence
        elif in_fence:
            current.append(line)
    return blocks


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("\\", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(markdown):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = github_anchor(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(markdown: str) -> list[str]:
    found = []
    for line in prose_lines(markdown):
        without_code = re.sub(r"`[^`]*`", "", line)
        found += INLINE_LINK.findall(without_code)
        reference = REFERENCE_LINK.match(without_code)
        if reference:
            found.append(reference.group(1))
    return found


def section(markdown: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", markdown, flags=re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def repo_commands(block: str) -> list[str]:
    """Commands in a code block that run a file of this repository (`./path ...`)."""
    return [line.split()[0] for line in block.splitlines() if line.startswith("./")]


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


# ---------------------------------------------------------------- configuration table


def test_configuration_table_is_generated_from_pulumi_yaml(readme):
    generated = table_tool.render_table(table_tool.load_rows(REPO))
    diff = table_tool.table_diff(readme, generated)
    assert diff == "", f"README table is stale; run python -m tools.readme_config_table --write README.md\n{diff}"


def test_configuration_table_covers_every_key_of_pulumi_yaml(readme):
    rows = table_tool.rows_from_pulumi_yaml(REPO / "Pulumi.yaml")
    table = table_tool.extract_table(readme)
    assert rows
    for row in rows:
        assert f"| `{row.key}` |" in table


def test_table_tool_reads_types_items_defaults_and_skips_other_namespaces(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text(
        "name: demo\n"
        "runtime: python\n"
        "config:\n"
        "  aws:region:\n"
        "    value: eu-west-1\n"
        "  size:\n"
        "    type: integer\n"
        "    description: 'How | big, at most <n>.'\n"
        "    default: 20\n"
        "  cidrs:\n"
        "    type: array\n"
        "    items:\n"
        "      type: string\n"
        "    default: [10.0.0.0/8]\n"
        "  name:\n"
        "    type: string\n"
        "  demo:flag: true\n"
    )
    rows = table_tool.load_rows(tmp_path)
    assert [(row.key, row.type) for row in rows] == [
        ("size", "integer"), ("cidrs", "array of string"), ("name", "string"), ("flag", "boolean"),
    ]
    table = table_tool.render_table(rows)
    assert "| `size` | integer | `20` | How \\| big, at most &lt;n&gt;. |" in table
    assert '| `cidrs` | array of string | `["10.0.0.0/8"]` |' in table
    assert "| `name` | string | *required* |" in table
    assert "| `flag` | boolean | `true` |" in table


def test_table_tool_check_reports_a_stale_table_and_write_fixes_it(tmp_path, capsys):
    readme = tmp_path / "README.md"
    current = table_tool.render_table(table_tool.load_rows(REPO))
    stale = current.replace("`t3.small`", "`t3.nano`")
    assert stale != current
    readme.write_text(f"# Demo\n\n{table_tool.BEGIN_MARKER}\n{stale}{table_tool.END_MARKER}\n\nAfter.\n")

    assert table_tool.main(["--check", str(readme)]) == 1
    assert "-| `instanceType` | string | `t3.nano`" in capsys.readouterr().err

    assert table_tool.main(["--write", str(readme)]) == 0
    assert table_tool.main(["--check", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Demo\n\n") and text.endswith(f"{table_tool.END_MARKER}\n\nAfter.\n")


def test_table_tool_refuses_a_readme_without_markers(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# No table here\n")
    assert table_tool.main(["--check", str(readme)]) == 2
    assert "config-table:begin" in capsys.readouterr().err


# ---------------------------------------------------------------- links


def test_every_relative_link_resolves(readme):
    external = re.compile(r"^[a-z][a-z0-9+.-]*:")  # https:, mailto:, ...
    relative = [link for link in links(readme) if not external.match(link) and not link.startswith("#")]
    assert relative, "expected the README to link to files of the repository"
    missing = [link for link in relative if not (REPO / link.split("#")[0]).exists()]
    assert missing == []


def test_every_anchor_link_points_to_a_heading(readme):
    targets = anchors(readme)
    anchored = [link for link in links(readme) if link.startswith("#")]
    assert anchored, "expected the README to link to its own sections"
    assert [link for link in anchored if link[1:] not in targets] == []


def test_anchor_rules_follow_github():
    assert github_anchor("After deploy") == "after-deploy"
    assert github_anchor("Names, TLS & `domain`") == "names-tls--domain"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


# ---------------------------------------------------------------- commands


def test_quick_start_has_exactly_the_deploy_and_test_commands(readme):
    commands = [command for block in code_blocks(section(readme, "Quick start")) for command in repo_commands(block)]
    assert commands == ["./scripts/deploy", "./scripts/test"]


@pytest.mark.parametrize("command", ["./scripts/deploy", "./scripts/test"])
def test_quick_start_commands_exist_and_are_executable(command):
    path = REPO / command
    assert path.is_file()
    assert os.access(path, os.X_OK)


def test_readme_test_command_is_what_ci_runs(readme):
    ci_commands = re.findall(r"^exec (\S+)", (REPO / ".ci" / "run").read_text(), flags=re.M)
    quick_start = [c for block in code_blocks(section(readme, "Quick start")) for c in repo_commands(block)]
    assert ci_commands == ["./scripts/test"]
    assert ci_commands[0] in quick_start


def test_every_repository_command_in_the_readme_exists(readme):
    commands = {command for block in code_blocks(readme) for command in repo_commands(block)}
    assert commands
    assert sorted(c for c in commands if not os.access(REPO / c, os.X_OK)) == []


def test_mermaid_diagram_is_present(readme):
    blocks = re.findall(r"^```mermaid\n(.*?)^```", readme, flags=re.M | re.S)
    assert len(blocks) == 2  # the single host, then the fleet
    for part in ("flowchart", "nginx", "127.0.0.1:5000", "RDS", "S3", "SSM", "Elastic IP"):
        assert part in blocks[0]
    for part in ("flowchart", "Application Load Balancer", "ACM", "Auto Scaling group", "nginx :80", "RDS", "S3"):
        assert part in blocks[1]
    assert "Elastic IP" not in blocks[1]


def test_upgrade_advice_names_the_tested_release_and_the_day_its_dependencies_are_resolved_as_of(readme):
    from userdata import pins

    after_deploy = " ".join(section(readme, "After deploy").split())
    assert f"The default, {pins.TESTED_MLFLOW_VERSION}, is the release the tests run" in after_deploy
    assert f"as they were on PyPI on {pins.RESOLVED_AS_OF[:10]}" in after_deploy
