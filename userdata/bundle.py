"""The host's files as one S3 object (DESIGN decision 16): what the program uploads and the bootstrap
(host_programs/bootstrap.py) fetches, checks against its sha256 and writes.

The object holds every HostFile the host needs (userdata.host_files, the one list the loopback and boot
harnesses read too), in order, with its path, owner, permissions, whether cloud-init would have deferred it,
and its content. Its bytes depend on nothing but the files (sorted keys, ASCII only, no whitespace), so the
same settings give the same sha256 on every machine: the user data names that sha256 and the object's key,
and a change to any host file still changes the user data, which replaces the host.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from userdata.files import HostFile

# Every object the program uploads is under this prefix of the host-files bucket; the host's role may read
# only there (components/identity.py).
KEY_PREFIX = "host-files/"


@dataclass(frozen=True)
class HostBundle:
    body: bytes  # ASCII JSON: what S3 stores, byte for byte

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}{self.sha256}.json"

    @property
    def text(self) -> str:
        """The body as the object's content (Pulumi's BucketObjectv2 takes text; ASCII encodes as itself)."""
        return self.body.decode("ascii")


def entry(file: HostFile) -> dict[str, object]:
    return {"path": file.path, "owner": file.owner, "permissions": file.permissions, "defer": file.defer,
            "content": file.content}


def bundle_of(files: Iterable[HostFile]) -> HostBundle:
    document = {"files": [entry(file) for file in files]}
    return HostBundle(json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii"))


def files_of(bundle: HostBundle) -> list[HostFile]:
    """The HostFiles an object holds, in order (what the bootstrap reads from it)."""
    document = json.loads(bundle.body)
    return [HostFile(path=item["path"], content=item["content"], permissions=item["permissions"],
                     owner=item["owner"], defer=item["defer"]) for item in document["files"]]
