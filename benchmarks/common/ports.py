"""Free loopback ports for servers the benchmarks and tests start next to each other.

Here, not in tests/support: the benchmarks are product code and import nothing from tests/."""

from __future__ import annotations

import socket


def free_loopback_port() -> int:
    """A port free on 127.0.0.1 now (side-by-side local clusters, Redis, Prometheus).

    Another process may take it before the caller binds it; callers that
    cannot tolerate that retry with a fresh port.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
