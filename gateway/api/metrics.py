"""The API's Prometheus metrics, on a registry of its own (one per app; no globals)."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# offers and starts take a Kafka round trip: tens of milliseconds
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc, else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class ApiMetrics:
    def __init__(self, processes_active: Callable[[], float], channels_open: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.processes_active = Gauge("csp_processes_active", "Running CSP instances", registry=r)
        self.processes_active.set_function(processes_active)
        self.channels_open = Gauge("csp_channels_open", "Channels of the deployed systems", registry=r)
        self.channels_open.set_function(channels_open)
        self.execution_duration = Histogram(
            "csp_execution_duration", "Seconds a runtime operation took through the API (deploy, start, offer, stop)",
            ["operation"], buckets=BUCKETS, registry=r,
        )  # fmt: skip
        self.memory_usage = Gauge("csp_memory_usage", "Resident memory of the API process (bytes)", registry=r)
        self.memory_usage.set_function(lambda: float(rss_bytes()))
        self.api_requests = Counter(
            "csp_api_requests", "HTTP requests by route, method and status", ["route", "method", "status"], registry=r
        )
        self.ws_clients = Gauge("csp_ws_clients", "Connected WebSocket clients", registry=r)
        self.ws_dropped = Counter("csp_ws_dropped", "WebSocket clients dropped for being too slow", registry=r)
        self.ws_messages = Counter("csp_ws_messages", "Messages sent to WebSocket clients", registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
