"""Free loopback TCP ports."""

from __future__ import annotations

import contextlib
import socket
import time

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def is_listening(port: int, host: str = LOOPBACK, timeout_s: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


def is_reusable(port: int, host: str = LOOPBACK, attempts: int = 10, pause_s: float = 0.1) -> bool:
    """``is_free``, retried briefly: a port recorded by a stopped stack can be held for a moment
    by a transient socket (for instance a client connection that was using it as its local port)."""
    for attempt in range(attempts):
        if is_free(port, host):
            return True
        if attempt < attempts - 1:
            time.sleep(pause_s)
    return False
