"""The runtime processor: applies ``csp.commands`` to instances on the engine.

One processor instance holds the instances of the ``csp.commands`` partitions
assigned to it (instances are keyed, hence partitioned, by instance id). For
each command it runs the pure step (:mod:`.step`) and emits, in the batch's
transaction:

* the steps as ``CspEvent`` records on ``csp.events`` (same partition number as
  the command), each carrying its source command position;
* each visible step as a ``ChannelMessage`` on its channel topic;
* a ``CspRefusal`` on ``csp.refusals`` for a refused (or divergent) command;
* a ``CspSnapshot`` on ``csp.snapshots`` when an instance starts, changes status,
  or every ``snapshot_every`` events.

A record on the commands topic that is not a ``CspCommand`` is dead-lettered;
a malformed command is refused (MALFORMED). Nothing is dropped.

Recovery (``on_assign``) reads the partition's snapshots and events to their
end, ignores records of commands at or past the committed offset (aborted or
not yet committed: those commands are processed again), deduplicates on
``(instance, seq)`` and folds (:mod:`.fold`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from processors.csp.runtime import fold
from processors.csp.runtime.encoding import FastEncoder
from processors.csp.runtime.model import KIND_INPUT, KIND_OUTPUT, Deployment, Instance
from processors.csp.runtime.registry import DeploymentStore
from processors.csp.runtime.step import DEFAULT_BOUND, Refusal, apply, command_from_record
from processors.csp.runtime.topics import RuntimeTopics
from streams.engine import AssignContext, BatchContext, Codec, PartitionRef, ProcessorBase
from streams.reader import read_to_end
from streams.records import InRecord, OutRecord

COMMAND_SCHEMA = "CspCommand"


class _NoDeployment:
    deployed_at = 0


_NONE = _NoDeployment()
DEFAULT_SNAPSHOT_EVERY = 100


@dataclass
class RuntimeStats:
    commands: int = 0
    events: int = 0
    refusals: int = 0
    snapshots: int = 0
    recovered_instances: int = 0


class RuntimeProcessor(ProcessorBase):
    decode_inputs = True

    def __init__(
        self,
        store: DeploymentStore,
        codec: Codec,
        topics: RuntimeTopics | None = None,
        *,
        bound: int = DEFAULT_BOUND,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        group: str | None = None,
    ) -> None:
        self.topics = topics or RuntimeTopics()
        self.name = group or (
            f"{self.topics.namespace}.csp-runtime" if self.topics.namespace else "csp-runtime"
        )
        self.inputs = (self.topics.commands,)
        self.store = store
        self.codec = codec
        self.bound = bound
        self.snapshot_every = max(1, snapshot_every)
        self.enc = FastEncoder(codec)
        self.partitions: dict[int, dict[str, Instance]] = {}
        self.stats = RuntimeStats()
        self._refreshed = False
        self._channel_topics: dict[tuple[str, str], str] = {}

    # -- deployments -------------------------------------------------------------------

    def lookup(self, system: str, version: int | None) -> Deployment | None:
        dep = self.store.lookup(system, version)
        if dep is None and not self._refreshed:
            self._refreshed = True  # at most one registry read per batch
            self.store.refresh()
            dep = self.store.lookup(system, version)
        return dep

    def resolve_latest(self, system: str, issued_at: int) -> int | None:
        """The version a START without a version runs: the newest deployed at or before ``issued_at``.

        Deterministic given the log (a reprocessed START picks the same version even after
        later redeploys); the registry is re-read at most once per batch.
        """
        if not self._refreshed:
            self._refreshed = True
            self.store.refresh()
        versions = self.store.versions(system)
        if not versions:
            return None
        eligible = [v for v in versions if (self.store.lookup(system, v) or _NONE).deployed_at <= issued_at]
        return eligible[-1] if eligible else versions[0]

    def _channel_topic(self, system: str, channel: str) -> str:
        key = (system, channel)
        topic = self._channel_topics.get(key)
        if topic is None:
            topic = self._channel_topics[key] = self.topics.channel(system, channel)
        return topic

    # -- processing ----------------------------------------------------------------------

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]:
        self._refreshed = False
        out: list[OutRecord] = []
        events_topic = self.topics.events
        enc = self.enc
        for rec in batch:
            name, value = rec.decoded()
            if name != COMMAND_SCHEMA:
                ctx.dead_letter(
                    rec, f"expected a {COMMAND_SCHEMA} record on {rec.topic}, got a {name} record"
                )
                continue
            part = rec.partition
            insts = self.partitions.get(part)
            if insts is None:
                insts = self.partitions[part] = {}
            self.stats.commands += 1
            cmd = command_from_record(value, rec.key)
            if isinstance(cmd, Refusal):
                iid = value.get("instance_id") or (rec.key_str or "")
                self._refuse(
                    out,
                    part,
                    iid,
                    insts.get(iid),
                    value.get("command_id") or "",
                    cmd,
                    int(value.get("issued_at") or rec.timestamp),
                    value.get("system"),
                )
                continue
            iid = cmd.instance_id
            before = insts.get(iid)
            if cmd.kind == "START" and cmd.version is None and before is None and cmd.system:
                cmd = replace(cmd, version=self.resolve_latest(cmd.system, cmd.issued_at))
            outcome = apply(cmd, before, self.lookup, self.bound)
            inst = outcome.instance
            if outcome.steps and inst is not None:
                dep = self.lookup(inst.system, inst.version)
                assert dep is not None
                key = rec.key or iid.encode()
                for step in outcome.steps:
                    raw = enc.event(dep, iid, step, cmd, part, rec.offset)
                    out.append(OutRecord(events_topic, key, raw=raw, partition=part))
                    kind = step.kind
                    if kind in (KIND_INPUT, KIND_OUTPUT):
                        ch = dep.label_channel[step.label]
                        if ch is not None:
                            out.append(
                                OutRecord(
                                    self._channel_topic(dep.system, ch),
                                    key,
                                    raw=enc.channel_message(dep, iid, step, cmd.issued_at),
                                )
                            )
                self.stats.events += len(outcome.steps)
            if outcome.refusal is not None:
                self._refuse(out, part, iid, inst, cmd.command_id, outcome.refusal, cmd.issued_at, cmd.system)
            if inst is not None:
                insts[iid] = inst
                if outcome.status_changed or (
                    before is not None
                    and before.seq // self.snapshot_every != inst.seq // self.snapshot_every
                ):
                    out.append(
                        OutRecord(
                            self.topics.snapshots,
                            iid.encode(),
                            raw=enc.snapshot(inst, part, rec.offset),
                            partition=part,
                        )
                    )
                    self.stats.snapshots += 1
        return out

    def _refuse(
        self,
        out: list[OutRecord],
        part: int,
        iid: str,
        inst: Instance | None,
        command_id: str,
        refusal: Refusal,
        ts: int,
        system: str | None,
    ) -> None:
        raw = self.enc.refusal(iid, inst, command_id, refusal, ts, system)
        out.append(OutRecord(self.topics.refusals, iid.encode(), raw=raw, partition=part))
        self.stats.refusals += 1

    # -- recovery --------------------------------------------------------------------------

    def on_assign(self, partitions: Sequence[PartitionRef], ctx: AssignContext) -> None:
        mine = [p for p in partitions if p.topic == self.topics.commands]
        if not mine:
            return
        self.store.refresh()
        for ref in mine:
            committed = ctx.committed.get(ref, -1)
            self.partitions[ref.partition] = self.recover_partition(ref.partition, max(0, committed))

    def recover_partition(self, partition: int, committed: int) -> dict[str, Instance]:
        snaps = list(self._read(self.topics.snapshots, partition, "CspSnapshot"))
        events = list(self._read(self.topics.events, partition, "CspEvent"))
        got = fold.recover(snaps, events, committed, self.store.lookup)
        self.stats.recovered_instances += len(got)
        return got

    def _read(self, topic: str, partition: int, schema: str) -> Iterable[Mapping[str, Any]]:
        decode = self.codec.decode
        for _off, _key, value, _ts in read_to_end(self.store.bootstrap, topic, partition):
            if value is None:
                continue
            try:
                name, rec = decode(value)
            except Exception:
                continue  # not a runtime record (the topic's own consumers dead-letter it)
            if name == schema:
                yield rec

    def on_revoke(self, partitions: Sequence[PartitionRef]) -> None:
        for ref in partitions:
            if ref.topic == self.topics.commands:
                self.partitions.pop(ref.partition, None)
