"""Free ports on 127.0.0.1 for components that need their port known before they start."""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST_PORT = 20000
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_START = 32768
ATTEMPTS = 200


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_START


def free_port() -> int:
    """A port that is free now, chosen below the kernel's ephemeral range.

    The API server's port must be known seconds before it binds it (the scheduler's configuration
    names it). A port from the ephemeral range (what binding port 0 returns) can be taken in between
    by any outgoing connection, which happens when several stacks start side by side; below that
    range only another explicit bind can take it.
    """
    ports = range(LOWEST_PORT, max(LOWEST_PORT + 1, _ephemeral_start()))
    for port in random.sample(ports, min(ATTEMPTS, len(ports))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port on 127.0.0.1 between {ports.start} and {ports.stop - 1}")
