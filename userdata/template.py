"""Fill `{{name}}` placeholders in the files under templates/ (no other syntax, so shell and nginx
`$`/`{}` pass through untouched). Every value must be used and every placeholder filled.

The templates explain themselves in comments; the host gets them without their comment lines
(`lean`), because EC2 takes at most 16 KiB of user data and the comments are a fifth of it gzipped.
The host's Python is no template: it is host_programs/ and server_guard/, shipped lean by
userdata.pysource.
"""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE_DIR = TEMPLATES / "host"

# Kinds of template whose comments are whole lines starting with "#" (shell: the scripts use no
# here-documents, which `lean` refuses, so a "#" line is always a comment there).
_HASH_COMMENT_SUFFIXES = (".sh", ".conf", ".service", ".timer", ".toml", ".ini")
_HEREDOC = re.compile(r"<<-?\s*['\"]?[A-Za-z_]")


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
    return lean(name, text)


def lean(name: str, text: str) -> str:
    """`text` without its whole-line comments (a first-line `#!` stays), by the template's kind."""
    if name.endswith(_HASH_COMMENT_SUFFIXES):
        if name.endswith(".sh") and _HEREDOC.search(text):
            raise ValueError(f"template {name} has a here-document: its '#' lines could be data")
        comment_lines = {number for number, line in enumerate(text.splitlines(), 1) if line.lstrip().startswith("#")}
    else:
        return text
    lines = text.splitlines(keepends=True)
    kept = [line for number, line in enumerate(lines, 1)
            if number not in comment_lines or (number == 1 and line.startswith("#!"))]
    start = 1 if kept and kept[0].startswith("#!") else 0
    while len(kept) > start and not kept[start].strip():  # what a removed header comment leaves
        kept.pop(start)
    return "".join(kept)

