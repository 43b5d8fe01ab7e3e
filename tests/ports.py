"""Ports for servers a test starts: free ones on 127.0.0.1, never a fixed number that another
test (or another session on the machine) may hold."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
