"""Free ports on 127.0.0.1 for components that need their port known before they start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port that was free a moment ago; the API server's must be known before the scheduler starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
