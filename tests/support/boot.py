"""The rendered user data booted for real: cloud-init and systemd (PID 1) in a Debian 13 container.

    tarball = rootfs_tarball()                        # mmdebstrap, cached by its package list
    root = BootRoot.extract(tarball, workdir / "root")
    root.seed(userdata.ec2_user_data_base64(settings), instance_id="i-1", hostname="h")  # what EC2 receives
    root.write(path, text)                            # test-only files beside it (drop-ins, CA bundles)
    with Container(root, log=workdir / "console.log") as container:
        container.wait_for_health(timeout=600)
        container.run(["cloud-init", "status", "--long"])
    # leaving the block powers the container off (and kills it if it does not stop in time)

The root file system holds only what a minimal cloud image has (ROOTFS_PACKAGES): nginx, python3-venv
and certbot must come from the user data itself. Booted with `systemd-nspawn --boot --register=no
--keep-unit`: no machined or host systemd is needed, which this machine (PID 1 is not systemd) lacks.

Networking: the container shares the host's network namespace. nginx in the container then listens on
this machine's ports 80 and 443 (the tests refuse to start when either is taken, see
`ports_in_use`), and every helper server (PostgreSQL, moto, the metadata stand-in, pebble) is reached on
127.0.0.1 from both sides, with no address to translate. The alternative, a network namespace with a
veth pair and NAT for the container's downloads (Debian's mirror, PyPI), needs iptables or nft and IP
forwarding turned on in this machine's own namespace: a change to a machine other sessions share.

Commands run inside through `nsenter --all` on the container's PID 1, with a clean environment.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from userdata import layout

ROOTFS_SUITE = "trixie"
ROOTFS_MIRROR = "http://deb.debian.org/debian"
ROOTFS_VARIANT = "apt"
# A minimal cloud image: systemd as PID 1, cloud-init, Python for cloud-init and the configure step's
# first run, and ssh-keygen (openssh-client), which cloud-init calls for the host keys every cloud image
# has (without it cloud-init reports each key type as a recoverable error). Never nginx or python3-venv.
ROOTFS_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "cloud-init", "ca-certificates", "python3", "iproute2", "openssh-client",
)
ROOTFS_BUILD_TIMEOUT_SECONDS = 900.0

CACHE_ROOT = Path(os.environ.get("MLFLOW_AWS_BOOT_CACHE", "/var/cache/mlflow-aws"))
# Download caches of this machine, shared by every container it boots (bind-mounted): what a first
# boot fetches from PyPI and Debian's mirror is fetched once per machine, not once per boot. A real
# host starts with them empty; bench/boot_time.py --container measures both.
DOWNLOAD_CACHES = (
    ("uv", layout.UV_CACHE_DIR),  # the install step's uv cache (layout.UV_CACHE_DIR)
    ("pip", "/root/.cache/pip"),  # pip's cache, for the install step's `pip install uv`
    ("apt-archives", "/var/cache/apt/archives"),  # the .debs cloud-init's package step downloads
)

# Test-only files go under this directory of the root (never a path the user data writes).
TEST_DIR = "/etc/mlflow-aws-test"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SEED_DIR = "/var/lib/cloud/seed/nocloud"
CLOUD_CFG_TEST = "/etc/cloud/cloud.cfg.d/90-mlflow-aws-test.cfg"
# NoCloud alone, so cloud-init does not probe for other clouds; no network configuration, because the
# container shares this machine's interfaces (on EC2, cloud-init configures the instance's own).
CLOUD_CFG_TEST_TEXT = """\
# Test-only (tests/support/boot.py): the NoCloud seed stands in for EC2's metadata service, and the
# container shares the test machine's network, which cloud-init must leave alone.
datasource_list: [NoCloud]
network:
  config: disabled
