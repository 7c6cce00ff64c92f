"""The client's MLflow (pyproject's mlflow-skinny, what `.venv` and `pip install .` get) is bounded to the
releases the server's default version supports: at most its minor release (README, "The client's MLflow")."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from client import smoke

REPO = Path(__file__).resolve().parents[2]


def client_requirement() -> Requirement:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (requirement,) = [Requirement(item) for item in dependencies if Requirement(item).name == "mlflow-skinny"]
    return requirement


def server_default() -> Version:
    config = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]
    return Version(str(config["mlflowVersion"]["default"]))


def test_the_client_is_no_newer_a_minor_release_than_the_servers_default() -> None:
    server = server_default()
    specifier = client_requirement().specifier
    assert {str(item) for item in specifier} == {">=3.5", f"<{server.major}.{server.minor + 1}"}
    assert server in specifier
    assert Version(f"{server.major}.{server.minor + 1}.0") not in specifier
    assert Version(f"{server.major}.{server.minor}.{server.micro + 1}") in specifier  # a later patch is fine


def test_the_oldest_client_is_the_oldest_server_the_config_accepts() -> None:
    assert "(3.5.0 or newer)" in yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]["mlflowVersion"][
        "description"]
    assert Version("3.5.0") in client_requirement().specifier
    assert Version("3.4.9") not in client_requirement().specifier


def test_smoke_names_the_same_range_when_the_client_is_missing() -> None:
    assert Requirement(smoke.CLIENT_MLFLOW).specifier == client_requirement().specifier
    assert smoke.CLIENT_MLFLOW in smoke.MISSING_MLFLOW


def test_the_installed_client_is_within_the_range() -> None:
    assert Version(importlib.metadata.version("mlflow-skinny")) in client_requirement().specifier


def test_the_readme_states_the_policy() -> None:
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "### The client's MLflow" in (REPO / "README.md").read_text()
    assert f"`{smoke.CLIENT_MLFLOW}`" in readme
