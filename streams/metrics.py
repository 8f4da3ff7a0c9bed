"""Prometheus metrics of the processing engine (one registry per engine, no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class EngineMetrics:
    def __init__(self, processor: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        labels = {"processor": processor}
        self.records_in = Counter(
            "csp_engine_records_in", "Input records processed", registry=self.registry, labelnames=list(labels)
        ).labels(**labels)
        self.records_out = Counter(
            "csp_engine_records_out", "Output records produced", registry=self.registry, labelnames=list(labels)
        ).labels(**labels)
        self.dead_letters = Counter(
            "csp_engine_dead_letters", "Records sent to dead-letter topics", registry=self.registry, labelnames=list(labels)
        ).labels(**labels)
        self.batches = Counter(
            "csp_engine_batches", "Batches processed", registry=self.registry, labelnames=list(labels)
        ).labels(**labels)
        self.transactions = Counter(
            "csp_engine_transactions", "Committed transactions", registry=self.registry, labelnames=list(labels)
        ).labels(**labels)
        self.aborts = Counter(
            "csp_engine_aborts", "Aborted transactions", registry=self.registry, labelnames=list(labels)
        ).labels(**labels)
        self.retries = Counter(
            "csp_engine_batch_retries", "Batches retried record by record", registry=self.registry, labelnames=list(labels)
        ).labels(**labels)
        self.assigned = Gauge(
            "csp_engine_assigned_partitions", "Assigned input partitions", registry=self.registry, labelnames=list(labels)
        ).labels(**labels)
        self.batch_seconds = Histogram(
            "csp_engine_batch_seconds", "Time to process and commit one batch", registry=self.registry,
            labelnames=list(labels),
        ).labels(**labels)

    def serve(self, port: int) -> None:
        """Expose /metrics on ``port`` (0 disables)."""
        if port:
            start_http_server(port, registry=self.registry)
