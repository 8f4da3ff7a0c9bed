"""Read a partition from an offset to its current end, without writing anything and without
trusting ListOffsets.

The embedded broker reports wrong end offsets through ListOffsets
(``get_watermark_offsets`` / ``query_watermark_offsets``, ``OFFSET_END``) when a
batch holds several records, so "read until the queried high watermark" is unsafe.
Its fetch responses, however, carry the right high watermark, and librdkafka
reports *partition EOF* when a fetch reaches it. So a read goes on until the
partition's EOF event: everything acknowledged before the read started is
below that mark. A ``read_committed`` read stops at the last stable offset, so
an open transaction never makes a read wait (the runtime aborts transactions
that crashed workers left open when it takes their partitions over).

Nothing is written to the topic being read. Earlier versions appended *fence*
records (no value, header ``csp-marker: <32 hex digits>``) to the topics they
read; such records still in a log are skipped here (and by the engine: see
:func:`streams.engine.is_platform_fence`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from streams.clients import consume_available, consumer_config, producer_config


def is_platform_fence(value: bytes | None, headers: Any) -> bool:
    """:func:`streams.engine.is_platform_fence`, imported on first use: the engine module is
    heavy, and a CLI read that meets no value-less record never needs it."""
    if value is not None or not headers:
        return False
    from streams.engine import is_platform_fence as check

    return check(value, headers)


class ReadTimeout(RuntimeError):
    """The end of the partition was not reached in time."""


def append_fence(bootstrap: str, topic: str, partition: int, timeout_s: float = 15.0) -> bytes:
    """Append a fence record (the old end-of-partition mechanism). The platform no longer calls
    this: reading never writes to the topics users consume. Kept for compatibility."""
    from streams.engine import MARKER_HEADER

    fence = uuid.uuid4().hex.encode()
    producer = Producer(producer_config(bootstrap))
    producer.produce(topic, value=None, partition=partition, headers=[(MARKER_HEADER, fence)])
    if producer.flush(timeout_s):
        raise ReadTimeout(f"could not append a fence to {topic}[{partition}] within {timeout_s}s")
    return fence


def _consumer(bootstrap: str, read_committed: bool, **overrides: Any) -> Consumer:
    conf: dict[str, Any] = consumer_config(
        bootstrap,
        f"csp-reader-{uuid.uuid4().hex}",
        read_committed=read_committed,
        # a fetch at the partition's end returns after 10 ms, not 100: a read ends that much sooner
        **{"enable.partition.eof": True, "fetch.wait.max.ms": 10, **overrides},
    )
    return Consumer(conf)


def _exists(consumer: Consumer, topic: str, partition: int, timeout_s: float) -> bool:
    """Does the partition exist? (A consumer assigned to a missing one waits silently.)"""
    try:
        md = consumer.list_topics(topic, timeout=min(10.0, timeout_s))
    except Exception as exc:
        raise ReadTimeout(f"{topic}[{partition}]: no metadata: {exc}") from None
    t = md.topics.get(topic)
    return t is not None and t.error is None and partition in t.partitions


def read_to_end(
    bootstrap: str,
    topic: str,
    partition: int,
    start_offset: int = 0,
    *,
    timeout_s: float = 60.0,
    read_committed: bool = True,
) -> Iterator[tuple[int, bytes | None, bytes | None, int]]:
    """Yield ``(offset, key, value, timestamp_ms)`` from ``start_offset`` up to the partition's end
    (its end when the read reached it). Raises :class:`ReadTimeout` after ``timeout_s``.

    Fence records of the old reader are skipped.
    """
    consumer = _consumer(bootstrap, read_committed)
    try:
        if not _exists(consumer, topic, partition, timeout_s):
            return  # a topic that does not exist (yet) is empty
        consumer.assign([TopicPartition(topic, partition, max(0, start_offset))])
        deadline = time.monotonic() + timeout_s
        while True:
            if time.monotonic() > deadline:
                raise ReadTimeout(f"{topic}[{partition}]: end of partition not reached within {timeout_s}s")
            for msg in consume_available(consumer, 10000, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return
                    if err.fatal() or not err.retriable():
                        raise RuntimeError(f"{topic}[{partition}]: {err}")
                    continue
                value = msg.value()
                if value is None and is_platform_fence(value, msg.headers()):
                    continue
                yield msg.offset() or 0, msg.key(), value, msg.timestamp()[1]
    finally:
        consumer.close()


def read_records(
    bootstrap: str,
    topic: str,
    partition: int,
    decode: Callable[[bytes], tuple[str, dict[str, Any]]],
    schema: str,
    start_offset: int = 0,
    *,
    timeout_s: float = 60.0,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(offset, record)`` of every ``schema`` record from ``start_offset`` to the partition's end.

    Records without a value, of another schema, or that do not decode are skipped: a state
    rebuilt from a topic takes what it knows and leaves the rest (the engine dead-letters bad
    input where it arrives)."""
    for offset, _key, value, _ts in read_to_end(bootstrap, topic, partition, start_offset, timeout_s=timeout_s):
        if value is None:
            continue
        try:
            name, rec = decode(value)
        except Exception:  # noqa: BLE001 - skipped, as documented
            continue
        if name == schema:
            yield offset, rec


