"""Projection benchmark: Kafka -> embedded ClickHouse (chdb), against the raw consume rate.

In one run, on one broker (an ephemeral Tansu unless ``--bootstrap``), over the same
``--records`` CspEvent records in 4 partitions:

1. **raw**: confluent-kafka consumes every record (read_committed, no decoding), from
   the first offset to the last: the baseline.

Each pass is timed from its start (connecting included) until its last record is
consumed (raw, reader) or queryable in ClickHouse (projection).
2. **reader**: the projector's committed-only reader (``projections.txread``) alone.
3. **projection**: the projector (``projections.projector.Projector``, no audit step),
   from an empty sink until every row is in ClickHouse: reading, Avro decoding (by
   ClickHouse on the fast path), inserts with dedup tokens, and the plan/commit rows of
   every round.

Then, with the projector still running, a producer (in a process of its own) sends ``--rate`` events/s for
``--seconds`` seconds; each record's produce-to-queryable latency is the time from its
Kafka timestamp (set when ``produce`` is called) to the end of the insert that made it
queryable. Last, ``--audit`` records go through the audit module's ``AuditLog.append``.

Usage: python bench/projection.py [--records N] [--rate R] [--seconds S] [--bootstrap HOST:PORT]
Last line: RESULT rows_per_s=... raw_per_s=... ratio=... p50_ms=... p99_ms=... audit_per_s=...
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from engine import broker  # noqa: E402

from infra.clickhouse import clickhouse_client  # noqa: E402
from projections.projector import Projector, wanted  # noqa: E402
from projections.sink import Plan  # noqa: E402
from projections.txread import CommittedReader, LogRecord  # noqa: E402
from schemas.codec import Codec  # noqa: E402
from schemas.registry import LocalRegistry  # noqa: E402
from streams.admin import ensure_topics  # noqa: E402
from streams.catalog import CATALOG, renamed  # noqa: E402
from streams.clients import consumer_config, producer_config  # noqa: E402

PARTITIONS = 4


def _events(codec: Codec, n: int, start: int = 0) -> list[bytes]:
    """Realistic CspEvent records: 1000 instances of a buffer-like system."""
    out = []
    for i in range(start, start + n):
        out.append(codec.encode("CspEvent", {
            "instance_id": f"buffer-{i % 1000:06x}", "system": "buffer", "version": 1, "seq": i // 1000 + 1,
            "event": f"left.{i % 3}", "kind": "INPUT", "channel": "left", "payload": [str(i % 3)],
            "offer_id": f"o-{i}", "command_id": f"c-{i}", "state_before": i % 4, "state_after": (i + 1) % 4,
            "choice": None, "timestamp": 1_767_225_600_000 + i, "command_partition": i % 4, "command_offset": i,
        }))
    return out


def _produce(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    producer = Producer(producer_config(bootstrap, **{"linger.ms": "20"}))
    for i, v in enumerate(values):
        while True:
            try:
                producer.produce(topic, v, key=f"buffer-{i % 1000:06x}".encode())
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0


def _raw(bootstrap: str, topic: str, n: int) -> float:
    consumer = Consumer(consumer_config(bootstrap, f"bench-raw-{uuid.uuid4().hex[:6]}"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen = 0
    t0 = time.perf_counter()
    while seen < n:
        msgs = consumer.consume(10000, 1.0)
        seen += sum(1 for m in msgs if m.error() is None)
    elapsed = time.perf_counter() - t0
    consumer.close()
    return n / elapsed


def _reader(bootstrap: str, topic: str, n: int) -> float:
    async def run() -> float:
        t0 = time.perf_counter()
        reader = CommittedReader(bootstrap, lambda t: t == topic, {})
        await reader.start()
        seen = 0
        while seen < n:
            got = await reader.fetch()
            seen += sum(len(r) for _f, _l, r in got.values())
        elapsed = time.perf_counter() - t0
        await reader.close()
        return n / elapsed

    return asyncio.run(run())


class _Timed:
    """Wraps ``Sink.write_many``: counts records and records each one's produce-to-queryable latency."""

    def __init__(self, projector: Projector) -> None:
        self.rows = 0
        self.latencies_ms: list[float] = []
        self.measure = False
        self.rounds: list[tuple[float, int, int]] = []  # (seconds, batches, records) of measured writes
        self._write = projector.sink.write_many
        projector.sink.write_many = self.write  # type: ignore[method-assign]

    def write(self, batches: Sequence[tuple[Plan, Sequence[LogRecord], bool]]) -> int:
        t0 = time.perf_counter()
        n = self._write(batches)
        now_ms = time.time() * 1000
        if self.measure:
            self.rounds.append((time.perf_counter() - t0, len(batches), sum(len(b[1]) for b in batches)))
        for _plan, records, _recovering in batches:
            if self.measure:
                self.latencies_ms.extend(now_ms - r.timestamp for r in records)
            self.rows += len(records)  # one events row per record (instances rows come on top)
        return n


