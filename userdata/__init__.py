"""The host's user data: `render(HostSettings) -> str`, one #cloud-config document, and the host's files
it fetches: `host_files(HostSettings)`, uploaded as one S3 object, `host_bundle(HostSettings)`.

Pure and deterministic: no Pulumi, no AWS, no clock, no randomness, and no secret (the host reads
those from SSM at boot: host_programs/configure.py). `ec2_user_data_base64` is the same document
as EC2 receives it: gzipped, as EC2 takes at most 16 KiB.

The host's files travel outside the user data (DESIGN decision 16): the document carries a small
bootstrap (userdata.bootstrap) with the object's key and sha256, so any change to a host file still
changes the user data. On first boot the bootstrap writes the files that are not deferred, cloud-init
creates the mlflow user, the bootstrap writes the deferred files, our package step installs nginx
(userdata.packages, which waits on apt's lock and is retried by the services), and mlflow.service starts,
which installs the pinned MLflow before its first start; the handover's units (userdata.handover) and TLS
(userdata.tls) add their files and commands after those.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
from typing import Any

from userdata import (
    bootstrap,
    cloud_config,
    guard,
    handover,
    layout,
    monitoring,
    nginx,
    packages,
    programs,
    scripts,
    service,
    tls,
)
from userdata.bundle import HostBundle, bundle_of
from userdata.deflate import gzip_bytes
from userdata.files import HostFile
from userdata.programs import HostProgram
from userdata.settings import HostSettings

__all__ = ["EC2_USER_DATA_LIMIT", "HostSettings", "ec2_user_data_base64", "host_bundle", "host_files", "render"]

# EC2 accepts at most 16 KiB of user data (before base64); cloud-init unpacks gzip.
EC2_USER_DATA_LIMIT = 16 * 1024


def host_programs(s: HostSettings) -> list[HostProgram]:
    """The host's own programs (host_programs/) this document ships: the configure step, the handover's
    (health report, fence, admin restart), and TLS's."""
    return [scripts.CONFIGURE, *handover.handover_programs(s), *tls.tls_programs(s)]


def host_files(s: HostSettings) -> list[HostFile]:
    """Every file the host gets, in order: the MLflow side, the host's programs and their settings, nginx,
    TLS, then monitoring. The bootstrap writes them as cloud-init's write_files would: those not deferred
    before the packages, the others after the packages and users exist."""
    return [
        HostFile(layout.PACKAGES_SCRIPT, packages.packages_script(s), permissions="0755", defer=True),
        HostFile(layout.INSTALL_SCRIPT, scripts.install_script(s), permissions="0755", defer=True),
        *(dataclasses.replace(file, defer=True) for file in guard.guard_files(s.auth)),
        *(dataclasses.replace(file, defer=True) for file in programs.program_files(s, host_programs(s))),
        HostFile(layout.UNIT_PATH, service.unit(s), defer=True),
        *handover.handover_files(s),
        *nginx.nginx_files(s),
        *tls.tls_files(s),
        *monitoring.monitoring_files(s),
    ]


def boot_commands(s: HostSettings) -> list[str]:
    return [
        # Bounded; should apt still fail, mlflow.service and the certificate service retry it.
        layout.PACKAGES_SCRIPT,
        f"install -d -m 0700 -o {layout.MLFLOW_USER} -g {layout.MLFLOW_USER} {layout.CONFIG_DIR}",
        "systemctl daemon-reload",
        f"systemctl enable {layout.UNIT_NAME}",
        # Not waited for: the service installs MLflow first (retrying until PyPI answers), and the
        # configure step may wait many minutes for RDS, created in parallel.
        f"systemctl start --no-block {layout.UNIT_NAME}",
        *handover.handover_boot_commands(s),
        # Not waited for either: the agent's install retries on its own timer.
        *monitoring.monitoring_boot_commands(s),
        *tls.tls_boot_commands(s),
    ]


@functools.lru_cache(maxsize=16)  # a preview asks for the same settings' object more than once
def host_bundle(s: HostSettings) -> HostBundle:
    """The host's files as the one object the program uploads and the bootstrap fetches."""
    return bundle_of(host_files(s))


def document(s: HostSettings) -> dict[str, Any]:
    bundle = host_bundle(s)
    # No `packages:` (nor package_update): the package step waits on apt's lock and retries (userdata/packages.py).
    return {
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
        # Each boot: the program itself; the first: the files not deferred, before the packages.
        "bootcmd": [bootstrap.install_command(), bootstrap.command(s, bundle, "early")],
        "runcmd": [bootstrap.command(s, bundle, "deferred"), *boot_commands(s)],
    }


def render(settings: HostSettings) -> str:
    return cloud_config.dump(document(settings))


def ec2_user_data_base64(settings: HostSettings) -> str:
    """What the instance's `user_data_base64` carries: the rendered document, gzipped the same way
    on every machine."""
    payload = gzip_bytes(render(settings).encode("utf-8"))
    if len(payload) > EC2_USER_DATA_LIMIT:
        raise ValueError(f"user data is {len(payload)} bytes gzipped; EC2 accepts {EC2_USER_DATA_LIMIT}")
    return base64.b64encode(payload).decode("ascii")
