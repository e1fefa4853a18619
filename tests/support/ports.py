"""Free TCP ports on 127.0.0.1 for servers the tests start.

A port taken with ``bind(("127.0.0.1", 0))`` comes from the kernel's ephemeral range, the same
range the kernel hands to every outgoing connection and to the ports BentoML reserves for its
own workers. Between the moment a test learns such a port and the moment ``bentoml serve`` binds
it, one of those can take it ("Address already in use", seen in CI). So ports here are drawn at
random from below the ephemeral range, where nothing is assigned automatically, and checked free.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Its own generator: hypothesis seeds the global one inside tests.
_random = random.SystemRandom()
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _below_ephemeral() -> range:
    try:
        low = int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default start of the ephemeral range
    return range(max(1025, low - 12000), low)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    ports = _below_ephemeral()
    for _ in range(200):
        port = _random.choice(ports)
        if _bindable(port):
            return port
    # Nearly everything below the ephemeral range is taken: let the kernel choose.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
