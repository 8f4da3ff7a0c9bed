"""Kafka topic administration: readiness, listing and idempotent creation.

Works the same against the embedded Tansu broker and an external Kafka. Uses
only Metadata and CreateTopics (no CreatePartitions, DeleteRecords or
ListOffsets, which Tansu lacks or gets wrong).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streams.catalog import TopicSpec, with_dead_letters
from streams.clients import security_config

# CreateTopics error codes that mean "the broker does not accept these topic configs".
_CONFIG_REJECTED = {
    KafkaError.INVALID_CONFIG,
    KafkaError.POLICY_VIOLATION,
    KafkaError.UNSUPPORTED_VERSION,
    KafkaError.INVALID_REQUEST,
}


class BrokerUnavailable(RuntimeError):
    """The Kafka cluster did not answer in time (or refused the request)."""


def _admin(bootstrap: str, timeout_s: float) -> AdminClient:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "socket.connection.setup.timeout.ms": max(1000, int(min(timeout_s, 10) * 1000)),
        "reconnect.backoff.max.ms": 1000,
        "log_level": 0,  # connection-refused spam; failures surface as BrokerUnavailable
    }
    conf.update(security_config())
    return AdminClient(conf)


def _unavailable(bootstrap: str, timeout_s: float, detail: object) -> BrokerUnavailable:
    return BrokerUnavailable(
        f"Kafka broker at {bootstrap} is unavailable: no metadata answer within {timeout_s:g}s ({detail}). "
        "Start the local stack with `csp up`, or set CSP_KAFKA_BOOTSTRAP to a reachable Kafka."
    )


def _metadata(admin: AdminClient, bootstrap: str, timeout_s: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    last: object = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _unavailable(bootstrap, timeout_s, last)
        try:
            md = admin.list_topics(timeout=max(0.2, min(remaining, 5.0)))
        except KafkaException as exc:
            last = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else exc
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            continue
        if md.brokers:
            return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}
        last = "metadata without brokers"


def wait_ready(bootstrap: str, timeout_s: float) -> None:
    """Loop on real metadata requests until the broker answers; raises BrokerUnavailable."""
    _metadata(_admin(bootstrap, timeout_s), bootstrap, timeout_s)


def list_topics(bootstrap: str, timeout_s: float = 10) -> dict[str, int]:
    """Topic name -> partition count (internal ``__`` topics excluded)."""
    topics = _metadata(_admin(bootstrap, timeout_s), bootstrap, timeout_s)
    return {name: n for name, n in sorted(topics.items()) if not name.startswith("__")}


def _create(admin: AdminClient, topics: list[NewTopic], timeout_s: float) -> dict[str, KafkaError | None]:
    futures = admin.create_topics(topics, operation_timeout=timeout_s, request_timeout=timeout_s)
    out: dict[str, KafkaError | None] = {}
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
            out[name] = None
        except KafkaException as exc:
            err = exc.args[0]
            out[name] = err if isinstance(err, KafkaError) else KafkaError(KafkaError._FAIL, str(exc))
    return out


def ensure_topics(
    bootstrap: str, specs: Iterable[TopicSpec], timeout_s: float = 30, replication_factor: int = -1
) -> list[str]:
    """Create each topic (and the DLQ of each input topic) unless it exists.

    Explicit partition counts; TOPIC_ALREADY_EXISTS is ignored. Topic configs
    (cleanup policy, retention) are sent, and dropped if the broker rejects them.
    ``replication_factor`` -1 means the broker's default (Kafka >= 2.4, and Tansu).
    Returns the names created by this call, in the order given.
    """
    wanted = with_dead_letters(list(specs))
    deadline = time.monotonic() + timeout_s
    admin = _admin(bootstrap, timeout_s)
    existing = _metadata(admin, bootstrap, timeout_s)
    missing = [s for s in wanted if s.name not in existing]
    if not missing:
        return []
    remaining = max(1.0, deadline - time.monotonic())
    results = _create(
        admin,
        [NewTopic(s.name, s.partitions, replication_factor, config=s.kafka_config()) for s in missing],
        remaining,
    )
    retry = [s for s in missing if (e := results[s.name]) is not None and e.code() in _CONFIG_REJECTED]
    if retry:
        results.update(
            _create(admin, [NewTopic(s.name, s.partitions, replication_factor) for s in retry], remaining)
        )
    created: list[str] = []
    failures: list[str] = []
    for spec in missing:
        err = results[spec.name]
        if err is None:
            created.append(spec.name)
        elif err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            continue
        elif err.code() in (KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            raise _unavailable(bootstrap, timeout_s, f"CreateTopics {spec.name}: {err.str()}")
        else:
            failures.append(f"{spec.name}: {err.str()}")
    if failures:
        raise RuntimeError(f"could not create topics on {bootstrap}: " + "; ".join(failures))
    _await_visible(admin, bootstrap, [s.name for s in missing], deadline, timeout_s)
    return created


def _await_visible(
    admin: AdminClient, bootstrap: str, names: list[str], deadline: float, timeout_s: float
) -> None:
    while True:
        remaining = deadline - time.monotonic()
        topics = _metadata(admin, bootstrap, max(0.5, remaining))
        if all(name in topics for name in names):
            return
        if remaining <= 0:
            absent = [n for n in names if n not in topics]
            raise _unavailable(bootstrap, timeout_s, f"created topics not visible yet: {absent}")
        time.sleep(0.1)