def _steady(bootstrap: str, topic: str, codec: Codec, rate: int, seconds: float, start: int) -> int:
    """Produce ``rate`` events/s for ``seconds`` in 10 ms ticks; returns how many."""
    producer = Producer(producer_config(bootstrap, **{"linger.ms": "1"}))
    per_tick = max(1, rate // 100)
    values = _events(codec, per_tick * 100, start)
    t0 = time.perf_counter()
    sent = 0
    tick = 0
    while time.perf_counter() - t0 < seconds:
        for _ in range(per_tick):
            producer.produce(topic, values[sent % len(values)], key=b"k%d" % (sent % 1000))
            sent += 1
        producer.poll(0)
        tick += 1
        delay = t0 + tick * 0.01 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    producer.flush(60)
    return sent


def _steady_child(bootstrap: str, topic: str, rate: int, seconds: float, start: int) -> int:
    return _steady(bootstrap, topic, Codec(LocalRegistry.load()), rate, seconds, start)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _audit(n: int) -> float | None:
    try:
        from projections.audit.log import AuditLog  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        print(f"audit: projections.audit.log is not importable ({exc}); audit_per_s=nan")
        return None
    log: Any = AuditLog()
    value = bytes(200)
    batch = 10_000
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        log.append([("csp.events", 0, o, b"key", value, 1_767_225_600_000) for o in range(start, start + batch)])
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--audit", type=int, default=500_000)
    ap.add_argument("--bootstrap")
    args = ap.parse_args()

    codec = Codec(LocalRegistry.load())
    ns = "bench" + uuid.uuid4().hex[:8]
    topic = f"{ns}.csp.events"
    with broker(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory(prefix="csp-bench-ch-") as tmp:
        spec = next(s for s in CATALOG if s.name == "csp.events")
        ensure_topics(bootstrap, [renamed(spec, topic)], timeout_s=60)
        print(f"producing {args.records} CspEvent records to {topic} ({PARTITIONS} partitions) on {bootstrap}")
        _produce(bootstrap, topic, _events(codec, args.records))

        raw = _raw(bootstrap, topic, args.records)
        print(f"raw consume (confluent-kafka, read_committed):  {raw:>10,.0f} records/s")
        reader = _reader(bootstrap, topic, args.records)
        print(f"committed-only reader (projections.txread):    {reader:>10,.0f} records/s")

        client = clickhouse_client(f"chdb://{Path(tmp) / 'clickhouse'}")
        projector = Projector(bootstrap, client, codec, ns, audit=False)
        assert wanted(ns)(topic)
        timed = _Timed(projector)
        stop = threading.Event()
        thread = threading.Thread(target=lambda: asyncio.run(projector.run(stop)), daemon=True)
        t0 = time.perf_counter()  # like the raw and reader passes: from connecting to the last record
        thread.start()
        while timed.rows < args.records:
            time.sleep(0.01)
        rows_per_s = args.records / (time.perf_counter() - t0)
        count = client.query(f"SELECT count() FROM events WHERE topic = '{topic}'").result_rows[0][0]
        assert count == args.records, f"projected {count} rows, expected {args.records}"
        print(f"projection into chdb (rows queryable):         {rows_per_s:>10,.0f} rows/s  "
              f"(ratio to raw {rows_per_s / raw:.3f}, to the reader {rows_per_s / reader:.3f}; "
              f"{projector.sink.fast_records} records decoded by ClickHouse, {projector.batches} batches)")

        timed.measure = True
        before = timed.rows
        # the producer runs in a process of its own: it must not share the projector's GIL
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(1) as pool:
            sent = pool.apply(_steady_child, (bootstrap, topic, args.rate, args.seconds, args.records))
        while timed.rows < before + sent:
            time.sleep(0.01)
        stop.set()
        thread.join(60)
        p50, p99 = _percentile(timed.latencies_ms, 0.5), _percentile(timed.latencies_ms, 0.99)
        print(f"steady {args.rate}/s for {args.seconds:.0f}s: {sent} events, produce-to-queryable "
              f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(timed.latencies_ms):.0f} ms")
        rounds = timed.rounds or [(0.0, 0, 0)]
        print(f"  {len(rounds)} write rounds: {sum(r[0] for r in rounds) / len(rounds) * 1000:.0f} ms, "
              f"{sum(r[1] for r in rounds) / len(rounds):.1f} batches, {sum(r[2] for r in rounds) / len(rounds):.0f} records "
              "each on average")
        client.close()
    audit = _audit(args.audit)
    if audit is not None:
        print(f"audit appends (AuditLog.append):               {audit:>10,.0f} entries/s")
    audit_txt = "nan" if audit is None else f"{audit:.0f}"
    print(f"RESULT rows_per_s={rows_per_s:.0f} raw_per_s={raw:.0f} ratio={rows_per_s / raw:.3f} "
          f"p50_ms={p50:.0f} p99_ms={p99:.0f} audit_per_s={audit_txt}")


if __name__ == "__main__":
    main()
