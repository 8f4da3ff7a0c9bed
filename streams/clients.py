"""confluent-kafka client configuration shared by every platform process.

One place decides the settings the embedded broker needs (session timeout,
Java-compatible key partitioning so that topics keyed by the same id are
co-partitioned, read_committed isolation) so every client behaves alike.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, KafkaException, Message
from confluent_kafka.admin import AdminClient

DEFAULT_SESSION_TIMEOUT_MS = 6000
# librdkafka's murmur2_random equals the Java client's default partitioner, so
# records keyed by an instance id land on the same partition number in every
# topic that has the same partition count, whichever client produced them.
PARTITIONER = "murmur2_random"


def security_config() -> dict[str, str]:
    """Authentication properties from the settings (``CSP_KAFKA_SECURITY_PROTOCOL``, ...).

    Read at each call so that every client built by this module authenticates the same
    way; empty for the embedded broker, which listens on loopback only.
    """
    from infra.settings import Settings

    return Settings().kafka_security()


def _fetch_wait_ms() -> int:
    from infra.settings import Settings

    return Settings().kafka_fetch_wait_ms


def admin_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 5000}
    conf.update(security_config())
    conf.update(overrides)
    return conf


class BrokerUnreachable(RuntimeError):
    """The Kafka cluster did not answer a metadata request in time."""


def consumer_config(
    bootstrap: str,
    group_id: str,
    *,
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
    read_committed: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(500, session_timeout_ms // 3),
        "max.poll.interval.ms": 300000,
        # Tansu holds a fetch for the whole wait even when data arrives (measured: 100 ms gave
        # 50 ms per hop on average, 10 ms gives ~5 ms), so this is each hop's latency.
        "fetch.wait.max.ms": _fetch_wait_ms(),
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        "socket.connection.setup.timeout.ms": 10000,
    }
    conf.update(security_config())
    conf.update(overrides)
    return conf


def producer_config(bootstrap: str, *, transactional_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "partitioner": PARTITIONER,
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
        "enable.idempotence": True,
        "acks": "all",
        "socket.connection.setup.timeout.ms": 10000,
        "message.timeout.ms": 60000,
    }
    if transactional_id is not None:
        conf["transactional.id"] = transactional_id
        conf["transaction.timeout.ms"] = 60000
    conf.update(security_config())
    conf.update(overrides)
    return conf


def check_reachable(bootstrap: str, timeout_s: float = 10.0) -> dict[str, int]:
    """One real metadata request; returns topic -> partition count.

    Raises :class:`BrokerUnreachable` naming the address when nothing answers.
    """
    admin = AdminClient(admin_config(bootstrap))
    try:
        md = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerUnreachable(
            f"Kafka at {bootstrap} did not answer a metadata request within {timeout_s:.0f}s ({exc.args[0]})"
        ) from None
    return {name: len(t.partitions) for name, t in md.topics.items()}


def consume_available(consumer: Consumer, max_messages: int, timeout_s: float) -> list[Message]:
    """Up to ``max_messages`` records, returning as soon as any are available.

    ``Consumer.consume(n, timeout)`` blocks until it has ``n`` records or the timeout has passed,
    so a lone command waited the whole poll timeout (200 ms) at every hop. This takes what the
    client has already fetched; only when that is nothing does it wait, for the first record,
    and then takes what arrived with it. Under load the prefetch queue is full and batches stay
    large; when idle, a record is handed on the moment it arrives."""
    messages = consumer.consume(max_messages, 0)
    if messages or timeout_s <= 0:
        return messages
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(max_messages - 1, 0)] if max_messages > 1 else [first]
