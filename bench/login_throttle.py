"""How many wrong passwords get checked (issue 23, hole 5): guessers send wrong passwords through nginx as
fast as one client can, for `--minutes` each, and every answer is counted per minute: 401 (the password
was checked: a guess that got through) or 429 (throttled: not checked).

- one address, a new user name every guess (password spraying): the per-address throttle;
- one user name, a new address every guess (a botnet on one account): the per-user-name throttle, whose
  owner then logs in from an address he used before and from a new one;
- a teammate who logged in from the guesser's own address before logs in throughout.

    .venv/bin/python -m bench.login_throttle [--minutes 3] [--memory-mib 2048]
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import time
from collections.abc import Callable, Iterator

from bench.common import log, print_machine, print_table
from bench.host_install import host_venv
from bench.stack import bench_stack
from server_guard import throttle
from tests.support import raw_http
from tests.support.loopback import LoopbackStack


def addresses(block: int) -> Iterator[str]:
    for number in itertools.count():
        yield f"127.{block}.{number // 250}.{number % 250 + 2}"


def whoami(stack: LoopbackStack, source: str, username: str, password: str) -> int:
    return raw_http.request(stack.nginx_port, source, "GET", "/api/2.0/mlflow/users/current",
                            {"Authorization": raw_http.basic(username, password)}, timeout=30).status


def create_user(stack: LoopbackStack) -> tuple[str, str]:
    username, password = f"member-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    body = f'{{"username": "{username}", "password": "{password}"}}'.encode()
    answer = raw_http.request(stack.nginx_port, "127.0.0.1", "POST", "/api/2.0/mlflow/users/create",
                              {"Authorization": raw_http.basic(stack.admin_username, stack.admin_password),
                               "Content-Type": "application/json"}, body)
    if answer.status != 200:
        raise RuntimeError(f"users/create answered {answer.status}: {answer.body!r}")
    return username, password


def guess_for(minutes: float, guess: Callable[[int], int]) -> list[dict[int, int]]:
    """Per minute: status -> count, guessing back to back."""
    per_minute: list[dict[int, int]] = [{} for _ in range(int(minutes + 0.999))]
    started = time.monotonic()
    for attempt in itertools.count():
        elapsed = time.monotonic() - started
        if elapsed >= minutes * 60:
            break
        status = guess(attempt)
        minute = per_minute[min(int(elapsed // 60), len(per_minute) - 1)]
        minute[status] = minute.get(status, 0) + 1
    return per_minute


def row(case: str, per_minute: list[dict[int, int]], legitimate: str) -> list[object]:
    checked = [minute.get(401, 0) for minute in per_minute]
    refused = [minute.get(429, 0) for minute in per_minute]
    other = sum(count for minute in per_minute for status, count in minute.items() if status not in (401, 429))
    return [case, " / ".join(map(str, checked)), " / ".join(map(str, refused)), other, legitimate]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--memory-mib", type=int, default=2048)
    args = parser.parse_args(argv)
    print_machine()
    rows = []
    with bench_stack(host_venv(), instance_memory_mib=args.memory_mib) as stack:
        office = "127.80.0.2"
        teammate, teammate_password = create_user(stack)
        whoami(stack, office, teammate, teammate_password)
        spray = guess_for(args.minutes, lambda n: whoami(stack, office, f"sprayed-{n}", "Winter2026!"))
        teammate_after = whoami(stack, office, teammate, teammate_password)
        rows.append(row("one address, a new user name each guess", spray,
                        f"teammate from that address: {teammate_after}"))
        log(f"spray: {spray}")

        victim, password = create_user(stack)
        home = "127.81.0.2"
        whoami(stack, home, victim, password)
        botnet = addresses(82)
        campaign = guess_for(args.minutes, lambda n: whoami(stack, next(botnet), victim, f"Guess{n}!"))
        owner = (whoami(stack, home, victim, password), whoami(stack, "127.83.0.2", victim, password))
        rows.append(row("one user name, a new address each guess", campaign,
                        f"owner from home: {owner[0]}, from a new address: {owner[1]}"))
        log(f"campaign: {campaign}")
    print_table(f"Wrong passwords checked per minute ({args.minutes:g} min each; limit {throttle.LIMIT} failures "
                f"per {throttle.WINDOW_SECONDS // 60} min per address and per user name)",
                ["guesser", "checked (401) per minute", "throttled (429) per minute", "other answers",
                 "legitimate login afterwards"], rows)


if __name__ == "__main__":
    main()
