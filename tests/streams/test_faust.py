"""A Faust agent over a platform topic, consuming records the engine produced."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import Producer

from schemas.codec import Codec
from schemas.registry import LocalRegistry
from streams.admin import ensure_topics
from streams.catalog import channel_topic
from streams.clients import producer_config
from streams.engine import BatchContext, Engine, EngineConfig, ProcessorBase
from streams.faust_app import make_app, platform_topic
from streams.records import InRecord, OutRecord


class CommandsToChannel(ProcessorBase):
    def __init__(self, src: str, dst: str) -> None:
        self.name = f"faust-src-{uuid.uuid4().hex[:6]}"
        self.inputs = (src,)
        self.dst = dst

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]:
        return [
            OutRecord(
                self.dst,
                rec.key,
                "ChannelMessage",
                {
                    "instance_id": rec.value["instance_id"],
                    "system": "fsys",
                    "channel": "out",
                    "event": rec.value["event"],
                    "values": [rec.value["event"].split(".", 1)[1]],
                    "seq": rec.offset,
                    "timestamp": rec.timestamp,
                },
            )
            for rec in batch
        ]


def test_faust_agent_reads_engine_output(kafka_bootstrap: str, unique_topic: Any, tmp_path: Any) -> None:
    codec = Codec(LocalRegistry.load())
    system = f"fsys{uuid.uuid4().hex[:6]}"
    spec = channel_topic(system, "out")
    ensure_topics(kafka_bootstrap, [spec])
    src = unique_topic("faust.in")
    p = Producer(producer_config(kafka_bootstrap))
    n = 20
    for i in range(n):
        value = {
            "command_id": f"c{i}", "instance_id": f"i{i % 3}", "kind": "OFFER", "system": system,
            "version": 1, "params": {}, "event": f"out.{i}", "offer_id": None, "issued_at": 1_700_000_000_000,
        }
        p.produce(src, key=f"i{i % 3}".encode(), value=codec.encode("CspCommand", value))
    p.flush(30)
    engine = Engine(CommandsToChannel(src, spec.name), codec, EngineConfig(bootstrap=kafka_bootstrap, worker_id="f"))
    engine.run(max_records=n, idle_timeout_s=60)
    assert engine.processed == n

    app = make_app(f"faust-test-{uuid.uuid4().hex[:6]}", kafka_bootstrap, codec=codec, datadir=str(tmp_path))
    topic = platform_topic(app, spec.name)
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    done = asyncio.Event()

    @app.agent(topic)
    async def collect(stream: Any) -> None:
        async for value in stream:
            seen[(value["instance_id"], value["seq"])] = value  # idempotent: keyed by (instance, seq)
            if len(seen) >= n:
                done.set()

    async def main() -> None:
        await app.start()
        try:
            await asyncio.wait_for(done.wait(), timeout=90)
        finally:
            await app.stop()

    asyncio.run(main())
    assert len(seen) == n
    assert sorted(int(v["values"][0]) for v in seen.values()) == list(range(n))
    assert all(v["system"] == "fsys" and v["channel"] == "out" for v in seen.values())
