"""tests/support/ports.py: ports for servers that must be told theirs, outside the kernel's ephemeral
range and given once across every test process on the machine."""

from __future__ import annotations

import socket

import pytest

from tests.support import ports


@pytest.fixture
def counter(tmp_path, monkeypatch):
    monkeypatch.setattr(ports, "COUNTER", tmp_path / "counter")
    return tmp_path / "counter"


def test_ports_come_from_below_the_kernels_ephemeral_range(counter):
    ephemeral_start = int(ports.EPHEMERAL_RANGE.read_text().split()[0])
    given = [ports.free_port() for _ in range(20)]
    assert all(ports.LOWEST <= port < ephemeral_start for port in given), given


def test_no_port_is_given_twice_before_the_range_wraps(counter):
    given = [ports.free_port() for _ in range(200)]
    assert len(set(given)) == len(given)


def test_a_port_something_holds_is_skipped(counter):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        assignable = ports.assignable_ports()
        index = next(i for i, port in enumerate(assignable) if ports.bindable(port))
        holder.bind((ports.LOOPBACK, assignable[index]))
        holder.listen()
        counter.write_text(str(index))  # the held port is next in turn

        assert ports.free_port() != assignable[index]
