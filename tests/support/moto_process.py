"""Run moto's ThreadedMotoServer on 127.0.0.1 in its own process (so the 200 MB uploads it stores
never compete with the test client for one interpreter). Prints the port it bound, then serves
until its standard input closes."""

from __future__ import annotations

import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
