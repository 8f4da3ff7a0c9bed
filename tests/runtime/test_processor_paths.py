"""The processor's fast path (pre-encoded deterministic offers and starts) produces exactly the records
of its general path (the pure step + the generic encoders), decoded by the validating codec."""

from __future__ import annotations

from lts_fixtures import buffer_deployment, choice_deployment, misc_deployment

from processors.csp.runtime.partitioning import partition_for
from processors.csp.runtime.processor import RuntimeProcessor
from processors.csp.runtime.records import command_record
from processors.csp.runtime.registry import DeploymentStore
from processors.csp.runtime.topics import RuntimeTopics
from schemas.codec import Codec
from schemas.registry import LocalRegistry
from streams.engine import BatchContext
from streams.records import InRecord


def run(bound: int, batch: list[tuple[str, bytes]], codec: Codec) -> tuple[RuntimeProcessor, list[tuple]]:  # type: ignore[type-arg]
    store = DeploymentStore("unused:9092", codec, RuntimeTopics())
    for dep in (buffer_deployment("buf", 1), choice_deployment(), misc_deployment()):
        store._deps[dep.key] = dep
    proc = RuntimeProcessor(store, codec, RuntimeTopics(), bound=bound, snapshot_every=3)
    proc._refreshed = True  # no registry reads: everything is deployed above
    # each command on its instance's home partition (else the processor forwards it there)
    recs = [
        InRecord.of("csp.commands", partition_for(k, 4), 100 + i, k.encode(), v, codec.decode, 5)
        for i, (k, v) in enumerate(batch)
    ]
    ctx = BatchContext("p", lambda t: None)
    outs = []
    for i in range(0, len(recs), 7):  # several batches
        for o in proc.process(recs[i : i + 7], ctx):
            outs.append((o.topic, o.key, o.partition, codec.decode(o.raw or b"")))
    assert not ctx.dead_letters
    return proc, outs


def test_fast_and_general_paths_agree() -> None:
    codec = Codec(LocalRegistry.load())
    cmds = []
    for i in range(6):
        system = ("buf", "choice", "misc")[i % 3]
        iid = f"i{i}"
        cmds.append((iid, command_record(f"s{i}", iid, "START", 10 + i, system=system, version=1,
                                         params={"p": str(i)} if i == 2 else None)))  # fmt: skip
    events = {"buf": ["in.0", "in.2", "in.1", "out.1", "in.9", "in.1", "in.0"], "choice": ["a", "b", "c"] * 3,
              "misc": ["ping.1", "ping.2", "go", "go"]}  # fmt: skip
    for k in range(9):
        for i in range(6):
            evs = events[("buf", "choice", "misc")[i % 3]]
            if k < len(evs):
                cmds.append((f"i{i}", command_record(f"o{k}-{i}", f"i{i}", "OFFER", 1000 + k, event=evs[k],
                                                     offer_id=None if k % 2 else f"of{k}")))  # fmt: skip
    cmds.append(("i0", command_record("stop0", "i0", "STOP", 5000)))
    cmds.append(("i0", command_record("late", "i0", "OFFER", 5001, event="in.1")))
    batch = [(k, codec.encode("CspCommand", v)) for k, v in cmds]
    fast_proc, fast = run(1000, batch, codec)
    slow_proc, slow = run(999, batch, codec)  # bound != the deployments' macro bound: general path only
    assert fast_proc._macro_cache and not any(slow_proc._macro_cache.values())
    assert len(fast) == len(slow) > 50
    for a, b in zip(fast, slow, strict=True):
        assert a == b
    assert fast_proc.partitions == slow_proc.partitions
    kinds = {(t, rec[0]) for t, _k, _p, rec in fast}
    assert ("csp.events", "CspEvent") in kinds and ("csp.snapshots", "CspSnapshot") in kinds
    assert ("csp.refusals", "CspRefusal") in kinds and ("csp.channel.buf.out", "ChannelMessage") in kinds