def end_offset(
    bootstrap: str, topic: str, partition: int, *, timeout_s: float = 30.0, read_committed: bool = True
) -> int:
    """The partition's current end offset (high watermark), from the fetch path: the high
    watermark of the first fetch response (right on the embedded broker, unlike ListOffsets), or
    the partition's EOF. One small fetch, whatever the partition's size. Writes nothing."""
    consumer = _consumer(
        bootstrap, read_committed, **{"max.partition.fetch.bytes": 1024}
    )
    try:
        if not _exists(consumer, topic, partition, timeout_s):
            return 0
        tp = TopicPartition(topic, partition)
        try:
            _low, high = consumer.get_watermark_offsets(tp, timeout=min(10.0, timeout_s))
            start = max(0, int(high) - 1)
        except Exception:
            start = 0
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout_s
        end = start
        while True:
            if time.monotonic() > deadline:
                raise ReadTimeout(f"{topic}[{partition}]: end of partition not reached within {timeout_s}s")
            for msg in consumer.consume(1, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return max(end, int(msg.offset() or 0))
                    if err.fatal() or not err.retriable():
                        raise RuntimeError(f"{topic}[{partition}]: {err}")
                    continue
                end = max(end, (msg.offset() or 0) + 1)
                _low, high = consumer.get_watermark_offsets(tp, cached=True)
                if high is not None and high >= end:
                    return int(high)
    finally:
        consumer.close()


def read_ranges(
    bootstrap: str,
    starts: Mapping[tuple[str, int], int],
    stops: Mapping[tuple[str, int], int] | None = None,
    *,
    topics: tuple[str, ...] = (),
    timeout_s: float = 60.0,
    read_committed: bool = True,
) -> Iterator[tuple[str, int, int, bytes | None, int]]:
    """Yield ``(topic, partition, offset, value, timestamp_ms)`` of several partitions with one
    consumer: each ``(topic, partition)`` from its start offset up to its end (its EOF, as in
    :func:`read_to_end`), or up to ``stops[(topic, partition)]`` (exclusive) when given.

    Every partition of ``topics`` that ``starts`` does not name is read from offset 0.
    Partitions of topics that do not exist are empty. Fence records are skipped. Within a
    partition records come in offset order; partitions interleave."""
    stops = stops or {}
    if not starts and not topics:
        return
    consumer = _consumer(bootstrap, read_committed)
    try:
        try:
            md = consumer.list_topics(timeout=min(10.0, timeout_s))
        except Exception as exc:
            raise ReadTimeout(f"no metadata: {exc}") from None
        exists = {(t, p) for t, tm in md.topics.items() if tm.error is None for p in tm.partitions}
        todo = {k: s for k, s in starts.items() if k in exists}
        for t in topics:
            for k in exists:
                if k[0] == t:
                    todo.setdefault(k, 0)
        todo = {k: s for k, s in todo.items() if k not in stops or stops[k] > s}
        if not todo:
            return
        consumer.assign([TopicPartition(t, p, max(0, s)) for (t, p), s in todo.items()])
        pending = set(todo)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise ReadTimeout(f"{sorted(pending)}: end of partition not reached within {timeout_s}s")
            for msg in consumer.consume(10000, 0.01):  # a short wait: it returns at its timeout
                key = (str(msg.topic()), int(msg.partition() or 0))
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(key)
                        continue
                    if err.fatal() or not err.retriable():
                        raise RuntimeError(f"{key[0]}[{key[1]}]: {err}")
                    continue
                if key not in pending:
                    continue
                offset = msg.offset() or 0
                stop = stops.get(key)
                if stop is not None and offset >= stop:
                    pending.discard(key)
                    continue
                value = msg.value()
                if value is None and is_platform_fence(value, msg.headers()):
                    continue
                yield key[0], key[1], offset, value, msg.timestamp()[1]
                if stop is not None and offset + 1 >= stop:
                    pending.discard(key)
    finally:
        consumer.close()
