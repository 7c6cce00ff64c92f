"""Ports for the servers the tests start that must be told their port in advance (nginx, PostgreSQL,
MLflow, pebble and its challenge server): none of them can bind port 0 and report what it got.

Binding port 0, closing and handing the number to the server is a race: until the server binds it, the
kernel may give the same port to anything else that binds port 0 or connects out (an ephemeral port),
here or in another checkout's tests on the same machine. So the ports come from below the kernel's
ephemeral range (net.ipv4.ip_local_port_range), which it never hands out by itself, and one counter
file shared by every test process on the machine, under a lock, gives each port once before the range
wraps around; a port something already holds is skipped. Servers that can bind port 0 themselves and
report their port (moto's, the tests' own HTTP stand-ins) do that instead.
"""

from __future__ import annotations

import fcntl
import socket
import tempfile
from pathlib import Path

LOOPBACK = "127.0.0.1"
LOWEST = 10000  # above the well-known and most registered services' ports
COUNTER = Path(tempfile.gettempdir()) / "mlflow-aws-test-ports"
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def assignable_ports() -> range:
    """LOWEST up to the start of the kernel's ephemeral range (32768 where it cannot be read)."""
    try:
        ephemeral_start = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_start = 32768
    return range(LOWEST, max(ephemeral_start, LOWEST + 1000))


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no hold
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port on 127.0.0.1 that no other caller on this machine has been given recently, and that nothing
    holds now."""
    ports = assignable_ports()
    with COUNTER.open("a+") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)  # released when the file closes
        counter.seek(0)
        text = counter.read().strip()
        index = int(text) if text.isdigit() else 0
        for attempt in range(len(ports)):
            port = ports[(index + attempt) % len(ports)]
            if bindable(port):
                counter.seek(0)
                counter.truncate()
                counter.write(str((index + attempt + 1) % len(ports)))
                return port
    raise OSError(f"no free port on {LOOPBACK} in {ports.start}-{ports.stop - 1}")
