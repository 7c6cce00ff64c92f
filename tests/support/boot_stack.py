"""One booted host and everything AWS would provide around it, for the boot tests and the bench.

    with BootedHost(boot_settings(tls="off"), workdir) as host:
        host.container.wait_for_health()
        mlflow.set_tracking_uri(host.tracking_uri)   # http://127.0.0.1 (nginx in the container)

Around the container (tests/support/boot.py), all on 127.0.0.1: PostgreSQL and moto from the loopback
stack (tests/support/loopback.py: the bucket and the stack's SSM parameters, put as the components put
them, authorization on), and its instance metadata stand-in (tests/support/imds.py), which hands out a
session of the host's role carrying the policy the program renders (tests/support/host_role.py). The
container gets the user data byte for byte as EC2 receives it, plus test-only files beside it, never an
edit of a rendered file:
  <unit>.d/90-mlflow-aws-test.conf          mlflow.service and the certificate services: AWS_ENDPOINT_URL
                                            (moto for S3 and SSM) and
                                            AWS_EC2_METADATA_SERVICE_ENDPOINT (the stand-in), so the
                                            configure step and MLflow sign with the instance role's
                                            credentials as on EC2; and this machine's CA bundle for uv
                                            and pip (its outbound TLS is intercepted). cloud-init's
                                            process (boot.cloud_init_units): the same two AWS variables,
                                            for the bootstrap that fetches the host's files
  cloud.cfg.d/90-mlflow-aws-test.cfg        NoCloud only, network left alone
  `extra_files`                             e.g. the ACME directory's CA for certbot (the TLS test)
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import naming
import userdata
from config import load_config
from host_settings import host_settings_for
from tests.support import boot, loopback
from tests.support.imds import InstanceMetadata
from userdata import layout, tls
from userdata.settings import HostSettings

# us-east-1: the loopback stack creates its bucket without a location constraint, as that region wants.
PROJECT, STACK, REGION = "mlflow-aws", "boot", "us-east-1"
PUBLIC_IP = loopback.LOOPBACK
ARTIFACT_BUCKET = "mlflow-aws-boot-artifacts"
HOST_FILES_BUCKET = "mlflow-aws-boot-host-files"
CERTIFICATE_UNITS = tuple(Path(unit).name for unit in (tls.ISSUANCE_SERVICE, tls.RENEWAL_SERVICE))
TEST_DROP_IN = "90-mlflow-aws-test"


def boot_settings(**config: Any) -> HostSettings:
    """The host settings `pulumi up` renders for a stack with this config (defaults for the rest),
    with the Elastic IP standing at 127.0.0.1, where the container's nginx listens."""
    cfg = load_config(config, project=PROJECT, stack=STACK, region=REGION)
    return host_settings_for(cfg, artifact_bucket=ARTIFACT_BUCKET, host_files_bucket=HOST_FILES_BUCKET,
                             public_ip=PUBLIC_IP)


