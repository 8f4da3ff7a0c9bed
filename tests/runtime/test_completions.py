"""Per-command completion records (issue 8): a command with the ``csp-complete`` header gets one
CspCompletion on csp.completions, after its events, snapshot and refusal, with their counts; the
SDK's waited-for commands ask for it and return on it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lts_fixtures import buffer_deployment, misc_deployment
from runtime_helpers import thread_worker, wait_until
from shared_helpers import new_platform

from gateway.sdk import Platform
from processors.csp.runtime.partitioning import partition_for
from processors.csp.runtime.records import COMPLETE_HEADER, command_record
from streams.reader import read_records


def completions(platform: Platform, iid: str) -> list[dict[str, Any]]:
    part = partition_for(iid, platform.partitions)
    return [
        rec
        for _o, rec in read_records(
            platform.bootstrap, platform.topics.completions, part, platform.codec.decode, "CspCompletion"
        )
        if rec["instance_id"] == iid
    ]


def test_every_waited_command_has_one_completion_counting_its_records(kafka_bootstrap: str, tmp_path: Path) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    with platform, thread_worker(platform):
        inst = platform.start("buf")  # the fast START path
        iid = inst.instance_id
        ok = inst.offer("in.1")  # the fast OFFER path: in.1, out.1
        assert ok.accepted and [e["event"] for e in (ok.event, *ok.follow) if e] == ["in.1", "out.1"]
        bad = inst.offer("out.2")  # the general path: refused
        assert not bad.accepted and bad.refusal is not None
        final = inst.stop()
        assert final["status"] == "STOPPED"

        got = {c["command_id"]: c for c in completions(platform, iid)}
        assert len(got) == 4, got
        by_kind = sorted(got.values(), key=lambda c: int(c["command_offset"]))
        start, offer, refused, stop = by_kind
        assert start["outcome"] == "APPLIED" and start["snapshot"] and start["events"] == 0
        assert offer["outcome"] == "APPLIED" and offer["events"] == 2 and offer["last_seq"] == 2
        assert refused["outcome"] == "REFUSED" and refused["reason"] == "NOT_ACCEPTABLE"
        assert refused["events"] == 0 and refused["last_seq"] is None
        assert stop["outcome"] == "APPLIED" and stop["snapshot"]
        # each one names the command it completes, where it was applied
        events = [e for e in platform.events(iid) if e["command_id"] == offer["command_id"]]
        assert {(e["command_partition"], e["command_offset"]) for e in events} == {
            (offer["command_partition"], offer["command_offset"])
        }


def test_a_command_without_the_header_gets_no_completion(kafka_bootstrap: str, tmp_path: Path) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    with platform, thread_worker(platform):
        inst = platform.start("buf")
        iid = inst.instance_id
        platform.send(iid, "OFFER", wait=False, event="in.0", command_id="bulk-1")
        platform.producer.flush(30)
        wait_until(lambda: any(e["command_id"] == "bulk-1" for e in platform.events(iid)), 60, "the bulk offer")
        assert inst.offer("in.1").accepted
        ids = [c["command_id"] for c in completions(platform, iid)]
        assert "bulk-1" not in ids and len(ids) == 2  # the START and the waited offer


def test_a_divergent_offer_completes_refused_after_its_events(kafka_bootstrap: str, tmp_path: Path) -> None:
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(misc_deployment())
    with platform, thread_worker(platform):
        inst = platform.start("misc")
        res = inst.offer("spin")  # spin, then a τ loop: the runtime refuses DIVERGENT after the steps
        assert res.refusal is not None and res.refusal["reason"] == "DIVERGENT"
        (done,) = [c for c in completions(platform, inst.instance_id) if c["outcome"] == "REFUSED"]
        assert done["reason"] == "DIVERGENT"
        assert done["events"] >= 1 and done["last_seq"] == max(e["seq"] for e in platform.events(inst.instance_id))


def test_the_header_alone_asks_for_completion(kafka_bootstrap: str, tmp_path: Path) -> None:
    """A plain producer can ask too: the header's value is the command id it will be named by."""
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    with platform, thread_worker(platform):
        iid = platform.start("buf").instance_id
        part = partition_for(iid, platform.partitions)
        value = platform.codec.encode(
            "CspCommand", command_record("plain-1", iid, "OFFER", int(time.time() * 1000), event="in.2")
        )
        platform.producer.produce(platform.topics.commands, key=iid.encode(), value=value, partition=part,
                                  headers=[(COMPLETE_HEADER, b"plain-1")])  # fmt: skip
        platform.producer.flush(30)
        wait_until(lambda: any(c["command_id"] == "plain-1" for c in completions(platform, iid)), 60, "completion")
        (done,) = [c for c in completions(platform, iid) if c["command_id"] == "plain-1"]
        assert done["outcome"] == "APPLIED" and done["events"] == 2


def test_the_sdk_keeps_only_what_it_waits_for(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Other clients' commands share the partitions the SDK reads; their records are not kept
    (the SDK's memory stays bounded), and nothing is left once an offer has returned."""
    platform = new_platform(kafka_bootstrap, tmp_path)
    platform.publish_deployment(buffer_deployment("buf", 1))
    with platform, thread_worker(platform):
        mine = platform.start("buf")
        others = [f"other-{i}" for i in range(40)]
        platform.send_many((iid, "START", {"system": "buf", "version": 1}) for iid in others)
        platform.send_many((iid, "OFFER", {"event": "in.1"}) for iid in others)
        for i in range(3):
            assert mine.offer(f"in.{i}").accepted
            mine.offer(f"out.{i}")
        res = platform.results
        assert res.polled_others > 0  # the others' records did arrive on our partitions
        assert not res.by_position and not res.snap_by_position
        assert not res.refusal_by_command and not res.completion_by_command
        assert not res.wanted and not res.wanted_ids
