"""Engine benchmark: raw confluent-kafka consume→produce loop vs the platform engine.

Both run in the same process, on the same broker, over the same input topic,
in exactly-once mode (transactional, batched): the raw loop is the
confluent-kafka transactional consume-transform-produce example with no
decoding; the engine runs an identity processor (forwards each record's bytes
after checking its wire framing), with rebalance hooks, dead-letter screening,
metrics and logging as in production. A third run measures the engine with an
identity processor that fully decodes and re-encodes every record (Avro).

Rates are measured from the moment the consumer group assigned the input
partitions to the moment the last record was committed, so the group-join
delay is excluded from both.

Usage: python bench/engine.py [--records N] [--partitions P] [--batch B] [--bootstrap HOST:PORT]
Last line: RESULT raw_per_s=... engine_per_s=... ratio=...
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from schemas.codec import Codec  # noqa: E402
from schemas.registry import LocalRegistry  # noqa: E402
from streams.clients import consumer_config, producer_config  # noqa: E402
from streams.engine import (  # noqa: E402
    AssignContext,
    BatchContext,
    Engine,
    EngineConfig,
    PartitionRef,
    ProcessorBase,
)
from streams.logs import configure_logging  # noqa: E402
from streams.records import InRecord, OutRecord  # noqa: E402


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from infra.settings import Settings
    from infra.stack import running_stack

    with tempfile.TemporaryDirectory(prefix="csp-bench-") as tmp, running_stack(
        Settings(data_dir=Path(tmp)), ephemeral=True
    ) as endpoints:
        yield endpoints.kafka_bootstrap


def create_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        fut.result(30)


def produce_input(bootstrap: str, topic: str, n: int, codec: Codec) -> None:
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 20}))
    for i in range(n):
        value = codec.encode(
            "CspCommand",
            {
                "command_id": f"c{i}",
                "instance_id": f"i{i % 1000}",
                "kind": "OFFER",
                "system": "BUFFER",
                "version": 1,
                "params": {},
                "event": f"in.{i % 4}",
                "offer_id": f"o{i}",
                "issued_at": 1_700_000_000_000 + i,
            },
        )
        while True:
            try:
                producer.produce(topic, key=f"i{i % 1000}".encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 20000 == 0:
            producer.poll(0)
    producer.flush(60)


def raw_loop(bootstrap: str, src: str, dst: str, n: int, batch: int) -> float:
    """confluent-kafka's transactional consume-transform-produce loop; records/s."""
    assigned_at: list[float] = []
    consumer = Consumer(consumer_config(bootstrap, f"bench-raw-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([src], on_assign=lambda c, p: assigned_at.append(time.perf_counter()))
    producer = Producer(producer_config(bootstrap, transactional_id=f"bench-raw-{uuid.uuid4().hex[:8]}"))
    producer.init_transactions(30)
    done = 0
    deadline = time.monotonic() + 600
    while done < n and time.monotonic() < deadline:
        msgs = consumer.consume(batch, 0.2)
        if not msgs:
            continue
        last: dict[tuple[str, int], int] = {}
        producer.begin_transaction()
        for m in msgs:
            if m.error():
                continue
            while True:
                try:
                    producer.produce(dst, key=m.key(), value=m.value())
                    break
                except BufferError:
                    producer.poll(0.05)
            last[(m.topic() or "", m.partition() or 0)] = m.offset() or 0
            done += 1
        producer.send_offsets_to_transaction(
            [TopicPartition(t, p, o + 1) for (t, p), o in last.items()], consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(30)
    elapsed = time.perf_counter() - assigned_at[0]
    consumer.close()
    return done / elapsed


class Identity(ProcessorBase):
    """Forwards every record; ``decode`` also decodes and re-encodes it."""

    def __init__(self, src: str, dst: str, decode: bool) -> None:
        self.name = f"bench-engine-{uuid.uuid4().hex[:8]}"
        self.inputs = (src,)
        self.dst = dst
        self.decode_inputs = decode
        self.assigned_at: float | None = None

    def on_assign(self, partitions: Sequence[PartitionRef], ctx: AssignContext) -> None:
        if self.assigned_at is None and partitions:
            self.assigned_at = time.perf_counter()

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]:
        if self.decode_inputs:
            return [OutRecord(self.dst, r.key, r.schema, r.value) for r in batch]
        return [OutRecord.forward(r, self.dst) for r in batch]


def engine_loop(bootstrap: str, src: str, dst: str, n: int, batch: int, codec: Codec, decode: bool) -> float:
    proc = Identity(src, dst, decode)
    engine = Engine(proc, codec, EngineConfig(bootstrap=bootstrap, batch_size=batch, worker_id="bench"))
    engine.start()
    deadline = time.monotonic() + 600
    try:
        while engine.processed < n and time.monotonic() < deadline:
            engine.run_once()
        end = time.perf_counter()
    finally:
        engine.close()
    assert proc.assigned_at is not None
    return engine.processed / (end - proc.assigned_at)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--bootstrap", default=None, help="external Kafka (default: embedded ephemeral Tansu)")
    args = ap.parse_args(argv)
    configure_logging("WARNING")
    codec = Codec(LocalRegistry.load())
    with broker(args.bootstrap) as bootstrap:
        run = uuid.uuid4().hex[:6]
        src, raw_out, eng_out, dec_out = (f"bench.{run}.{x}" for x in ("in", "raw", "engine", "decode"))
        create_topics(bootstrap, [src, raw_out, eng_out, dec_out], args.partitions)
        t = time.perf_counter()
        produce_input(bootstrap, src, args.records, codec)
        print(f"produced {args.records} records in {time.perf_counter() - t:.2f}s", flush=True)
        raw = raw_loop(bootstrap, src, raw_out, args.records, args.batch)
        print(f"raw transactional loop:        {raw:>10,.0f} records/s", flush=True)
        eng = engine_loop(bootstrap, src, eng_out, args.records, args.batch, codec, decode=False)
        print(f"engine, identity (framing):    {eng:>10,.0f} records/s", flush=True)
        dec = engine_loop(bootstrap, src, dec_out, args.records, args.batch, codec, decode=True)
        print(f"engine, identity (Avro decode+encode): {dec:>10,.0f} records/s", flush=True)
    print(
        f"RESULT raw_per_s={raw:.0f} engine_per_s={eng:.0f} ratio={eng / raw:.3f} "
        f"engine_avro_per_s={dec:.0f} avro_ratio={dec / raw:.3f} records={args.records}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())


