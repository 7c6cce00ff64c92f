"""What the program needs to know about an EC2 instance type: its memory and CPU architecture.

The memory sizes the MLflow workers (userdata) and rejects types too small for the server; the
architecture picks the Ubuntu AMI (arm64 for Graviton families, amd64 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Architecture = Literal["amd64", "arm64"]

MIN_SERVER_MEMORY_MIB = 1024


@dataclass(frozen=True)
class InstanceType:
    name: str
    memory_mib: int
    vcpus: int
    architecture: Architecture


# size -> (memory GiB, vCPUs) per family shape; AWS publishes these and they do not change.
_BURSTABLE: dict[str, tuple[float, int]] = {
    "nano": (0.5, 2), "micro": (1, 2), "small": (2, 2), "medium": (4, 2),
    "large": (8, 2), "xlarge": (16, 4), "2xlarge": (32, 8),
}
_GENERAL: dict[str, tuple[float, int]] = {"large": (8, 2), "xlarge": (16, 4), "2xlarge": (32, 8), "4xlarge": (64, 16)}
_COMPUTE: dict[str, tuple[float, int]] = {"large": (4, 2), "xlarge": (8, 4), "2xlarge": (16, 8), "4xlarge": (32, 16)}
_MEMORY: dict[str, tuple[float, int]] = {"large": (16, 2), "xlarge": (32, 4), "2xlarge": (64, 8), "4xlarge": (128, 16)}

_FAMILIES: dict[str, tuple[dict[str, tuple[float, int]], Architecture]] = {
    "t3": (_BURSTABLE, "amd64"), "t3a": (_BURSTABLE, "amd64"), "t4g": (_BURSTABLE, "arm64"),
    "m5": (_GENERAL, "amd64"), "m5a": (_GENERAL, "amd64"), "m6i": (_GENERAL, "amd64"),
    "m6a": (_GENERAL, "amd64"), "m7i": (_GENERAL, "amd64"), "m7a": (_GENERAL, "amd64"),
    "m6g": (_GENERAL, "arm64"), "m7g": (_GENERAL, "arm64"), "m8g": (_GENERAL, "arm64"),
    "c5": (_COMPUTE, "amd64"), "c6i": (_COMPUTE, "amd64"), "c7i": (_COMPUTE, "amd64"),
    "c6a": (_COMPUTE, "amd64"), "c7a": (_COMPUTE, "amd64"),
    "c6g": (_COMPUTE, "arm64"), "c7g": (_COMPUTE, "arm64"), "c8g": (_COMPUTE, "arm64"),
    "r5": (_MEMORY, "amd64"), "r6i": (_MEMORY, "amd64"), "r7i": (_MEMORY, "amd64"),
    "r6a": (_MEMORY, "amd64"), "r7a": (_MEMORY, "amd64"),
    "r6g": (_MEMORY, "arm64"), "r7g": (_MEMORY, "arm64"), "r8g": (_MEMORY, "arm64"),
}

KNOWN_INSTANCE_TYPES: dict[str, InstanceType] = {
    f"{family}.{size}": InstanceType(
        name=f"{family}.{size}", memory_mib=int(gib * 1024), vcpus=vcpus, architecture=arch
    )
    for family, (sizes, arch) in _FAMILIES.items()
    for size, (gib, vcpus) in sizes.items()
}


def lookup(name: str) -> InstanceType | None:
    return KNOWN_INSTANCE_TYPES.get(name)


def smallest_with(memory_mib: int, family: str = "t3") -> InstanceType:
    """The known type of `family` (t3 if that family has none big enough) with the least memory >= memory_mib."""
    for wanted in (family, "t3"):
        fits = [t for t in KNOWN_INSTANCE_TYPES.values()
                if t.name.split(".", 1)[0] == wanted and t.memory_mib >= memory_mib]
        if fits:
            return min(fits, key=lambda t: t.memory_mib)
    raise ValueError(f"no known instance type has {memory_mib} MiB of memory")