"""

# The units whose process runs cloud-init's stages (bootcmd, runcmd): one process for all of them since
# cloud-init 24.3 (Debian 13 has 25.1), one unit per stage before.
CLOUD_INIT_SINGLE_PROCESS_UNIT = "cloud-init-main.service"
CLOUD_INIT_STAGE_UNITS = ("cloud-init.service", "cloud-final.service")

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT_SECONDS = 60.0
POWEROFF_TIMEOUT_SECONDS = 90.0
KILL_TIMEOUT_SECONDS = 30.0
COMMAND_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.5

T = TypeVar("T")


class BootError(RuntimeError):
    pass


def boot_requirements_missing() -> list[str]:
    """What this machine lacks to boot a container: root, and the Debian packages' commands."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (systemd-nspawn)")
    for command, package in (("mmdebstrap", "mmdebstrap"), ("systemd-nspawn", "systemd-container"),
                             ("nsenter", "util-linux"), ("tar", "tar")):
        if shutil.which(command) is None:
            missing.append(f"{command} (Debian package {package})")
    return missing


def ports_in_use(ports: Sequence[int] = (layout.HTTP_PORT, 443)) -> list[int]:
    """The ports the container's nginx would listen on that something on this machine already holds."""
    taken = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                taken.append(port)
    return taken


def rootfs_key() -> str:
    spec = "\n".join([ROOTFS_SUITE, ROOTFS_MIRROR, ROOTFS_VARIANT, *sorted(ROOTFS_PACKAGES)])
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def rootfs_tarball(log: Callable[[str], None] = lambda _: None) -> Path:
    """The root file system's tarball, built once per package list and reused by later runs."""
    directory = CACHE_ROOT / "rootfs"
    directory.mkdir(parents=True, exist_ok=True)
    tarball = directory / f"{ROOTFS_SUITE}-{rootfs_key()}.tar"
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a second caller then finds it
        if tarball.exists():
            return tarball
        log(f"building {tarball} with mmdebstrap ({', '.join(ROOTFS_PACKAGES)})")
        partial = tarball.with_suffix(".tar.partial")
        partial.unlink(missing_ok=True)
        result = subprocess.run(
            ["mmdebstrap", f"--variant={ROOTFS_VARIANT}", f"--include={','.join(ROOTFS_PACKAGES)}",
             "--format=tar", ROOTFS_SUITE, str(partial), ROOTFS_MIRROR],
            capture_output=True, text=True, timeout=ROOTFS_BUILD_TIMEOUT_SECONDS, check=False,
        )
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise BootError(f"mmdebstrap failed ({result.returncode}):\n{result.stderr[-4000:]}")
        os.replace(partial, tarball)
        return tarball


def download_cache_binds(base: Path = CACHE_ROOT / "downloads") -> list[tuple[Path, str]]:
    """(host directory, path inside) of each download cache, kept under `base`."""
    binds = []
    for name, inside in DOWNLOAD_CACHES:
        host = base / name
        host.mkdir(parents=True, exist_ok=True)
        binds.append((host, inside))
    return binds


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, interval: float = POLL_SECONDS,
               describe: Callable[[], str] = lambda: "") -> T:
    """probe() until it returns something other than None, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            detail = describe()
            raise BootError(f"{what}: not within {timeout:.0f} s" + (f"\n{detail}" if detail else ""))
        time.sleep(interval)


def http_status(url: str, timeout: float = 5.0) -> int | None:
    """The status of a GET of `url` (no proxy), None when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


class BootRoot:
    """A root file system directory, extracted from the tarball; paths are the container's."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def extract(cls, tarball: Path, directory: Path) -> BootRoot:
        directory.mkdir(parents=True)
        subprocess.run(["tar", "--extract", "--file", str(tarball), "--directory", str(directory),
                        "--numeric-owner", "--xattrs", "--xattrs-include=*"],
                       check=True, capture_output=True, timeout=300)
        return cls(directory)

    def path(self, inside: str) -> Path:
        return self.directory / inside.lstrip("/")

    def write(self, inside: str, content: str | bytes, mode: int = 0o644) -> None:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        target.write_bytes(content)
        target.chmod(mode)

    def read(self, inside: str) -> str:
        return self.path(inside).read_text(errors="replace")

    def seed(self, user_data_base64: str, *, instance_id: str, hostname: str) -> None:
        """The NoCloud seed: the user data byte for byte as EC2 hands it to the instance (gzip, which
        cloud-init unpacks), and the instance id whose change marks a first boot."""
        self.write(f"{SEED_DIR}/user-data", base64.b64decode(user_data_base64), mode=0o600)
        self.write(f"{SEED_DIR}/meta-data", f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n", mode=0o600)
        self.write(CLOUD_CFG_TEST, CLOUD_CFG_TEST_TEXT)

    def copy_in(self, source: Path, inside: str) -> str:
        self.write(inside, source.read_bytes())
        return inside

    def remove(self) -> None:
        remove_tree(self.directory)


def cloud_init_units(root: BootRoot) -> tuple[str, ...]:
    """The units of `root` whose environment cloud-init's bootcmd and runcmd run in."""
    if root.path(f"/usr/lib/systemd/system/{CLOUD_INIT_SINGLE_PROCESS_UNIT}").exists():
        return (CLOUD_INIT_SINGLE_PROCESS_UNIT,)
    return CLOUD_INIT_STAGE_UNITS


