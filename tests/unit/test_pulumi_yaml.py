"""Pulumi.yaml declares exactly the keys config.py reads, with the same types and defaults."""

from __future__ import annotations

import pathlib
from typing import Any

import yaml

import config

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[2]


def project_file() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    return document


def test_project_name_and_python_runtime() -> None:
    project = project_file()
    assert project["name"] == config.PROJECT
    assert project["runtime"]["name"] == "python"


def test_every_config_key_is_declared_with_type_default_and_description() -> None:
    declared = project_file()["config"]
    assert list(declared) == list(config.CONFIG_KEY_NAMES)
    for key in config.CONFIG_KEYS:
        spec = declared[key.name]
        assert spec["type"] == key.type, key.name
        assert spec["default"] == key.default, key.name
        assert spec["description"] == key.description, key.name
        if key.type == "array":
            assert spec["items"] == {"type": "string"}, key.name


def test_defaults_alone_make_a_valid_config() -> None:
    defaults = {key: spec["default"] for key, spec in project_file()["config"].items()}
    cfg = config.load_config(defaults, project="mlflow-aws", stack="dev", region="eu-west-1")
    assert cfg.instance_type.name == "t3.small" and cfg.tls == "letsencrypt"


def test_dev_stack_sets_a_region_and_tears_down_cleanly() -> None:
    cfg = config.from_stack_files(str(PROJECT_DIR), "dev")
    assert cfg.region and not cfg.protect_data


def test_prod_stack_protects_data_across_two_zones() -> None:
    cfg = config.from_stack_files(str(PROJECT_DIR), "prod")
    assert cfg.protect_data and cfg.db_multi_az
