"""Runtime benchmark: 100k instances of the buffer system driven by offers, vs the raw Kafka loop.

One runtime worker (the real engine, exactly-once: every batch is one Kafka
transaction with its consumed offsets) processes START + OFFER commands for
``--instances`` instances of ``examples/buffer/buffer.csp`` (each offer
``left.v`` yields the events ``left.v``, τ, ``right.v`` on csp.events plus
two channel messages, plus periodic snapshots). In the same run, on the same
broker, the raw confluent-kafka transactional consume→produce loop of
``bench/engine.py`` copies the same command records.

Rates are measured from the moment the consumer group assigned the input
partitions (after the runtime's recovery read) to the last commit, so
group-join time is excluded from both. Memory per instance is the deep size
of the worker's in-memory instance table divided by the instance count.

Usage: python bench/runtime.py [--instances N] [--offers K] [--batch B] [--bootstrap HOST:PORT]
Last line: RESULT events_per_s=... raw_per_s=... ratio=... bytes_per_instance=...

``--mode channels [--rounds 3]``: the same workload, but the offers are ``ChannelMessage`` records produced
to the input channel topic ``csp.channel.buffer.left`` (keyed by instance id), turned into
offers by the channel bridge (``processors/channels``, in its own process, as
``python -m processors.channels.worker`` runs it) while the runtime worker runs in this process.
In the same run, the command-input mode runs first as the baseline; the two alternate for
``--rounds`` rounds and the RESULT gives the medians (the machine's load changes between
phases otherwise skew the ratio).
Last line: RESULT channel_offers_per_s=... command_offers_per_s=... ratio=...
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from engine import broker, raw_loop  # noqa: E402

from gateway.sdk import partition_for  # noqa: E402
from infra.settings import Settings  # noqa: E402
from processors.csp.runtime.deploy import plan  # noqa: E402
from processors.csp.runtime.model import Instance  # noqa: E402
from processors.csp.runtime.processor import RuntimeProcessor, tune_gc  # noqa: E402
from processors.csp.runtime.records import command_record  # noqa: E402
from processors.csp.runtime.registry import DeploymentStore, deployment_record, publish  # noqa: E402
from processors.csp.runtime.topics import RuntimeTopics  # noqa: E402
from schemas.codec import Codec  # noqa: E402
from schemas.registry import LocalRegistry  # noqa: E402
from streams.admin import ensure_topics  # noqa: E402
from streams.clients import producer_config  # noqa: E402
from streams.engine import AssignContext, Engine, EngineConfig  # noqa: E402
from streams.logs import configure_logging  # noqa: E402


class TimedProcessor(RuntimeProcessor):
    """The runtime processor, recording when its partitions were assigned (recovery done)."""

    assigned_at: float | None = None
    first_channel_at: float | None = None  # the first offer from the channel bridge (channel mode)
    first_offer_at: float | None = None  # the first OFFER command (command mode)
    process_s = 0.0

    def process(self, batch: Any, ctx: Any) -> Any:
        t = time.perf_counter()
        if self.first_channel_at is None and any(b"ch:" in rec._msg.value()[5:10] for rec in batch):
            self.first_channel_at = t
        if self.first_offer_at is None and any(rec._msg.value()[6:7] == b"o" for rec in batch):
            self.first_offer_at = t  # command ids "o<k>-<i>" (produce_commands)
        try:
            return super().process(batch, ctx)
        finally:
            self.process_s += time.perf_counter() - t

    def on_assign(self, partitions: Any, ctx: AssignContext) -> None:
        super().on_assign(partitions, ctx)
        if partitions and self.assigned_at is None:
            self.assigned_at = time.perf_counter()


def produce_commands(
    bootstrap: str, topic: str, parts: int, codec: Codec, instances: int, offers: int
) -> int:
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 20}))
    n = 0

    def send(iid: str, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, key=iid.encode(), value=value, partition=partition_for(iid, parts))
                return
            except BufferError:
                producer.poll(0.05)

    iids = [f"buf-{i}" for i in range(instances)]
    for i, iid in enumerate(iids):
        send(iid, codec.encode("CspCommand", command_record(f"s{i}", iid, "START", 1_700_000_000_000,
                                                            system="buffer", version=1)))  # fmt: skip
        n += 1
    for k in range(offers):
        for i, iid in enumerate(iids):
            cmd = command_record(f"o{k}-{i}", iid, "OFFER", 1_700_000_000_000 + k, event=f"left.{(i + k) % 3}",
                                 offer_id=f"{k}")  # fmt: skip
            send(iid, codec.encode("CspCommand", cmd))
            n += 1
        producer.poll(0)
    producer.flush(120)
    return n


def deep_size(obj: Any, seen: set[int], shared: set[int]) -> int:
    """Bytes reachable from ``obj`` (objects in ``shared`` and already seen are not counted)."""
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        oid = id(o)
        if oid in seen or oid in shared:
            continue
        seen.add(oid)
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, Instance):
            stack.extend(getattr(o, f) for f in o.__slots__)
    return total


def instance_memory(proc: RuntimeProcessor) -> tuple[int, int]:
    """(instances, bytes) of the worker's instance table, excluding deployments and interned constants."""
    shared: set[int] = set()
    for dep in [proc.store.lookup(s, v) for s, vs in proc.store.systems().items() for v in vs]:
        if dep is not None:
            shared.update(id(x) for x in (dep.system, dep.process))
    count = sum(len(v) for v in proc.partitions.values())
    size = deep_size(proc.partitions, set(), shared)
    return count, size


