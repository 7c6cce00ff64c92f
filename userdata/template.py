"""Fill `{{name}}` placeholders in the files under templates/ (no other syntax, so shell, nginx and
Python `$`/`{}` pass through untouched). Every value must be used and every placeholder filled."""

from __future__ import annotations

from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE_DIR = TEMPLATES / "host"


def fill(name: str, template_dir: Path = TEMPLATE_DIR, /, **values: str) -> str:
    text = (template_dir / name).read_text(encoding="utf-8")
    for key, value in values.items():
        placeholder = "{{" + key + "}}"
        if placeholder not in text:
            raise KeyError(f"template {name} has no placeholder {placeholder}")
        text = text.replace(placeholder, value)
    if "{{" in text:
        start = text.index("{{")
        raise KeyError(f"template {name} left unfilled: {text[start:start + 40]!r}")
    return text
