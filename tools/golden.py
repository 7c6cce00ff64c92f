"""The rendered user data and the host's files, as readable text under tests/golden/ (DESIGN decision 18):
a template change is reviewed as a text diff, not as a changed blob.

One directory per case (dev, prod, a fleet, each TLS mode), each holding
  user-data.yaml       the #cloud-config document EC2 receives (gunzipped): the bootstrap, the host files'
                       key and sha256
  files.txt            every host file in the object the user data names, in order: path, owner, mode,
                       whether the bootstrap writes it before the packages (early) or after (deferred), and
                       "as in dev" where its content is the dev case's
  files/<host path>    each host file's content; in the other cases, only those whose content differs
                       from dev's (a change to a file every case shares is one diff, not six)

Regenerate after an intended change, and review the diff with the change:

    .venv/bin/python -m tools.golden --write

tests/unit/test_golden.py fails, printing that command, while the committed files differ from the program.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import gzip
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import userdata
from config import load_config
from host_settings import host_settings_for

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "tests" / "golden"
COMMAND = ".venv/bin/python -m tools.golden --write"
PROJECT, REGION = "mlflow-aws", "eu-west-1"
# What AWS allocates, the same in every case: the mocks' RandomId hex and a documentation address.
ARTIFACT_BUCKET = "mlflow-aws-{stack}-artifacts-1a2b3c4d"
HOST_FILES_BUCKET = "mlflow-aws-{stack}-host-files-1a2b3c4d"
PUBLIC_IP = "203.0.113.10"
DOMAIN = "mlflow.example.com"
HOSTED_ZONE_ID = "Z0123456789ABCDEFGHIJ"


@dataclass(frozen=True)
class Case:
    name: str
    stack: str
    config: Mapping[str, Any]
    why: str


CASES = (
    Case("dev", "dev", {}, "the dev stack's config: tls letsencrypt for the Elastic IP (HTTP-01)"),
    Case("prod", "prod", {"protectData": True, "dbMultiAz": True}, "the prod stack's config"),
    Case("fleet", "dev", {"hosts": 2, "domain": DOMAIN, "hostedZoneId": HOSTED_ZONE_ID},
         "hosts: 2 behind the load balancer (its certificate is ACM's: no TLS on the hosts)"),
    Case("tls-domain-http-01", "dev", {"domain": DOMAIN}, "a domain, its certificate by HTTP-01"),
    Case("tls-domain-dns-01", "dev", {"domain": DOMAIN, "hostedZoneId": HOSTED_ZONE_ID},
         "a domain in a hosted zone, its certificate by DNS-01 (Route 53)"),
    Case("tls-off", "dev", {"tls": "off"}, "tls off: plain HTTP"),
)


def settings_of(case: Case) -> userdata.HostSettings:
    cfg = load_config(dict(case.config), project=PROJECT, stack=case.stack, region=REGION)
    return host_settings_for(cfg, artifact_bucket=ARTIFACT_BUCKET.format(stack=case.stack),
                             host_files_bucket=HOST_FILES_BUCKET.format(stack=case.stack),
                             public_ip="" if cfg.fleet else PUBLIC_IP)


BASE = CASES[0]


def rendered(case: Case, base: Mapping[str, str]) -> dict[str, str]:
    """The case's golden files (relative path -> text); `base`: the dev case's host files (path -> content)."""
    settings = settings_of(case)
    # What EC2 receives, unpacked as cloud-init unpacks it.
    document = gzip.decompress(base64.b64decode(userdata.ec2_user_data_base64(settings))).decode("utf-8")
    files = userdata.host_files(settings)
    shared = {file.path for file in files if case != BASE and base.get(file.path) == file.content}
    listing = [f"# {case.why}", f"# s3://{settings.host_files_bucket}/{userdata.host_bundle(settings).key}"]
    listing += [f"{file.path} {file.owner} {file.permissions} {'deferred' if file.defer else 'early'}"
                + (f" as in {BASE.name}" if file.path in shared else "") for file in files]
    texts = {"user-data.yaml": document, "files.txt": "\n".join(listing) + "\n"}
    texts.update({f"files{file.path}": file.content for file in files if file.path not in shared})
    return texts


def expected() -> dict[str, str]:
    """Every golden file: path relative to GOLDEN_DIR -> text."""
    base = {file.path: file.content for file in userdata.host_files(settings_of(BASE))}
    return {f"{case.name}/{path}": text for case in CASES for path, text in rendered(case, base).items()}


def committed(directory: Path = GOLDEN_DIR) -> dict[str, str]:
    return {str(path.relative_to(directory)): path.read_text(encoding="utf-8")
            for path in sorted(directory.rglob("*")) if path.is_file()}


def differences(directory: Path = GOLDEN_DIR) -> Iterator[str]:
    """A unified diff of the committed files against the program's, file by file."""
    want, have = expected(), committed(directory)
    for path in sorted(set(want) | set(have)):
        if want.get(path) != have.get(path):
            yield "".join(difflib.unified_diff(
                have.get(path, "").splitlines(keepends=True), want.get(path, "").splitlines(keepends=True),
                fromfile=f"a/tests/golden/{path}" if path in have else "/dev/null",
                tofile=f"b/tests/golden/{path}" if path in want else "/dev/null"))


def write(directory: Path = GOLDEN_DIR) -> int:
    if directory.exists():
        shutil.rmtree(directory)
    files = expected()
    for path, text in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return len(files)


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.golden", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite tests/golden/ from the program")
    action.add_argument("--check", action="store_true", help="print the diff and exit 1 if they differ")
    args = parser.parse_args(arguments)
    if args.write:
        print(f"wrote {write()} files under {GOLDEN_DIR}")
        return 0
    diff = "".join(differences())
    if diff:
        sys.stdout.write(diff)
        print(f"\nthe golden files differ from the program: if intended, run {COMMAND} and commit the diff")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
