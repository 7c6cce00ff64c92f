"""/health and a logged-in user while one address holds many half-sent requests open (issue 23, hole 4).

One attacker address (127.0.68.2) opens `--connections` connections and leaves each request unfinished, in
three ways: headers never ended (slowloris), a declared body never sent without a login, and the same
with a valid login (which MLflow itself would wait on). Meanwhile a monitor polls /health and a member
polls users/current, each from an address of its own, every `--interval` seconds for `--seconds`; the
loopback's nginx.conf has Debian's worker_connections (768, one worker). The counted figures: the
monitor's and the member's failed requests, their longest gap between two successes, and the attacker's
requests that nginx admitted. `--variant no-client-limits` removes the rendered timeouts and per-address
limit (the nginx site before issue 23) for comparison.

    .venv/bin/python -m bench.slow_clients [--connections 300] [--seconds 30] [--variant rendered]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.common import print_machine, print_table, verdict
from bench.host_install import host_venv
from bench.stack import NGINX_VARIANTS, bench_stack
from tests.support import raw_http
from tests.support.loopback import LoopbackStack

ATTACKER, MONITOR, MEMBER = "127.0.68.2", "127.0.69.2", "127.0.70.2"
KINDS = ("headers never ended", "body never sent, no login", "body never sent, logged in")


@dataclass
class Poll:
    """A client in a bounded loop: its failed requests and its longest gap between two successes."""

    failures: int = 0
    requests: int = 0
    longest_gap: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    def run(self, probe: Callable[[], int], seconds: float, interval: float) -> None:
        deadline = time.monotonic() + seconds
        last_success = time.monotonic()
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status = probe()
            except OSError:
                status = 0
            self.requests += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 200:
                self.longest_gap = max(self.longest_gap, time.monotonic() - last_success)
                last_success = time.monotonic()
            else:
                self.failures += 1
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
        self.longest_gap = max(self.longest_gap, time.monotonic() - last_success)


def open_half_sent(stack: LoopbackStack, kind: str, count: int) -> list[socket.socket]:
    login = {"Authorization": raw_http.basic(stack.admin_username, stack.admin_password)}
    body = {"Content-Type": "application/json", "Content-Length": "100000"}
    held = []
    for _ in range(count):
        try:
            if kind == KINDS[0]:
                sock = raw_http.half_sent(stack.nginx_port, ATTACKER, "GET", "/api/2.0/mlflow/users/current", login,
                                          finish_headers=False)
            else:
                headers = {**body, **(login if kind == KINDS[2] else {})}
                sock = raw_http.half_sent(stack.nginx_port, ATTACKER, "POST", "/api/2.0/mlflow/runs/log-batch",
                                          headers, finish_headers=True)
                sock.sendall(b'{"run_id": ')
        except OSError:
            break
        held.append(sock)
    return held


def measure(stack: LoopbackStack, kind: str, connections: int, seconds: float, interval: float) -> list[object]:
    login = {"Authorization": raw_http.basic(stack.admin_username, stack.admin_password)}
    held = open_half_sent(stack, kind, connections)
    monitor, member = Poll(), Poll()
    def health() -> int:
        return raw_http.request(stack.nginx_port, MONITOR, "GET", "/health", timeout=5).status

    def current_user() -> int:
        return raw_http.request(stack.nginx_port, MEMBER, "GET", "/api/2.0/mlflow/users/current", login,
                                timeout=5).status

    probes = [threading.Thread(target=poll.run, args=(probe, seconds, interval))
              for poll, probe in ((monitor, health), (member, current_user))]
    for probe in probes:
        probe.start()
    for probe in probes:
        probe.join(seconds + 30)
    still_open = sum(1 for sock in held if _open(sock))
    for sock in held:
        sock.close()
    return [kind, len(held), still_open, f"{monitor.failures}/{monitor.requests}", f"{monitor.longest_gap:.1f}",
            f"{member.failures}/{member.requests}", f"{member.longest_gap:.1f}",
            verdict(monitor.failures == 0)]


def _open(sock: socket.socket) -> bool:
    """Is this connection still held silent: neither closed nor answered?"""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            sock.setblocking(True)
    return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--memory-mib", type=int, default=2048)
    parser.add_argument("--variant", choices=sorted(NGINX_VARIANTS), default="rendered")
    args = parser.parse_args(argv)
    print_machine()
    with bench_stack(host_venv(), variant=args.variant, instance_memory_mib=args.memory_mib) as stack:
        rows = [measure(stack, kind, args.connections, args.seconds, args.interval) for kind in KINDS]
    headers = ["attack", "opened", "still held at the end", "/health failed", "/health longest gap s",
               "member failed", "member longest gap s", "target: /health 200 throughout"]
    print_table(f"{args.connections} half-sent requests from one address, {args.seconds:.0f} s "
                f"(nginx variant {args.variant})", headers, rows)


if __name__ == "__main__":
    main()
