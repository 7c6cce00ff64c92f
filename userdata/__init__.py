"""The host's user data: `render(HostSettings) -> str`, one #cloud-config document.

Pure and deterministic: no Pulumi, no AWS, no clock, no randomness, and no secret (the host reads
those from SSM at boot: host_programs/configure.py). `ec2_user_data_base64` is the same document
as EC2 receives it: gzipped, because it outgrows EC2's 16 KiB limit in clear.

On first boot the document installs nginx, creates the mlflow user, and starts mlflow.service, which
installs the pinned MLflow before its first start; TLS (userdata.tls) adds its files and commands
after those.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from userdata import cloud_config, guard, layout, nginx, pins, programs, scripts, service, tls
from userdata.deflate import gzip_bytes
from userdata.files import HostFile
from userdata.programs import HostProgram
from userdata.settings import HostSettings

__all__ = ["EC2_USER_DATA_LIMIT", "HostSettings", "ec2_user_data_base64", "render"]

# EC2 accepts at most 16 KiB of user data (before base64); cloud-init unpacks gzip.
EC2_USER_DATA_LIMIT = 16 * 1024


def host_programs(s: HostSettings) -> list[HostProgram]:
    """The host's own programs (host_programs/) this document ships: the configure step, and TLS's."""
    return [scripts.CONFIGURE, *tls.tls_programs(s)]


def host_files(s: HostSettings) -> list[HostFile]:
    """Every file the user data writes, in order: the MLflow side, the host's programs and their
    settings, nginx, then TLS."""
    # Deferred (written after packages and users exist), like everything cloud-init writes here.
    return [
        HostFile(layout.INSTALL_SCRIPT, scripts.install_script(s), permissions="0755", defer=True),
        *(dataclasses.replace(file, defer=True) for file in guard.guard_files(s.auth)),
        *(dataclasses.replace(file, defer=True) for file in programs.program_files(s, host_programs(s))),
        HostFile(layout.UNIT_PATH, service.unit(s), defer=True),
        *nginx.nginx_files(s),
        *tls.tls_files(s),
    ]


def boot_commands(s: HostSettings) -> list[str]:
    return [
        f"install -d -m 0700 -o {layout.MLFLOW_USER} -g {layout.MLFLOW_USER} {layout.CONFIG_DIR}",
        "systemctl daemon-reload",
        f"systemctl enable {layout.UNIT_NAME}",
        # Not waited for: the service installs MLflow first (retrying until PyPI answers), and the
        # configure step may wait many minutes for RDS, created in parallel.
        f"systemctl start --no-block {layout.UNIT_NAME}",
        *nginx.http_site_commands(s),
        *tls.tls_boot_commands(s),
    ]


def document(s: HostSettings) -> dict[str, Any]:
    return {
        "package_update": True,
        # TLS adds none: certbot comes from PyPI (userdata.tls).
        "packages": list(pins.UBUNTU_PACKAGES),
        "users": [
            "default",
            {
                "name": layout.MLFLOW_USER,
                "gecos": "MLflow tracking server",
                "system": True,
                "shell": "/usr/sbin/nologin",
                "homedir": layout.STATE_DIR,
                "no_create_home": True,
            },
        ],
        "write_files": [cloud_config.write_files_entry(file) for file in host_files(s)],
        "runcmd": boot_commands(s),
    }


def render(settings: HostSettings) -> str:
    return cloud_config.dump(document(settings))


def gzipped_size(settings: HostSettings) -> int:
    """Bytes of the user data EC2 receives (before base64), for the budget of DESIGN decision 16."""
    return len(gzip_bytes(render(settings).encode("utf-8")))


def ec2_user_data_base64(settings: HostSettings) -> str:
    """What the instance's `user_data_base64` carries: the rendered document, gzipped the same way
    on every machine (it would not fit 16 KiB in clear)."""
    payload = gzip_bytes(render(settings).encode("utf-8"))
    if len(payload) > EC2_USER_DATA_LIMIT:
        raise ValueError(f"user data is {len(payload)} bytes gzipped; EC2 accepts {EC2_USER_DATA_LIMIT}")
    return base64.b64encode(payload).decode("ascii")
