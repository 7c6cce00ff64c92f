"""The README's configuration table, generated from `Pulumi.yaml`'s `config:` block.

    python -m tools.readme_config_table                    # print the table
    python -m tools.readme_config_table --check README.md  # exit 1 with a diff when the README's table differs
    python -m tools.readme_config_table --write README.md  # rewrite the README's table in place

The table sits between `<!-- config-table:begin -->` and `<!-- config-table:end -->`. Until the
project has a `Pulumi.yaml`, the rows come from `config.CONFIG_KEYS`, which a unit test keeps equal to it.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BEGIN_MARKER = "<!-- config-table:begin -->"
END_MARKER = "<!-- config-table:end -->"
REPO_ROOT = Path(__file__).resolve().parent.parent
HEADER = ("Key", "Type", "Default", "Description")


@dataclass(frozen=True)
class ConfigRow:
    key: str
    type: str
    default: Any  # NO_DEFAULT when the key has none (Pulumi then requires it)
    description: str


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


class TableError(ValueError):
    """The README or Pulumi.yaml is not in the shape this tool expects."""


def _row_from_declaration(project: str, name: str, declaration: Any) -> ConfigRow | None:
    namespace, _, key = name.rpartition(":")
    if namespace and namespace != project:
        return None  # another package's key, e.g. aws:region: not this program's configuration
    if not isinstance(declaration, Mapping):
        # Short form `key: value`: a default whose type Pulumi infers.
        return ConfigRow(key, _infer_type(declaration), declaration, "")
    type_name = str(declaration.get("type") or _infer_type(declaration.get("default")))
    items = declaration.get("items")
    if type_name == "array" and isinstance(items, Mapping) and items.get("type"):
        type_name = f"array of {items['type']}"
    default = declaration.get("default", NO_DEFAULT)
    return ConfigRow(key, type_name, default, str(declaration.get("description") or "").strip())


def _infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, list):
        return "array"
    return "string"


def rows_from_pulumi_yaml(path: Path) -> list[ConfigRow]:
    document = yaml.safe_load(path.read_text()) or {}
    project = str(document.get("name", ""))
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise TableError(f"{path}: 'config' is not a mapping")
    rows = (_row_from_declaration(project, str(name), value) for name, value in config.items())
    return [row for row in rows if row is not None]


def rows_from_config_keys() -> list[ConfigRow]:
    import config

    rows: list[ConfigRow] = []
    for key in config.CONFIG_KEYS:
        type_name = "array of string" if key.type == "array" else key.type
        rows.append(ConfigRow(key.name, type_name, key.default, key.description))
    return rows


def load_rows(project_dir: Path = REPO_ROOT) -> list[ConfigRow]:
    pulumi_yaml = project_dir / "Pulumi.yaml"
    return rows_from_pulumi_yaml(pulumi_yaml) if pulumi_yaml.is_file() else rows_from_config_keys()


def _cell(text: str) -> str:
    # `<ip>` would vanish as an HTML tag on GitHub, and `|` would split the cell.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _format_default(value: Any) -> str:
    if value is NO_DEFAULT:
        return "*required*"
    if value == "":
        return "*empty*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (list, dict)):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def render_table(rows: Sequence[ConfigRow]) -> str:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    for row in rows:
        cells = (f"`{row.key}`", row.type, _format_default(row.default), _cell(row.description))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _marker_positions(readme: str, begin_marker: str = BEGIN_MARKER, end_marker: str = END_MARKER) -> tuple[int, int]:
    begin, end = readme.find(begin_marker), readme.find(end_marker)
    if begin < 0 or end < 0 or end < begin:
        raise TableError(f"the README needs {begin_marker} and then {end_marker} around the table")
    if readme.count(begin_marker) != 1 or readme.count(end_marker) != 1:
        raise TableError(f"the README must hold exactly one {begin_marker} table")
    return begin + len(begin_marker), end


def extract_table(readme: str, begin_marker: str = BEGIN_MARKER, end_marker: str = END_MARKER) -> str:
    start, end = _marker_positions(readme, begin_marker, end_marker)
    return readme[start:end].strip("\n") + "\n"


def replace_table(readme: str, table: str, begin_marker: str = BEGIN_MARKER, end_marker: str = END_MARKER) -> str:
    start, end = _marker_positions(readme, begin_marker, end_marker)
    return readme[:start] + "\n" + table + readme[end:]


def table_diff(
    readme: str,
    table: str,
    readme_name: str = "README.md",
    begin_marker: str = BEGIN_MARKER,
    end_marker: str = END_MARKER,
    source: str = "Pulumi.yaml",
) -> str:
    """A unified diff from the README's table to `table`; empty when they agree."""
    current = extract_table(readme, begin_marker, end_marker)
    return "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            table.splitlines(keepends=True),
            fromfile=f"{readme_name} (table between {begin_marker} and {end_marker})",
            tofile=f"generated from {source}",
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", metavar="README", type=Path, help="exit 1 with a diff when the table differs")
    action.add_argument("--write", metavar="README", type=Path, help="rewrite the table in place")
    parser.add_argument("--project-dir", type=Path, default=REPO_ROOT, help="directory holding Pulumi.yaml")
    args = parser.parse_args(argv)

    table = render_table(load_rows(args.project_dir))
    try:
        if args.check:
            diff = table_diff(args.check.read_text(), table, str(args.check))
            if diff:
                sys.stderr.write(diff)
                sys.stderr.write(f"\nfix: python -m tools.readme_config_table --write {args.check}\n")
                return 1
            return 0
        if args.write:
            args.write.write_text(replace_table(args.write.read_text(), table))
            return 0
    except TableError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
