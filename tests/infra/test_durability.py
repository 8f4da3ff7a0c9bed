"""`csp down` then `csp up` on the same data dir keeps every record and every committed offset."""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from infra import procs
from infra.state import read_pids
from streams.admin import ensure_topics, list_topics
from streams.catalog import CATALOG, TopicSpec
from streams.clients import consumer_config

CSP = str(Path(sys.executable).parent / "csp")
TOPIC = "durability.records"
PARTITIONS = 3
N = 20_000
HALF = N // 2
EXPLICIT = {0: 7, 1: 1234, 2: 4321}
GUARD_S = 180  # hang guard for poll loops, not a performance threshold


def _csp(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSP_")}
    return subprocess.run([CSP, *args], capture_output=True, text=True, env=env, timeout=300)


def _value(i: int) -> bytes:
    return f"{i}:{hashlib.sha256(str(i).encode()).hexdigest()}".encode()


def _up(data_dir: str) -> str:
    result = _csp("up", "--data-dir", data_dir, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "durable"
    return str(report["kafka"]["bootstrap"])


def _consume(consumer: Consumer, count: int) -> list[tuple[int, int, bytes]]:
    out: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + GUARD_S
    while len(out) < count and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        out.append((msg.partition(), msg.offset(), msg.value()))
        consumer.store_offsets(msg)
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_down_up_keeps_records_and_committed_offsets(tmp_path):
    data_dir = str(tmp_path / "durable")
    bootstrap = _up(data_dir)
    try:
        ensure_topics(bootstrap, [TopicSpec(TOPIC, PARTITIONS, "i", "bytes", "delete", -1, "test", None, False)])
        errors: list[str] = []
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
        for i in range(N):
            producer.produce(TOPIC, key=str(i).encode(), value=_value(i),
                             on_delivery=lambda err, _msg: errors.append(str(err)) if err else None)
            if i % 1000 == 0:
                producer.poll(0)
        assert producer.flush(120) == 0
        assert errors == []

        group = consumer_config(bootstrap, "durability-group", read_committed=False)
        first = Consumer(group)
        first.subscribe([TOPIC])
        consumed = _consume(first, HALF)
        assert len(consumed) == HALF
        first.commit(asynchronous=False)
        expected_committed = {p: 0 for p in range(PARTITIONS)}
        for partition, offset, _ in consumed:
            expected_committed[partition] = max(expected_committed[partition], offset + 1)
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        committed = {tp.partition: tp.offset for tp in first.committed(partitions, timeout=30)}
        first.close()
        assert {p: o for p, o in committed.items() if o >= 0} == {
            p: o for p, o in expected_committed.items() if o > 0
        }

        # a second group with explicit offsets, committed without joining the group
        other = Consumer(consumer_config(bootstrap, "durability-explicit", read_committed=False))
        other.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in EXPLICIT.items()], asynchronous=False)
        assert {tp.partition: tp.offset for tp in other.committed(partitions, timeout=30)} == EXPLICIT
        other.close()

        pids = read_pids(Path(data_dir).resolve())
        assert set(pids) == {"projector", "tansu", "weed"}  # csp up starts the projector too
    finally:
        down = _csp("down", "--data-dir", data_dir)
    assert down.returncode == 0, down.stderr
    for pid in pids.values():
        assert not procs.is_alive(pid)
        assert procs.group_members(pid) == []
    assert read_pids(Path(data_dir).resolve()) == {}

    bootstrap = _up(data_dir)
    try:
        live = list_topics(bootstrap)
        assert live[TOPIC] == PARTITIONS
        assert all(live.get(s.name) == s.partitions for s in CATALOG)

        resumed = Consumer(consumer_config(bootstrap, "durability-group", read_committed=False))
        after = {tp.partition: tp.offset for tp in resumed.committed(partitions, timeout=30)}
        assert after == committed
        other = Consumer(consumer_config(bootstrap, "durability-explicit", read_committed=False))
        assert {tp.partition: tp.offset for tp in other.committed(partitions, timeout=30)} == EXPLICIT
        other.close()
        resumed.subscribe([TOPIC])
        rest = _consume(resumed, N - HALF)
        resumed.close()
        assert len(rest) == N - HALF
        first_seen: dict[int, int] = {}
        for partition, offset, _ in rest:
            first_seen.setdefault(partition, offset)
        for partition, offset in first_seen.items():
            assert offset == max(committed[partition], 0)
        assert {v for *_, v in consumed} | {v for *_, v in rest} == {_value(i) for i in range(N)}

        everything = Consumer(consumer_config(bootstrap, "durability-fresh", read_committed=False))
        everything.subscribe([TOPIC])
        all_records = _consume(everything, N)
        everything.close()
        values = [v for *_, v in all_records]
        assert len(values) == N
        assert set(values) == {_value(i) for i in range(N)}
    finally:
        down = _csp("down", "--data-dir", data_dir)
    assert down.returncode == 0, down.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_records_survive_sigkill_of_every_component(durable_stack):
    import os
    import signal

    from infra.state import read_state

    settings, endpoints = durable_stack.start()
    topic = "durability.crash"
    ensure_topics(endpoints.kafka_bootstrap, [TopicSpec(topic, 2, "i", "bytes", "delete", -1, "test", None, False)])
    producer = Producer({"bootstrap.servers": endpoints.kafka_bootstrap, "acks": "all"})
    for i in range(2000):
        producer.produce(topic, key=str(i).encode(), value=_value(i))
    assert producer.flush(60) == 0
    data_dir = settings.resolved_data_dir()
    pids = dict(read_state(data_dir).pids)
    for pid in pids.values():
        os.killpg(pid, signal.SIGKILL)
    for pid in pids.values():
        while procs.is_alive(pid):  # hang-guarded by the test timeout
            time.sleep(0.05)

    _, endpoints = durable_stack.start(settings)  # stale pid files are replaced
    assert set(read_pids(data_dir)) == {"tansu", "weed"}
    assert all(pid not in pids.values() for pid in read_pids(data_dir).values())
    consumer = Consumer(consumer_config(endpoints.kafka_bootstrap, "crash-group", read_committed=False))
    consumer.subscribe([topic])
    values = {v for *_, v in _consume(consumer, 2000)}
    consumer.close()
    assert values == {_value(i) for i in range(2000)}
