"""Read a partition from an offset to its current end, without trusting end offsets.

The embedded broker reports wrong end offsets (``get_watermark_offsets`` /
ListOffsets latest) when a batch holds several records, so "read until the
high watermark" is unsafe. Instead we append a *fence*: a control record with
the header ``csp-marker: <uuid>`` and no value, produced to the partition
itself, then read until that fence comes back. Everything before the fence
was written before we started reading. Consumers skip fence records (the
engine does so automatically).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from streams.clients import consumer_config, producer_config
from streams.engine import MARKER_HEADER


class ReadTimeout(RuntimeError):
    """The fence did not come back in time."""


def append_fence(bootstrap: str, topic: str, partition: int, timeout_s: float = 15.0) -> bytes:
    fence = uuid.uuid4().hex.encode()
    producer = Producer(producer_config(bootstrap))
    producer.produce(topic, value=None, partition=partition, headers=[(MARKER_HEADER, fence)])
    if producer.flush(timeout_s):
        raise ReadTimeout(f"could not append a fence to {topic}[{partition}] within {timeout_s}s")
    return fence


def read_to_end(
    bootstrap: str,
    topic: str,
    partition: int,
    start_offset: int = 0,
    *,
    timeout_s: float = 60.0,
    read_committed: bool = True,
) -> Iterator[tuple[int, bytes | None, bytes | None, int]]:
    """Yield ``(offset, key, value, timestamp_ms)`` from ``start_offset`` up to a fresh fence.

    Fence records (of this or any earlier reader) are skipped.
    """
    fence = append_fence(bootstrap, topic, partition)
    conf: dict[str, Any] = consumer_config(
        bootstrap, f"csp-reader-{uuid.uuid4().hex}", read_committed=read_committed, **{"enable.partition.eof": False}
    )
    consumer = Consumer(conf)
    try:
        consumer.assign([TopicPartition(topic, partition, max(0, start_offset))])
        deadline = time.monotonic() + timeout_s
        while True:
            if time.monotonic() > deadline:
                raise ReadTimeout(f"{topic}[{partition}]: fence not seen within {timeout_s}s")
            for msg in consumer.consume(10000, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(f"{topic}[{partition}]: {err}")
                raw_headers: Any = msg.headers() or ()
                marker = next((v for k, v in raw_headers if k == MARKER_HEADER), None)
                if marker is not None:
                    if marker == fence:
                        return
                    continue
                yield msg.offset() or 0, msg.key(), msg.value(), msg.timestamp()[1]
    finally:
        consumer.close()
