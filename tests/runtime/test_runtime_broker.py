"""The runtime on the real broker and engine: commands in, events/refusals/snapshots/channel messages out."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer
from lts_fixtures import buffer_deployment, misc_deployment
from runtime_helpers import thread_worker
from shared_helpers import new_platform

from processors.csp.runtime.records import command_record
from streams.clients import producer_config


def test_offers_refusals_channels_replay(kafka_bootstrap: str, tmp_path: Path) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    platform.publish_deployment(misc_deployment())
    with platform, thread_worker(platform):
        inst = platform.start("buf")
        assert inst.version == 1 and inst.snapshot["status"] == "RUNNING"
        r = inst.offer("in.2")
        assert r.accepted and r.event is not None and r.event["seq"] == 1 and r.event["kind"] == "INPUT"
        assert [e["event"] for e in r.follow] in ([], ["out.2"])
        # every kind of bad offer gets a refusal naming the reason
        reasons = {ev: inst.offer(ev).refusal for ev in ("out.1", "nosuch", "in.9", "in")}
        assert {ev: (ref or {}).get("reason") for ev, ref in reasons.items()} == {
            "out.1": "NOT_ACCEPTABLE",
            "nosuch": "UNKNOWN_EVENT",
            "in.9": "MALFORMED",
            "in": "MALFORMED",
        }
        assert reasons["out.1"]["acceptable"] == ["in.0", "in.1", "in.2"]  # type: ignore[index]
        assert platform.offer("no-such-instance", "in.1").refusal["reason"] == "UNKNOWN_INSTANCE"  # type: ignore[index]
        assert inst.offer("in.0").accepted
        # an offer with a seq precondition: applied at that seq, refused once the instance moved on
        # (the first takes the runtime's fast path, the second its refusal path)
        assert inst.offer("in.1", expect_seq=4).accepted
        stale = inst.offer("in.1", expect_seq=4).refusal
        assert stale is not None and stale["reason"] == "NOT_ACCEPTABLE" and "moved on to seq 6" in stale["message"]
        assert inst.offer("in.0", expect_seq=6).accepted
        # deadlock, then offers refused as DEADLOCKED
        m = platform.start("misc")
        assert m.offer("go").accepted
        assert m.offer("go").refusal["reason"] == "DEADLOCKED"  # type: ignore[index]
        # divergence: the bound on τ steps halts the instance with a DIVERGENT refusal; termination
        d = platform.start("misc")
        spin = d.offer("spin")
        assert spin.accepted and len(spin.follow) >= 1
        div = next(r for r in platform.refusals() if r["instance_id"] == d.instance_id)
        assert div["reason"] == "DIVERGENT" and "internal/output steps" in div["message"]
        assert d.offer("go").refusal["reason"] == "DIVERGENT"  # type: ignore[index]
        t = platform.start("misc")
        fin = t.offer("fin")
        assert fin.accepted and [e["kind"] for e in fin.follow] == ["TICK"]
        assert t.offer("go").refusal["reason"] == "TERMINATED"  # type: ignore[index]
        # stop
        assert inst.stop()["status"] == "STOPPED"
        assert inst.offer("in.1").refusal["reason"] == "STOPPED"  # type: ignore[index]
        # a redeploy makes a new version; the running instance keeps its version
        platform.publish_deployment(buffer_deployment("buf", 2, values=2))
        inst2 = platform.start("buf")
        assert inst2.version == 2
        assert inst2.offer("in.2").refusal["reason"] == "MALFORMED"  # type: ignore[index]

        # a record that is not a command, bytes that are not Avro, and a key that is not the instance id
        prod = Producer(producer_config(kafka_bootstrap))
        cmd = platform.codec.encode("CspCommand", command_record("bad-key", "k1", "OFFER", 1, event="in.1"))
        prod.produce(platform.topics.commands, key=b"other", value=cmd)
        prod.produce(platform.topics.commands, key=b"k1", value=b"\x00\x00\x00\x00\x07garbage")
        snap = platform.codec.encode(
            "CspSnapshot",
            {
                "instance_id": "k1",
                "system": "buf",
                "version": 1,
                "seq": 0,
                "state": 0,
                "status": "RUNNING",
                "trace_length": 0,
                "timestamp": 0,
            },
        )
        prod.produce(platform.topics.commands, key=b"k1", value=snap)
        assert prod.flush(10) == 0

        replay = inst.replay()
        assert [e["event"] for e in replay.trace] == ["in.2", "out.2", "in.0", "out.0", "in.1", "out.1", "in.0", "out.0"]
        assert replay.instance.status.value == "STOPPED"
        assert inst.replay(until=3).instance.state == 1
        msgs = list(platform.subscribe("out", system="buf", timeout_s=2.0))
        assert sorted(
            (m["instance_id"], m["values"][0]) for m in msgs if m["instance_id"] == inst.instance_id
        ) == [(inst.instance_id, "0"), (inst.instance_id, "0"), (inst.instance_id, "1"), (inst.instance_id, "2")]

        def dlq() -> list[dict]:  # type: ignore[type-arg]
            return platform.read(platform.topics.commands_dlq, "DeadLetter")

        from runtime_helpers import wait_until

        wait_until(lambda: len(dlq()) >= 2, 30, "two dead letters")
        errors = sorted(d["error"] for d in dlq())
        assert any("CspSnapshot" in e for e in errors) and any(
            "undecodable" in e or "schema" in e for e in errors
        )
        wait_until(lambda: any(r["command_id"] == "bad-key" for r in platform.refusals()), 30, "key refusal")
        bad = next(r for r in platform.refusals() if r["command_id"] == "bad-key")
        assert bad["reason"] == "MALFORMED" and "key" in bad["message"]
        states = {i.instance_id: i for i in platform.instances()}
        assert (
            states[inst.instance_id].status.value == "STOPPED"
            and states[m.instance_id].status.value == "DEADLOCKED"
        )
