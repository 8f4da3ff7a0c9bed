"""Prometheus metrics of the processing engine (one registry per engine, no globals)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# attribute -> (metric type, metric name, help)
_METRICS: dict[str, tuple[type[Any], str, str]] = {
    "records_in": (Counter, "csp_engine_records_in", "Input records processed"),
    "records_out": (Counter, "csp_engine_records_out", "Output records produced"),
    "dead_letters": (Counter, "csp_engine_dead_letters", "Records sent to dead-letter topics"),
    "batches": (Counter, "csp_engine_batches", "Batches processed"),
    "transactions": (Counter, "csp_engine_transactions", "Committed transactions"),
    "aborts": (Counter, "csp_engine_aborts", "Aborted transactions"),
    "retries": (Counter, "csp_engine_batch_retries", "Batches retried record by record"),
    "assigned": (Gauge, "csp_engine_assigned_partitions", "Assigned input partitions"),
    "batch_seconds": (Histogram, "csp_engine_batch_seconds", "Time to process and commit one batch"),
}


class EngineMetrics:
    """The engine's metrics, labelled with the processor name."""

    records_in: Any
    records_out: Any
    dead_letters: Any
    batches: Any
    transactions: Any
    aborts: Any
    retries: Any
    assigned: Any
    batch_seconds: Any

    def __init__(self, processor: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        for attr, (kind, name, doc) in _METRICS.items():
            metric = kind(name, doc, labelnames=["processor"], registry=self.registry)
            setattr(self, attr, metric.labels(processor=processor))

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics on ``host:port`` (port 0 disables); the server thread is a daemon.

        Loopback by default: a deployment that scrapes from elsewhere sets
        ``CSP_METRICS_HOST`` (docker-compose does, inside its private network).
        """
        if port:
            start_http_server(port, addr=host, registry=self.registry)
