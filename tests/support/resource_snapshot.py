"""What a stack registers, as plain JSON: every resource's type, name, parent, options and inputs.

`tests/unit/test_fleet_program.py` compares the single-host stacks (`hosts: 1`, dev and prod) with the
snapshots in tests/unit/snapshots/, so that a change meant for the fleet cannot touch them unnoticed.
When a change to the single host is intended, rewrite them and review the diff:

    .venv/bin/python -m tests.support.resource_snapshot --write

The blobs the host boots from (the instance's gzipped user data, the object of the host's files) are kept
as their sha256 only: their text is reviewed as the golden files (tools/golden.py), and a change to either
still changes the snapshot.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from tests.support.pulumi_program import ProgramRun, run_program

SNAPSHOT_DIR = Path(__file__).resolve().parents[1] / "unit" / "snapshots"
STACKS = ("dev", "prod")


def snapshot_path(stack: str) -> Path:
    return SNAPSHOT_DIR / f"single_host_{stack}.json"


# (resource type, input) of each blob kept as its sha256
BLOBS = {("aws:ec2/instance:Instance", "userDataBase64"), ("aws:s3/bucketObjectv2:BucketObjectv2", "content")}


def without_blobs(type_token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {key: {"sha256": hashlib.sha256(str(value).encode()).hexdigest()} if (type_token, key) in BLOBS else value
            for key, value in inputs.items()}


def snapshot(run: ProgramRun) -> dict[str, Any]:
    names = {resource.urn: f"{resource.type}::{resource.name}" for resource in run.resources}

    def named(urns: set[str]) -> list[str]:
        return sorted(names.get(urn, urn) for urn in urns)

    resources = {
        f"{resource.type}::{resource.name}": {
            "parent": names.get(resource.parent, ""),
            "inputs": without_blobs(resource.type, resource.inputs),
            "dependencies": named(resource.dependencies),
            "property_dependencies": {
                key: named(value) for key, value in sorted(resource.property_dependencies.items())
            },
            "options": {
                "retain_on_delete": resource.retain_on_delete,
                "delete_before_replace": resource.delete_before_replace,
                "ignore_changes": resource.ignore_changes,
                "replacement_trigger": resource.replacement_trigger,
            },
        }
        for resource in run.resources
    }
    # Through JSON and back, so a fresh run compares equal to a file (tuples become lists, and so on).
    loaded: dict[str, Any] = json.loads(json.dumps({"resources": resources, "outputs": run.outputs},
                                                   sort_keys=True, default=str))
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the snapshots from the current program")
    arguments = parser.parse_args()
    for stack in STACKS:
        text = json.dumps(snapshot(run_program(stack)), indent=1, sort_keys=True) + "\n"
        if arguments.write:
            snapshot_path(stack).write_text(text)
            print(f"wrote {snapshot_path(stack)}")
        else:
            print(text)


if __name__ == "__main__":
    main()
