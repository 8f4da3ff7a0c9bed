"""The ``audit.log`` topic: checkpoints announced as ``AuditEntry`` (v2) records, and read back.

The topic copy matters to verifiers: a checkpoint read from Kafka still binds the log even if
its ClickHouse row was deleted together with the entries behind it (a rollback).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from infra.settings import Settings
from projections.audit.log import AUDIT_TOPIC, Checkpoint


class KafkaPublisher:
    """Produces each checkpoint as an ``AuditEntry`` (v2) record on ``audit.log``."""

    def __init__(self, bootstrap: str, settings: Settings, topic: str = AUDIT_TOPIC) -> None:
        from confluent_kafka import Producer

        from schemas.codec import codec_from_settings
        from streams.clients import producer_config

        self.topic = topic
        self._codec = codec_from_settings(settings)
        self._producer = Producer(producer_config(bootstrap))

    def publish(self, cp: Checkpoint, prev_root: bytes | None) -> None:
        value = self._codec.encode("AuditEntry", cp.avro_record(prev_root))
        self._producer.produce(self.topic, key=AUDIT_TOPIC.encode(), value=value)
        left = self._producer.flush(10)
        if left:
            raise RuntimeError(f"checkpoint {cp.size} not acknowledged by Kafka within 10 s")


def read_checkpoint_notes(bootstrap: str, settings: Settings, topic: str = AUDIT_TOPIC, *,
                          idle_s: float = 2.0, timeout_s: float = 60.0) -> list[str]:
    """Every checkpoint note on ``topic``, from the beginning, until ``idle_s`` without records.

    Records that are not checkpoints (v1 entries) are skipped; records that do not decode are
    an error naming their offset.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from schemas.codec import codec_from_settings
    from schemas.errors import DecodeError
    from streams.clients import consumer_config

    codec = codec_from_settings(settings)
    consumer = Consumer(consumer_config(bootstrap, f"csp-audit-verify-{uuid.uuid4().hex[:12]}"))
    notes: list[str] = []
    try:
        md = consumer.list_topics(topic, timeout=10)
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            raise LookupError(f"topic {topic} not found on {bootstrap}")
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < idle_s:
            msg: Any = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                continue
            last = time.monotonic()
            try:
                _, record = codec.decode(msg.value(), expect="AuditEntry")
            except DecodeError as exc:
                raise LookupError(f"{topic}[{msg.partition()}]@{msg.offset()}: {exc}") from None
            if record.get("checkpoint"):
                notes.append(str(record["checkpoint"]))
    finally:
        consumer.close()
    return notes
