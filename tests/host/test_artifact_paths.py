"""Where a stock MLflow client's artifact bytes go, counted: requests reaching nginx (its access log) and
requests reaching S3 with a presigned URL (moto's access log: a presigned request carries
X-Amz-Signature in its query, the server's own boto3 calls sign a header instead).

By default the server advertises presigned transfers in /api/3.0/mlflow/server-info, so every download
and every upload from MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE on go straight to S3; with the variables
`mlflow-aws env --proxy-artifacts` writes, every byte goes through nginx. "Large" here is 12 MiB with
that threshold lowered from 500 MiB to 8 MiB (the same code path as a 600 MB file, in a test's time).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from client import envfile
from tests.support import loopback, servers

pytestmark = pytest.mark.host

MIB = 1024 * 1024
SIZES = {"small": 4 * 1024, "large": 12 * MIB}
LARGE_THRESHOLD = {"MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": str(8 * MIB),
                   "MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE": str(10 * MIB)}
_REQUEST_LINE = re.compile(r'"(GET|PUT|POST|HEAD|DELETE|PATCH) (\S+) HTTP/[\d.]+"')
_TERMINAL_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours some status lines (206 among them)


@dataclass(frozen=True)
class Traffic:
    nginx: Counter[str]  # "PUT artifact", "GET artifact", "POST mpu", "GET presigned", ...
    s3_presigned: Counter[str]  # "PUT", "GET"

    @property
    def artifact_bytes_via_nginx(self) -> int:
        return self.nginx["PUT artifact"] + self.nginx["GET artifact"]


def _kind(path: str) -> str | None:
    if "/mlflow-artifacts/mpu/" in path:
        return "mpu"
    if "/mlflow-artifacts/presigned/" in path:
        return "presigned"
    if "/mlflow-artifacts/artifacts/" in path:  # a file's body; a listing is ".../artifacts?path="
        return "artifact"
    return None


class LogWatch:
    """Counts the request lines that nginx and moto append to their logs while it is open."""

    def __init__(self, stack: loopback.LoopbackStack) -> None:
        self.stack = stack
        self.nginx_log = stack.logs / "nginx-access.log"
        self.moto_log = stack.moto.log
        self._start = (self._size(self.nginx_log), self._size(self.moto_log))

    @staticmethod
    def _size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    def traffic(self) -> Traffic:
        nginx_lines, moto_lines = (
            [_TERMINAL_COLOUR.sub("", line) for line in lines]
            for lines in servers.logged_until_now([(self.nginx_log, self._start[0], self.stack.tracking_uri),
                                                   (self.moto_log, self._start[1], self.stack.moto.endpoint)]))
        nginx: Counter[str] = Counter()
        for line in nginx_lines:
            match = _REQUEST_LINE.search(line)
            if match and (kind := _kind(match.group(2))):
                nginx[f"{match.group(1)} {kind}"] += 1
        s3: Counter[str] = Counter()
        for line in moto_lines:
            match = _REQUEST_LINE.search(line)
            if match and "X-Amz-Signature=" in match.group(2):
                s3[match.group(1)] += 1
        return Traffic(nginx, s3)


@pytest.fixture
def client_of(loopback_stack: loopback.LoopbackStack, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> Iterator[tuple[loopback.LoopbackStack, str, Path]]:
    """A run on the stack, the stock client pointed at it as the admin, and a file of each size."""
    import mlflow
    from mlflow.tracking import MlflowClient

    for key in [key for key in os.environ if key.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", loopback_stack.tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", loopback_stack.admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", loopback_stack.admin_password)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for key, value in LARGE_THRESHOLD.items():
        monkeypatch.setenv(key, value)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(loopback_stack.tracking_uri)
    client = MlflowClient(loopback_stack.tracking_uri)
    run_id = client.create_run(client.create_experiment(f"artifact-paths-{os.getpid()}-{time.time_ns()}")).info.run_id
    for name, size in SIZES.items():
        (tmp_path / f"{name}.bin").write_bytes(os.urandom(size))
    yield loopback_stack, run_id, tmp_path
    mlflow.set_tracking_uri(previous)


def transfer(stack: loopback.LoopbackStack, run_id: str, source: Path, directory: str,
             ) -> tuple[Traffic, Traffic]:
    """Upload `source` then download it with the stock client; the traffic of each, bytes checked."""
    import mlflow
    from mlflow.tracking import MlflowClient

    watch = LogWatch(stack)
    MlflowClient(stack.tracking_uri).log_artifact(run_id, str(source), directory)
    upload = watch.traffic()
    watch = LogWatch(stack)
    target = source.parent / f"download-{directory}"
    downloaded = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{directory}/{source.name}",
                                                     dst_path=str(target))
    download = watch.traffic()
    assert Path(downloaded).read_bytes() == source.read_bytes()
    return upload, download


def test_the_server_advertises_presigned_transfers(loopback_stack):
    import requests

    with requests.Session() as session:
        session.trust_env = False
        info = session.get(f"{loopback_stack.tracking_uri}/api/3.0/mlflow/server-info", timeout=30).json()
    assert info["multipart_uploads_enabled"] is True and info["multipart_downloads_enabled"] is True


def test_by_default_downloads_and_large_uploads_go_straight_to_s3(client_of):
    stack, run_id, files = client_of
    small_up, small_down = transfer(stack, run_id, files / "small.bin", "default-small")
    large_up, large_down = transfer(stack, run_id, files / "large.bin", "default-large")

    # A small upload streams through nginx; the large one only asks nginx for the URLs, then PUTs its
    # parts (10 + 2 MiB) to S3.
    assert (small_up.nginx["PUT artifact"], sum(small_up.s3_presigned.values())) == (1, 0)
    assert large_up.nginx["PUT artifact"] == 0 and large_up.nginx["POST mpu"] == 2  # create, complete
    assert large_up.s3_presigned == Counter({"PUT": 2})
    # Every download, small or large: one presigned URL from nginx, the bytes from S3.
    for download in (small_down, large_down):
        assert download.nginx["GET artifact"] == 0 and download.nginx["GET presigned"] == 1
        assert download.s3_presigned["GET"] >= 1


def test_with_proxy_artifacts_every_byte_goes_through_nginx(client_of, monkeypatch):
    for name, value in envfile.PROXY_ARTIFACTS:
        monkeypatch.setenv(name, value)
    stack, run_id, files = client_of
    for size in SIZES:
        upload, download = transfer(stack, run_id, files / f"{size}.bin", f"proxied-{size}")
        assert upload.nginx["PUT artifact"] == 1 and download.nginx["GET artifact"] == 1, size
        assert upload.s3_presigned + download.s3_presigned == Counter(), size
        assert upload.nginx["POST mpu"] + download.nginx["GET presigned"] == 0, size