def host_ca_bundle(root: BootRoot) -> str:
    """This test machine intercepts outbound TLS: its CA bundle, copied into the root, is what the
    installers must trust to reach PyPI (see `installer_trust_environment`). A property of this
    machine, not of the host the user data configures."""
    return root.copy_in(HOST_CA_BUNDLE, f"{TEST_DIR}/ca-certificates.crt")


def installer_trust_environment(bundle: str) -> dict[str, str]:
    # uv (rustls) reads SSL_CERT_FILE; pip reads PIP_CERT.
    return {"SSL_CERT_FILE": bundle, "PIP_CERT": bundle}


def drop_in(unit: str, name: str, environment: dict[str, str], why: str) -> tuple[str, str]:
    """A test-only `Environment=` drop-in for `unit`: (path in the root, text)."""
    lines = [f"# Test-only (tests/support/boot.py), never part of the user data: {why}", "[Service]"]
    lines += [f"Environment={key}={value}" for key, value in environment.items()]
    return f"{layout.SYSTEMD_DIR}/{unit}.d/{name}.conf", "\n".join(lines) + "\n"


class Container:
    """`systemd-nspawn --boot` of a BootRoot, sharing this machine's network. Use as a context manager,
    or call start() and poweroff() (which also kills it if it does not stop in time)."""

    def __init__(self, root: BootRoot, *, log: Path, binds: Sequence[tuple[Path, str]] = (),
                 name: str = "mlflow-boot") -> None:
        self.root = root
        self.log = log
        self.binds = list(binds)
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self.pid1 = 0
        self.started_at = 0.0  # time.monotonic() just before systemd-nspawn starts

    def __enter__(self) -> Container:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.poweroff()

    def start(self) -> None:
        command = ["systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--quiet",
                   f"--machine={self.name}", f"--directory={self.root.directory}", "--console=read-only"]
        command += [f"--bind={host}:{inside}" for host, inside in self.binds]
        # The host's cgroups are hybrid (v1 with a named systemd hierarchy); systemd 257 inside wants v2.
        env = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
        self.started_at = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                            start_new_session=True)
        try:
            self.pid1 = wait_until("the container's systemd (PID 1)", self._find_pid1, START_TIMEOUT_SECONDS,
                                   interval=0.1, describe=self.console)
        except BaseException:
            self.poweroff()
            raise

    def _find_pid1(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            raise BootError(f"systemd-nspawn exited:\n{self.console()}")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid and comm == "systemd":
                return int(entry.name)
        return None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def console(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def run(self, command: Sequence[str], *, timeout: float = COMMAND_TIMEOUT_SECONDS,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """`command` inside the container (all its namespaces), as root, with a clean environment."""
        if not self.running:
            raise BootError(f"the container is not running:\n{self.console()}")
        wrapped = ["nsenter", f"--target={self.pid1}", "--all", "env", "-i", f"PATH={PATH}", "LANG=C.UTF-8",
                   "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", *command]
        return subprocess.run(wrapped, capture_output=True, text=True, timeout=timeout, input=input_text,
                              check=False)

    def check(self, command: Sequence[str], *, timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
        result = self.run(command, timeout=timeout)
        if result.returncode != 0:
            raise BootError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result.stdout

    def journal(self, *args: str) -> str:
        return self.check(["journalctl", "--no-pager", "-b", *args], timeout=COMMAND_TIMEOUT_SECONDS)

    def wait_for_health(self, url: str = f"http://127.0.0.1:{layout.HTTP_PORT}/health",
                        timeout: float = 600.0) -> float:
        """Seconds from the container's start to `url` answering 200."""
        def probe() -> float | None:
            if not self.running:
                raise BootError(f"the container stopped before {url} answered:\n{self.console()}")
            return time.monotonic() - self.started_at if http_status(url) == 200 else None

        return wait_until(f"{url} answering 200", probe, timeout, describe=self.diagnosis)

    def wait_for_cloud_init(self, timeout: float = 600.0) -> str:
        """`cloud-init status --long` once cloud-init has finished (done, or error)."""
        def probe() -> str | None:
            result = self.run(["cloud-init", "status", "--long"], timeout=60)
            first = result.stdout.splitlines()[0] if result.stdout else ""
            return result.stdout if first.split(":", 1)[-1].strip() in ("done", "error", "disabled") else None

        return wait_until("cloud-init finishing", probe, timeout, interval=2.0, describe=self.diagnosis)

    def diagnosis(self) -> str:
        """What went wrong, for a failure message: failed units and the journal's tail."""
        if not self.running:
            return self.console()
        failed = self.run(["systemctl", "--failed", "--no-legend"], timeout=30).stdout
        tail = self.run(["journalctl", "--no-pager", "-b", "-n", "60"], timeout=30).stdout
        return f"failed units:\n{failed}\njournal (last 60 lines):\n{tail}"

    def poweroff(self, timeout: float = POWEROFF_TIMEOUT_SECONDS) -> None:
        """SIGRTMIN+4 to systemd (its poweroff), bounded; then SIGKILL, which ends the whole container."""
        process = self.process
        if process is None:
            return
        if process.poll() is None and self.pid1:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGRTMIN + 4)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        if process.poll() is None:
            for pid in (self.pid1, process.pid):
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            process.wait(timeout=KILL_TIMEOUT_SECONDS)
        self.process = None
        self.pid1 = 0


WORKDIR_MEMORY = Path("/dev/shm")
WORKDIR_MEMORY_MIN_FREE = 6 * 1024**3  # a booted root holds ~1.5 GB; room for it and the rest of the machine
WORKDIR_DISK = Path("/var/tmp")


def workdir_parent() -> Path:
    """Memory (tmpfs) when it has room and allows devices and setuid files, else disk: a booted root holds
    ~35,000 files, which take 40 s or more to remove from this machine's busy disk, none from memory."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return WORKDIR_DISK
    for line in mounts:
        fields = line.split()
        if len(fields) >= 4 and fields[1] == str(WORKDIR_MEMORY) and fields[2] == "tmpfs":
            options = fields[3].split(",")
            if "nosuid" in options or "nodev" in options or "noexec" in options:
                return WORKDIR_DISK
            return WORKDIR_MEMORY if shutil.disk_usage(WORKDIR_MEMORY).free >= WORKDIR_MEMORY_MIN_FREE else WORKDIR_DISK
    return WORKDIR_DISK


@contextlib.contextmanager
def boot_workdir(prefix: str) -> Iterator[Path]:
    """A directory for one test's root file systems and logs (kept when MLFLOW_AWS_KEEP_BOOT=1)."""
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=workdir_parent()))
    try:
        yield directory
    finally:
        if os.environ.get("MLFLOW_AWS_KEEP_BOOT") != "1":
            remove_tree(directory)


def remove_tree(directory: Path) -> None:
    """rm -rf, which removes a booted root (~40,000 files once MLflow is installed) many times faster than
    shutil.rmtree; never across into another file system (a bind mount left behind)."""
    if directory.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(directory)], check=False, timeout=600,
                       capture_output=True)


def exposure(container: Container, unit: str) -> float:
    """`systemd-analyze security`'s overall exposure level for `unit` (0 is the most sandboxed, 10 none)."""
    output = container.check(["systemd-analyze", "security", "--no-pager", unit])
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9]+(?:\.[0-9]+)?)", output)
    if match is None:
        raise BootError(f"systemd-analyze security printed no exposure level for {unit}:\n{output[-2000:]}")
    return float(match.group(1))


def unit_state(container: Container, unit: str) -> dict[str, str]:
    output = container.check(["systemctl", "show", unit, "--property=ActiveState,SubState,DropInPaths,NRestarts"])
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
