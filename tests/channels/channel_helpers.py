"""Helpers for the channel tests: namespaced platforms, runtime + bridge threads, plain Kafka clients."""

from __future__ import annotations

import json
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer, TopicPartition
from shared_helpers import stoppable_thread

from gateway.sdk import Platform
from processors.channels.bridge import ChannelBridge
from processors.channels.worker import build_bridge, run_bridge
from processors.csp.runtime.processor import RuntimeProcessor
from processors.csp.runtime.worker import build_engine

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def runtime_and_bridge(
    platform: Platform, worker_id: str = "w0"
) -> Iterator[tuple[RuntimeProcessor, ChannelBridge]]:
    """A runtime worker and a channel bridge on the real engine, in threads of this process."""
    ns = platform.topics.namespace
    engine, proc = build_engine(platform.bootstrap, platform.settings, namespace=ns, worker_id=worker_id)
    b_engine, bridge = build_bridge(platform.bootstrap, platform.settings, namespace=ns, worker_id=worker_id)
    with stoppable_thread(engine.run), stoppable_thread(lambda stop: run_bridge(b_engine, bridge, stop)):
        yield proc, bridge


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.3) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


# -- what a plain Kafka user does: the schema file, fastavro, the Confluent framing ------------------


def avro_schema(name: str) -> Any:
    return fastavro.parse_schema(json.loads((ROOT / "schemas" / "avro" / f"{name}.avsc").read_text()))


def schema_id(name: str) -> int:
    ids = json.loads((ROOT / "schemas" / "ids.json").read_text())["schemas"]
    return max(e["id"] for e in ids if e["name"] == name)  # the newest version's id


def confluent_encode(name: str, record: dict[str, Any]) -> bytes:
    buf = BytesIO()
    fastavro.schemaless_writer(buf, avro_schema(name), record)
    return struct.pack(">bI", 0, schema_id(name)) + buf.getvalue()


def confluent_decode(name: str, raw: bytes) -> dict[str, Any]:
    magic, _sid = struct.unpack(">bI", raw[:5])
    assert magic == 0
    rec = fastavro.schemaless_reader(BytesIO(raw[5:]), avro_schema(name))
    assert isinstance(rec, dict)
    return rec


class PlainReader:
    """A plain confluent-kafka consumer over every partition of a topic, from the beginning."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"plain-{uuid.uuid4().hex}",
                "session.timeout.ms": 6000,
            }
        )
        self.c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        self.records: list[tuple[bytes | None, bytes]] = []

    def poll(self) -> int:
        for msg in self.c.consume(1000, 0.2):
            if msg.error() is None and msg.value():
                self.records.append((msg.key(), msg.value() or b""))
        return len(self.records)

    def close(self) -> None:
        self.c.close()
