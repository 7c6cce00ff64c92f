"""Serialise the cloud-config document: deterministic YAML, multi-line text (the bootstrap) as readable literal
blocks."""

from __future__ import annotations

from typing import Any

import yaml

HEADER = "#cloud-config\n"


class _Dumper(yaml.SafeDumper):
    pass


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def dump(document: dict[str, Any]) -> str:
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000,
                     allow_unicode=True)
    return HEADER + body
