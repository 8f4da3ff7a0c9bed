"""Exactly-once: SIGKILL a runtime worker subprocess mid-stream, restart it, compare with a reference fold.

Scale-out: two workers in one group share the partitions; one leaves and the instances carry on.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from lts_fixtures import buffer_deployment, choice_deployment
from runtime_helpers import spawn_worker, wait_until
from shared_helpers import new_platform
from workload import as_fields, check_log, make_workload

from gateway.sdk import Platform
from streams.clients import consumer_config


class EventCounter:
    """Counts distinct (instance, seq) events as they arrive (a live consumer on all partitions)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.c = Consumer(consumer_config(platform.bootstrap, f"count-{time.time_ns()}"))
        self.c.assign([TopicPartition(platform.topics.events, p, 0) for p in range(platform.partitions)])
        self.seen: set[tuple[str, int]] = set()

    def poll(self) -> int:
        for msg in self.c.consume(2000, 0.1):
            if msg.error() is None and msg.value():
                _n, rec = self.platform.codec.decode(msg.value() or b"")
                self.seen.add((rec["instance_id"], rec["seq"]))
        return len(self.seen)

    def close(self) -> None:
        self.c.close()


def complete(platform: Platform, expected: dict[str, list[dict[str, Any]]], counter: EventCounter) -> bool:
    total = sum(len(v) for v in expected.values())
    return counter.poll() >= total


def test_sigkill_mid_stream_then_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    deps = {d.system: d for d in (buffer_deployment("buf", 1), choice_deployment())}
    for d in deps.values():
        platform.publish_deployment(d)
    w = make_workload(deps, instances=24, offers=60, seed=7, tag="kill")
    expected, refusals = w.reference()
    total = sum(len(v) for v in expected.values())
    log = tmp_path / "worker.log"
    counter = EventCounter(platform)
    worker = spawn_worker(platform, "w1", log, "--batch-size", "10", "--snapshot-every", "10")
    try:
        half = len(w.offers) // 2
        platform.send_many(as_fields(c) for c in w.starts + w.offers[:half])
        wait_until(lambda: counter.poll() > 0, 60, "the worker to produce events")
        platform.send_many(as_fields(c) for c in w.offers[half:])
        seen_at_kill = counter.poll()
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert seen_at_kill < total, "the worker finished before the kill: not mid-stream"
        worker = spawn_worker(platform, "w1", log, "--batch-size", "25", "--snapshot-every", "10")
        wait_until(lambda: complete(platform, expected, counter), 120, "all events after the restart")
    finally:
        counter.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    events = platform.read(platform.topics.events, "CspEvent")
    stats = check_log(events, expected)
    assert stats["events"] == total
    got_refusals: dict[str, str] = {}
    for r in platform.read(platform.topics.refusals, "CspRefusal"):
        assert got_refusals.setdefault(r["command_id"], r["reason"]) == r["reason"]
    assert got_refusals == refusals
    print(
        f"sigkill: {total} events, {seen_at_kill} seen at kill, {stats['visible_duplicates']} visible duplicates"
    )
    platform.close()


def test_scale_out_two_workers_one_leaves(kafka_bootstrap: str, tmp_path: Path) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    deps = {d.system: d for d in (buffer_deployment("buf", 1), choice_deployment())}
    for d in deps.values():
        platform.publish_deployment(d)
    w = make_workload(deps, instances=24, offers=30, seed=11, tag="scale")
    expected, _refusals = w.reference()
    logs = [tmp_path / "w1.log", tmp_path / "w2.log"]
    env_info = ("--batch-size", "50")
    counter = EventCounter(platform)
    w1 = spawn_worker(platform, "w1", logs[0], *env_info, info=True)
    w2 = spawn_worker(platform, "w2", logs[1], *env_info, info=True)
    try:
        # both workers in the group, sharing the partitions
        wait_until(lambda: all(assigned_partitions(p, last=True) for p in logs), 90, "both workers assigned")
        shares = [assigned_partitions(p, last=True) for p in logs]
        assert not (shares[0] & shares[1]) and len(shares[0] | shares[1]) == platform.partitions, shares
        half = len(w.offers) // 2
        platform.send_many(as_fields(c) for c in w.starts + w.offers[:half])
        exp_half, _ = make_partial(w, half).reference()
        wait_until(lambda: counter.poll() >= sum(len(v) for v in exp_half.values()), 120, "first half")
        # worker 2 leaves; worker 1 takes over its partitions and instances
        w2.send_signal(signal.SIGTERM)
        assert w2.wait(60) == 0
        platform.send_many(as_fields(c) for c in w.offers[half:])
        wait_until(lambda: complete(platform, expected, counter), 120, "all events after worker 2 left")
        assert len(assigned_partitions(logs[0], last=True)) == platform.partitions
    finally:
        counter.close()
        for proc in (w1, w2):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    check_log(platform.read(platform.topics.events, "CspEvent"), expected)
    platform.close()


def make_partial(w: Any, n_offers: int) -> Any:
    from workload import Workload

    return Workload(w.deps, w.starts, w.offers[:n_offers])


def assigned_partitions(log: Path, last: bool = False) -> set[int]:
    """Partitions of the commands topic a worker's log says it was assigned (all assignments, or the last)."""
    import re

    got: set[int] = set()
    for line in log.read_text(errors="replace").splitlines():
        if "engine.assigned" in line and "csp.commands[" in line:  # not the channel bridge's assignments
            parts = {int(m) for m in re.findall(r"csp\.commands\[(\d+)\]", line)}
            got = parts if last else got | parts
    return got
