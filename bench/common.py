"""What every bench script shares: statistics, tables, process memory, and the machine's facts."""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class Summary:
    """Median, min and max of one figure over several runs."""

    median: float
    minimum: float
    maximum: float
    runs: int

    def show(self, digits: int = 2) -> str:
        return f"{self.median:.{digits}f} (min {self.minimum:.{digits}f}, max {self.maximum:.{digits}f}, n={self.runs})"


def summarize(values: Iterable[float]) -> Summary:
    data = list(values)
    if not data:
        raise ValueError("no values to summarize")
    return Summary(statistics.median(data), min(data), max(data), len(data))


def percentile(values: Iterable[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default): fraction 0.5 is the median."""
    data = sorted(values)
    if not data:
        raise ValueError("no values for a percentile")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is not within [0, 1]")
    position = (len(data) - 1) * fraction
    lower, upper = math.floor(position), math.ceil(position)
    return data[lower] + (data[upper] - data[lower]) * (position - lower)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.inf


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (readable in a terminal as well), columns padded to their widest cell."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    if any(len(row) != len(headers) for row in cells):
        raise ValueError("every row needs one cell per header")
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(cells[0]), separator, *(line(row) for row in cells[1:])])


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print(f"\n### {title}\n\n{format_table(headers, rows)}\n", flush=True)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- process memory ------------------------------------------------------------------------------


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """`/proc/<pid>/smaps_rollup` -> {"Rss": kiB, "Pss": kiB, ...} (the kB lines only)."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            fields[key.strip()] = int(parts[0])
    return fields


def memory_kib(pid: int) -> dict[str, int]:
    """Rss and Pss of one process, in kiB; {} once it has gone."""
    try:
        return parse_smaps_rollup(Path(f"/proc/{pid}/smaps_rollup").read_text())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}


def children_of(pid: int) -> list[int]:
    """Every descendant of `pid` (not `pid` itself), through /proc/<pid>/task/*/children."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(word) for word in task.read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            pending.extend(kids)
    return sorted(set(found))


def process_tree(pid: int) -> list[int]:
    return [pid, *children_of(pid)]


def tree_memory_mib(pids: Iterable[int], field: str = "Pss") -> float:
    return sum(memory_kib(pid).get(field, 0) for pid in pids) / 1024


def parse_stat_cpu_ticks(stat: str) -> int:
    """utime + stime + cutime + cstime from the text of /proc/<pid>/stat, in clock ticks."""
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return sum(int(value) for value in fields[11:15])


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time used by `pids` and their reaped children."""
    ticks = 0
    for pid in pids:
        try:
            ticks += parse_stat_cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class MemorySampler:
    """Samples the summed PSS and RSS of `pids()` every `interval` seconds in a thread, within `limit` s."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval: float = 0.1, limit: float = 3600) -> None:
        self.pids = pids
        self.interval = interval
        self.limit = limit
        self.samples: list[tuple[float, float, float]] = []  # (monotonic time, PSS MiB, RSS MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            pids = list(self.pids())
            rollups = [memory_kib(pid) for pid in pids]
            self.samples.append((time.monotonic(), sum(r.get("Pss", 0) for r in rollups) / 1024,
                                 sum(r.get("Rss", 0) for r in rollups) / 1024))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def pss(self, since: float = 0.0) -> list[float]:
        return [pss for at, pss, _ in self.samples if at >= since]

    def rss(self, since: float = 0.0) -> list[float]:
        return [rss for at, _, rss in self.samples if at >= since]


# -- the machine ---------------------------------------------------------------------------------


def _first_line(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return "absent"
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    output = (result.stdout + result.stderr).strip()
    return output.splitlines()[0] if output else "unknown"


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def os_name(os_release: str) -> str:
    for line in os_release.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"')
    return platform.platform()


def machine_facts() -> dict[str, str]:
    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    memory = parse_smaps_rollup(read("/proc/meminfo"))
    postgres = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    try:
        mlflow_version = importlib.metadata.version("mlflow")
    except importlib.metadata.PackageNotFoundError:
        mlflow_version = "absent"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "cpu": cpu_model(read("/proc/cpuinfo")),
        "memory": f"{memory.get('MemTotal', 0) / MIB:.1f} GiB",
        "os": os_name(read("/etc/os-release")),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "system python3": _first_line(["/usr/bin/python3", "--version"]),
        "mlflow": mlflow_version,
        "nginx": _first_line(["nginx", "-v"]),
        "postgresql": _first_line([str(postgres[-1]), "--version"]) if postgres else "absent",
        "load average": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def print_machine() -> None:
    print_table("Machine", ["fact", "value"], sorted(machine_facts().items()))
