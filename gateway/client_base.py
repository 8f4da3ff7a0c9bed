"""What every SDK client of the platform's topics shares: settings, codec, a lazy producer,
``connect`` from the settings, and closing as a context manager."""

from __future__ import annotations

from typing import Self

from confluent_kafka import Producer

from infra.settings import Settings
from schemas.codec import Codec, codec_from_settings
from streams.clients import producer_config


class KafkaClient:
    """Base of :class:`gateway.sdk.Platform` and :class:`gateway.quantum_sdk.QuantumClient`."""

    def __init__(self, bootstrap: str, *, codec: Codec | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.bootstrap = bootstrap
        self.codec = codec or codec_from_settings(self.settings)
        self._producer: Producer | None = None

    @classmethod
    def connect(cls, settings: Settings | None = None, namespace: str = "") -> Self:
        """A client of the platform the settings name (the embedded stack's broker, or CSP_KAFKA_BOOTSTRAP)."""
        settings = settings or Settings()
        from infra.stack import resolve_endpoints

        return cls(resolve_endpoints(settings).kafka_bootstrap, namespace=namespace, settings=settings)  # type: ignore[call-arg]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(producer_config(self.bootstrap))
        return self._producer