class BootedHost:
    """The loopback services, the metadata stand-in, and a container booting `settings`' user data.

    `missing_parameter`: left out of SSM until `put_missing_parameter()`. `download_caches`: where the
    download caches bound into the container live (boot.DOWNLOAD_CACHES; default this machine's shared
    ones), None for none at all."""

    def __init__(self, settings: HostSettings, workdir: Path, *,
                 missing_parameter: naming.SsmParameter | None = None,
                 download_caches: Path | None = boot.CACHE_ROOT / "downloads",
                 extra_files: Mapping[str, str | bytes] | None = None,
                 extra_drop_ins: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.settings = settings
        self.workdir = workdir
        self.missing_parameter = missing_parameter
        self.download_caches = download_caches
        self.extra_files = dict(extra_files or {})
        self.extra_drop_ins = {unit: dict(env) for unit, env in (extra_drop_ins or {}).items()}
        self.user_data_base64 = userdata.ec2_user_data_base64(settings)
        self.user_data = userdata.render(settings)
        self.files = loopback.host_file_contents(settings)
        self.instance_id = f"i-{secrets.token_hex(8)}"
        self.stack = loopback.LoopbackStack(settings, start=False)
        self._exit = contextlib.ExitStack()
        self.imds: InstanceMetadata | None = None
        self.root: boot.BootRoot | None = None
        self.container: boot.Container | None = None
        self.boots = 0

    # -- facts -------------------------------------------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        return f"http://{PUBLIC_IP}"

    @property
    def admin_username(self) -> str:
        return self.stack.admin_username

    @property
    def admin_password(self) -> str:
        return self.stack.admin_password

    @property
    def secret_values(self) -> list[str]:
        return self.stack.secret_values

    def parameter_name(self, parameter: naming.SsmParameter) -> str:
        return naming.parameter_name(self.settings.ssm_prefix, parameter)

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> BootedHost:
        try:
            self.prepare()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self) -> None:
        """The services, then the root file system with its seed and test-only files (no boot yet)."""
        self._exit.callback(self.stack.close)
        self.stack.prepare()
        self.stack.start_postgres()
        if self.missing_parameter is not None:
            self.stack.ssm_client().delete_parameter(Name=self.parameter_name(self.missing_parameter))
        self.imds = self.stack.imds  # handing out the session of the host's role the stack created
        assert self.imds is not None
        tarball = boot.rootfs_tarball()
        # Removed with the workdir, by its owner (boot.boot_workdir).
        self.root = boot.BootRoot.extract(tarball, self.workdir / "root")
        self.root.seed(self.user_data_base64, instance_id=self.instance_id, hostname="mlflow-boot")
        bundle = boot.host_ca_bundle(self.root)
        stand_ins = {
            "AWS_ENDPOINT_URL": self.stack.moto.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.stack.moto.endpoint,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds.endpoint,
            **boot.installer_trust_environment(bundle),
        }
        # Every unit that installs from PyPI or calls AWS: MLflow's, and with TLS the certificate's
        # (certbot's install, the saved state in SSM), each with the test's own additions; and cloud-init's,
        # whose bootcmd and runcmd run the bootstrap, which fetches the host's files from moto with the
        # role's credentials from the metadata stand-in (botocore's two variables, nothing else).
        bootstrap = {"AWS_ENDPOINT_URL": self.stack.moto.endpoint,
                     "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.imds.endpoint}
        units = {
            **{unit: bootstrap for unit in boot.cloud_init_units(self.root)},
            **{unit: stand_ins for unit in (layout.UNIT_NAME,
                                            *(CERTIFICATE_UNITS if self.settings.tls != "off" else ()))},
        }
        self.unit_environments = {unit: {**environment, **self.extra_drop_ins.get(unit, {})}
                                  for unit, environment in units.items()}
        for unit, unit_environment in self.extra_drop_ins.items():
            self.unit_environments.setdefault(unit, dict(unit_environment))
        for unit, unit_environment in self.unit_environments.items():
            self.root.write(*boot.drop_in(unit, TEST_DROP_IN, unit_environment,
                                          "moto and the metadata stand-in for AWS; this machine's CA bundle "
                                          "for uv and pip, because its outbound TLS is intercepted; the "
                                          "test's own additions"))
        for inside, content in self.extra_files.items():
            self.root.write(inside, content)

    def start(self) -> boot.Container:
        """Start the container (a first boot, or a reboot of the same root after poweroff())."""
        if self.root is None:
            raise boot.BootError("prepare() first")
        if self.container is not None and self.container.running:
            raise boot.BootError("the container is running; power it off first")
        self.boots += 1
        binds = boot.download_cache_binds(self.download_caches) if self.download_caches is not None else []
        self.container = boot.Container(self.root, log=self.workdir / f"console-{self.boots}.log", binds=binds)
        self.container.start()
        return self.container

    def reboot(self) -> boot.Container:
        self.poweroff()
        return self.start()

    def poweroff(self) -> None:
        if self.container is not None:
            self.container.poweroff()

    def close(self) -> None:
        try:
            self.poweroff()
        finally:
            self._exit.close()

    def put_missing_parameter(self) -> None:
        if self.missing_parameter is None:
            return
        name = self.parameter_name(self.missing_parameter)
        self.stack.ssm_client().put_parameter(
            Name=name, Value=self.stack.parameters[name], Overwrite=True,
            Type="SecureString" if self.missing_parameter.secure else "String")
        self.missing_parameter = None

    def running(self) -> boot.Container:
        if self.container is None or not self.container.running:
            raise boot.BootError("the container is not running")
        return self.container
