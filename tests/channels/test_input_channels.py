"""Input channel topics: a plain producer's ChannelMessage (Avro or JSON) is an offer to the instance."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from channel_helpers import (
    PlainReader,
    confluent_decode,
    confluent_encode,
    runtime_and_bridge,
    wait_until,
)
from confluent_kafka import Producer
from shared_helpers import new_platform

ROOT = Path(__file__).resolve().parents[2]


def test_plain_producer_to_input_topic_plain_consumer_on_output(kafka_bootstrap: str, tmp_path: Path) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    plan = platform.deploy(ROOT / "examples/buffer/buffer.csp", "BUFFER", name="buffer", outputs=["right"])
    assert not plan.refused
    left = platform.topics.channel("buffer", "left")
    right = platform.topics.channel("buffer", "right")
    iid = f"buf-{uuid.uuid4().hex[:8]}"
    with platform, runtime_and_bridge(platform):
        platform.start("buffer", instance_id=iid)
        # a plain producer: default partitioner, no platform code; Avro from the schema file, and JSON
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        msg = {"instance_id": iid, "system": "buffer", "channel": "left", "event": "left.1", "values": ["1"],
               "seq": 0, "timestamp": 0}  # fmt: skip
        producer.produce(left, key=iid.encode(), value=confluent_encode("ChannelMessage", msg))
        producer.produce(left, key=iid.encode(), value=json.dumps({"values": ["2"]}).encode())
        producer.produce(
            left, key=iid.encode(), value=json.dumps({"event": "right.0"}).encode()
        )  # wrong channel
        producer.produce(left, key=iid.encode(), value=json.dumps({"values": ["7"]}).encode())  # not in Val
        producer.produce(left, key=iid.encode(), value=b"\x07not a record")  # dead letter
        producer.produce(left, key=b"", value=json.dumps({"values": ["0"]}).encode())  # no instance id
        assert producer.flush(30) == 0
        out = PlainReader(kafka_bootstrap, right, platform.partitions)
        try:
            wait_until(lambda: out.poll() >= 2, 60, "two messages on the output channel topic")
            got = [confluent_decode("ChannelMessage", v) for _k, v in out.records]
        finally:
            out.close()
        assert [(m["instance_id"], m["event"]) for m in got] == [(iid, "right.1"), (iid, "right.2")]
        wait_until(lambda: len(platform.refusals()) >= 3, 60, "three refusals")
    inputs = [e for e in platform.events(iid) if e["kind"] == "INPUT"]
    assert [e["event"] for e in inputs] == ["left.1", "left.2"]
    assert all(e["command_id"].startswith(f"ch:{left}:") for e in inputs)
    refusals = {r["command_id"]: r for r in platform.refusals()}
    assert all(cid.startswith(f"ch:{left}:") for cid in refusals)  # the message's coordinates
    reasons = sorted((r["reason"], r["instance_id"]) for r in refusals.values())
    assert reasons == sorted([("MALFORMED", iid), ("MALFORMED", ""), (reasons_for_7(refusals), iid)])
    for cid, r in refusals.items():
        _ch, topic, part, offset = cid.rsplit(":", 3)
        assert topic == left and int(part) >= 0 and int(offset) >= 0, r
    dead = platform.read(left + ".dlq", "DeadLetter")
    assert len(dead) == 1 and dead[0]["value"] == b"\x07not a record" and dead[0]["source_topic"] == left
    platform.close()


def reasons_for_7(refusals: dict[str, dict[str, object]]) -> str:
    """The runtime's reason for left.7 (a value outside the channel's type)."""
    got = [r["reason"] for r in refusals.values() if r.get("event") == "left.7"]
    assert len(got) == 1, refusals
    return str(got[0])


def test_a_derived_command_seen_twice_is_applied_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    """What the embedded broker does with an aborted bridge transaction: the same offer twice."""
    platform = new_platform(kafka_bootstrap, tmp_path)
    assert not platform.deploy(
        ROOT / "examples/buffer/buffer.csp", "BUFFER", name="buffer", outputs=["right"]
    ).refused
    iid = f"buf-{uuid.uuid4().hex[:8]}"
    with platform, runtime_and_bridge(platform):
        platform.start("buffer", instance_id=iid)
        for cid in ("ch:x:0:1", "ch:x:0:1", "ln:r:a:1", "ch:x:0:2", "ln:r:a:1"):
            platform.send(iid, "OFFER", event="left.0", command_id=cid, offer_id=cid)
        assert platform.offer(iid, "left.1").accepted
    inputs = [e["command_id"] for e in platform.events(iid) if e["kind"] == "INPUT"]
    assert inputs[:3] == ["ch:x:0:1", "ln:r:a:1", "ch:x:0:2"] and len(inputs) == 4
    platform.close()