def run_runtime(bootstrap: str, topics: RuntimeTopics, codec: Codec, total: int, batch: int,
                snapshot_every: int, producer: dict[str, Any]) -> tuple[float, float, TimedProcessor]:  # fmt: skip
    store = DeploymentStore(bootstrap, codec, topics)
    proc = TimedProcessor(store, codec, topics, snapshot_every=snapshot_every)
    engine = Engine(
        proc,
        codec,
        EngineConfig(bootstrap=bootstrap, batch_size=batch, worker_id="bench", producer_overrides=producer),
    )
    engine.start()
    deadline = time.monotonic() + 1200
    tune_gc()
    try:
        while engine.processed < total and time.monotonic() < deadline:
            engine.run_once()
        end = time.perf_counter()
        assert proc.assigned_at is not None
        elapsed = end - proc.assigned_at
        count, size = instance_memory(proc)
        proc.mem = (count, size)  # type: ignore[attr-defined]
    finally:
        engine.close()
    if engine.processed < total:
        raise SystemExit(f"runtime processed only {engine.processed} of {total} commands")
    return elapsed, proc.stats.events / elapsed, proc


def produce_channel_offers(
    bootstrap: str, topics: RuntimeTopics, codec: Codec, instances: int, offers: int
) -> int:
    """STARTs on the commands topic, the offers as ChannelMessages on the input channel topic."""
    producer = Producer(producer_config(bootstrap, **{"linger.ms": 20}))
    left = topics.channel("buffer", "left")
    n = 0

    def send(topic: str, iid: str, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, key=iid.encode(), value=value)
                return
            except BufferError:
                producer.poll(0.05)

    iids = [f"buf-{i}" for i in range(instances)]
    for i, iid in enumerate(iids):
        send(topics.commands, iid, codec.encode("CspCommand", command_record(
            f"s{i}", iid, "START", 1_700_000_000_000, system="buffer", version=1)))  # fmt: skip
        n += 1
    for k in range(offers):
        for i, iid in enumerate(iids):
            v = str((i + k) % 3)
            msg = {"instance_id": iid, "system": "buffer", "channel": "left", "event": f"left.{v}", "values": [v],
                   "seq": k, "timestamp": 1_700_000_000_000 + k}  # fmt: skip
            send(left, iid, codec.encode("ChannelMessage", msg))
            n += 1
        producer.poll(0)
    producer.flush(120)
    return n


