"""Shared helpers for the projection tests: namespaced topics, producing, a projector thread."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Producer

from projections.projector import Projector
from schemas.codec import Codec
from schemas.registry import LocalRegistry
from schemas.samples import sample_record
from streams.admin import ensure_topics
from streams.catalog import CATALOG, channel_topic, dead_letter_spec, renamed
from streams.clients import producer_config


def codec() -> Codec:
    return Codec(LocalRegistry.load())


def sample(c: Codec, name: str, **fields: Any) -> dict[str, Any]:
    rec = sample_record(c.registry.raw_schema(name))
    rec.update(fields)
    return rec


def make_namespace(bootstrap: str, system: str = "sys", channel: str = "chan") -> str:
    """A fresh namespace with every catalog topic, one channel topic and its DLQ."""
    ns = "p" + uuid.uuid4().hex[:10]
    ch = channel_topic(system, channel)
    specs = [renamed(s, f"{ns}.{s.name}") for s in (*CATALOG, ch, dead_letter_spec(ch))]
    ensure_topics(bootstrap, specs, timeout_s=60)
    return ns


def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes],
    *,
    txid: str | None = None,
    abort: bool = False,
    partition: int = 0,
    key: bytes = b"k",
) -> None:
    """Produce ``values`` (in one transaction when ``txid`` is given; aborted if ``abort``)."""
    producer = Producer(producer_config(bootstrap, transactional_id=txid))
    if txid:
        producer.init_transactions(30)
        producer.begin_transaction()
    for v in values:
        producer.produce(topic, v, key=key, partition=partition)
    producer.flush(30)
    if txid:
        (producer.abort_transaction if abort else producer.commit_transaction)(30)
    assert producer.flush(30) == 0


def wait_for(check: Callable[[], bool], timeout_s: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@contextmanager
def projector_thread(projector: Projector) -> Iterator[Projector]:
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(projector.run(stop))
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield projector
    finally:
        stop.set()
        thread.join(60)
        if errors:
            raise errors[0]


def count(client: Any, table: str, ns: str, where: str = "1") -> int:
    rows = client.query(f"SELECT count() FROM {table} WHERE topic LIKE '{ns}.%' AND {where}").result_rows
    return int(rows[0][0])
