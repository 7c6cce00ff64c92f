"""A file the user data writes on the host (one `write_files` entry of the cloud-config)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostFile:
    path: str
    content: str
    permissions: str = "0644"
    owner: str = "root:root"
    # Written in cloud-init's final stage, after packages are installed and users created
    # (needed for files owned by the mlflow user or placed in directories a package creates).
    defer: bool = False