def channel_mode(bootstrap: str, codec: Codec, pl: Any, args: argparse.Namespace) -> float:
    """Commands per second through the channel bridge (bridge process + runtime worker)."""
    import os
    import subprocess

    topics = RuntimeTopics(f"benchch{uuid.uuid4().hex[:6]}")
    ensure_topics(bootstrap, topics.specs() + [topics.channel_spec("buffer", c) for c in pl.deployment.channels])
    publish(bootstrap, codec, topics.registry, deployment_record(pl.deployment, Settings().resolved_data_dir()))
    t = time.perf_counter()
    total = produce_channel_offers(bootstrap, topics, codec, args.instances, args.offers)
    print(f"produced {args.instances} START commands + {total - args.instances} channel messages "
          f"in {time.perf_counter() - t:.1f}s", flush=True)  # fmt: skip
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=bootstrap, CSP_LOG_LEVEL="WARNING")
    bridge = subprocess.Popen(
        [sys.executable, "-m", "processors.channels.worker", "--bootstrap", bootstrap,
         "--namespace", topics.namespace, "--worker-id", "bench"], cwd=ROOT, env=env)  # fmt: skip
    try:
        elapsed, _eps, proc = run_runtime(bootstrap, topics, codec, total, args.batch, args.snapshot_every, {})
    finally:
        bridge.terminate()
        bridge.wait(60)
    assert proc.assigned_at is not None and proc.first_channel_at is not None
    # the runtime handles the STARTs while the bridge process starts and joins its group; the
    # channel offers' rate is measured from the first offer the bridge delivered
    offers = total - args.instances
    end = proc.assigned_at + elapsed
    span = end - proc.first_channel_at
    rate = offers / span
    print(f"channel input (bridge process + 1 runtime worker): {total} commands, {proc.stats.events} events "
          f"in {elapsed:.2f}s; the {offers} channel offers in {span:.2f}s: {rate:,.0f} offers/s", flush=True)  # fmt: skip
    return rate


def command_phase(bootstrap: str, codec: Codec, pl: Any, args: argparse.Namespace, producer: dict[str, Any]) -> float:
    """The OFFER commands' rate of one command-input run (from the first OFFER to the end)."""
    topics = RuntimeTopics(f"bench{uuid.uuid4().hex[:6]}")
    ensure_topics(bootstrap, topics.specs() + [topics.channel_spec("buffer", c) for c in pl.deployment.channels])
    publish(bootstrap, codec, topics.registry, deployment_record(pl.deployment, Settings().resolved_data_dir()))
    total = produce_commands(bootstrap, topics.commands, topics.partitions, codec, args.instances, args.offers)
    elapsed, _eps, proc = run_runtime(bootstrap, topics, codec, total, args.batch, args.snapshot_every, producer)
    assert proc.first_offer_at is not None and proc.assigned_at is not None
    rate = (total - args.instances) / (proc.assigned_at + elapsed - proc.first_offer_at)
    print(f"command input: the {total - args.instances} OFFER commands at {rate:,.0f} offers/s", flush=True)
    return rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--instances", type=int, default=100_000)
    ap.add_argument("--offers", type=int, default=4, help="offers per instance")
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--snapshot-every", type=int, default=100)
    ap.add_argument("--producer", action="append", default=[], metavar="KEY=VALUE",
                    help="librdkafka producer setting for the runtime worker (repeatable)")  # fmt: skip
    ap.add_argument("--bootstrap", default=None, help="external Kafka (default: embedded ephemeral Tansu)")
    ap.add_argument("--mode", choices=("commands", "channels"), default="commands",
                    help="channels: offers through an input channel topic, vs commands in the same run")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=3,
                    help="channels mode: alternating command/channel rounds (RESULT: the medians)")  # fmt: skip
    args = ap.parse_args(argv)
    configure_logging("WARNING")
    codec = Codec(LocalRegistry.load())
    pl = plan(ROOT / "examples" / "buffer" / "buffer.csp", "BUFFER", name="buffer", outputs=["right"])
    assert not pl.refused, [r.text for r in pl.failed]
    with broker(args.bootstrap) as bootstrap:
        topics = RuntimeTopics(f"bench{uuid.uuid4().hex[:6]}")
        ensure_topics(
            bootstrap, topics.specs() + [topics.channel_spec("buffer", c) for c in pl.deployment.channels]
        )
        publish(
            bootstrap,
            codec,
            topics.registry,
            deployment_record(pl.deployment, Settings().resolved_data_dir()),
        )
        t = time.perf_counter()
        total = produce_commands(
            bootstrap, topics.commands, topics.partitions, codec, args.instances, args.offers
        )
        print(f"produced {total} commands ({args.instances} START + {args.instances * args.offers} OFFER) "
              f"in {time.perf_counter() - t:.1f}s", flush=True)  # fmt: skip
        producer = dict(kv.split("=", 1) for kv in args.producer)
        elapsed, events_per_s, proc = run_runtime(
            bootstrap, topics, codec, total, args.batch, args.snapshot_every, producer
        )
        s = proc.stats
        count, size = proc.mem  # type: ignore[attr-defined]
        out_records = s.events + s.snapshots + s.refusals + (s.events * 2) // 3
        print(f"runtime (1 worker, exactly-once): {total} commands -> {s.events} events, {s.snapshots} snapshots, "
              f"{s.refusals} refusals in {elapsed:.2f}s", flush=True)  # fmt: skip
        print(f"  {events_per_s:,.0f} events/s per worker, {total / elapsed:,.0f} commands/s, "
              f"~{out_records / elapsed:,.0f} output records/s", flush=True)  # fmt: skip
        print(f"  time in the processor (step + encode): {proc.process_s:.2f}s of {elapsed:.2f}s "
              f"({1e6 * proc.process_s / total:.1f} us/command)", flush=True)  # fmt: skip
        print(
            f"  memory: {count} instances, {size / max(1, count):.0f} bytes/instance (deep size of the table)"
        )
        if args.mode == "channels":
            # the baseline: the OFFER commands' rate (from the first OFFER to the end, as for channels)
            assert proc.first_offer_at is not None and proc.assigned_at is not None
            command_rate = (total - args.instances) / (proc.assigned_at + elapsed - proc.first_offer_at)
            print(f"command input: the {total - args.instances} OFFER commands at {command_rate:,.0f} offers/s")
            rounds = [(command_rate, channel_mode(bootstrap, codec, pl, args))]
            for r in range(1, args.rounds):  # alternate: a change of machine load hits both modes alike
                rounds.append((command_phase(bootstrap, codec, pl, args, producer), channel_mode(bootstrap, codec, pl, args)))
                print(f"round {r + 1}: ratio {rounds[-1][1] / rounds[-1][0]:.3f}", flush=True)
            ratios = sorted(ch / cmd for cmd, ch in rounds)
            mid = len(rounds) // 2
            print("ratios per round: " + ", ".join(f"{ch / cmd:.3f}" for cmd, ch in rounds))
            print(
                f"RESULT channel_offers_per_s={sorted(ch for _c, ch in rounds)[mid]:.0f} "
                f"command_offers_per_s={sorted(c for c, _ch in rounds)[mid]:.0f} ratio={ratios[mid]:.3f}"
            )
            return 0
        raw_out = topics.name("bench.raw")
        from engine import create_topics

        create_topics(bootstrap, [raw_out], topics.partitions)
        raw = raw_loop(bootstrap, topics.commands, raw_out, total, args.batch)
        print(f"raw transactional loop (bench/engine.py): {raw:,.0f} records/s", flush=True)
    print(
        f"RESULT events_per_s={events_per_s:.0f} raw_per_s={raw:.0f} ratio={events_per_s / raw:.3f} "
        f"bytes_per_instance={size / max(1, count):.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
