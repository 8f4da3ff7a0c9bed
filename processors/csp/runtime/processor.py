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
a malformed command is refused (MALFORMED), a command record larger than
``max_command_bytes`` is refused (TOO_LARGE) without being decoded. Nothing is
dropped, and no input stops the worker (refusals are bounded in size).

An instance lives on its *home* partition: the Java-murmur2 partition of its id
(:func:`.partitioning.partition_for`). A command produced to another partition
(a client with another partitioner) is forwarded, inside the batch's
transaction, to the home partition, unless its instance already lives where it
arrived (instances created before forwarding existed). So an instance id exists
once, whatever partitioner the producers use.

Commands are idempotent on ``command_id`` (:mod:`.idempotence`): a command whose
id is in its instance's window of recent command ids is refused as DUPLICATE and
not applied again.

Hot path: an offer whose outcome needs no draw (a *macro step*, see
:meth:`Deployment.macro`) and a START with a deterministic initial settling are
emitted from cached, pre-encoded fragments; everything else goes through the
pure step. Both produce identical records (``tests/runtime/test_processor_paths.py``).

Recovery (``on_assign``) reads the partition's snapshots and events to their
end, ignores records of commands at or past the committed offset (aborted or
not yet committed: those commands are processed again), deduplicates on
``(instance, seq)`` and folds (:mod:`.fold`).
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from processors.csp.runtime import fold
from processors.csp.runtime.derived import DerivedWindow, is_derived
from processors.csp.runtime.encoding import (
    CommandDecoder,
    EventDecoder,
    FastEncoder,
    _rstr,
    as_command_dict,
    zl,
    zlong,
    zstr,
)
from processors.csp.runtime.idempotence import DEFAULT_WINDOW, command_hash, push, seen
from processors.csp.runtime.model import (
    KIND_OUTPUT,
    Deployment,
    Instance,
    Macro,
    Status,
    frozen_params,
)
from processors.csp.runtime.partitioning import partition_for
from processors.csp.runtime.records import COMPLETE_HEADER, COMPLETION_SCHEMA
from processors.csp.runtime.registry import DeploymentStore
from processors.csp.runtime.step import DEFAULT_BOUND, EXPECT_SEQ, Refusal, apply, command_from_record
from processors.csp.runtime.topics import RuntimeTopics
from streams.engine import AssignContext, BatchContext, Codec, PartitionRef, ProcessorBase
from streams.reader import read_to_end
from streams.records import InRecord, OutRecord

COMMAND_SCHEMA = "CspCommand"
# the largest command record (Avro bytes) the runtime decodes; larger ones are refused TOO_LARGE
MAX_COMMAND_BYTES = 64 * 1024
# bounds of a refusal record's copied fields
MAX_REFUSAL_EVENT = 1000
MAX_REFUSAL_ACCEPTABLE = 100
FORWARDED_HEADER = "csp-forwarded-from"


def _completion_wanted(msg: Any, headers: list[tuple[str, bytes]], mark: int) -> tuple[Any, str, int] | None:
    for k, v in headers:
        if k == COMPLETE_HEADER and v:
            return msg, v[:1000].decode("utf-8", "replace"), mark
    return None


def tune_gc() -> None:
    """Garbage-collector settings for a worker: the hot path creates many short-lived acyclic
    objects (output records) and keeps a large, long-lived instance table; the default gen-0
    threshold (700) would rescan the young objects thousands of times per batch."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


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
    completions: int = 0
    recovered_instances: int = 0
    forwarded: int = 0


class RuntimeProcessor(ProcessorBase):
    decode_inputs = False  # the processor decodes commands itself (hand-written Avro decoder)
    transactional_scope = "partition"  # a worker taking a partition over fences its previous owner

    def __init__(
        self,
        store: DeploymentStore,
        codec: Codec,
        topics: RuntimeTopics | None = None,
        *,
        bound: int = DEFAULT_BOUND,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        group: str | None = None,
        max_command_bytes: int = MAX_COMMAND_BYTES,
        dedupe_window: int = DEFAULT_WINDOW,
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
        self._deps: dict[tuple[str, int], Deployment] = {}
        # (deployment, state, label) -> (macro, its encoded parts, its length) or None
        self._macro_cache: dict[tuple[tuple[str, int], int, int], tuple[Macro, Any, int] | None] = {}
        self.dec = CommandDecoder(codec)
        self._event_decoder = EventDecoder(codec)
        # instances whose id the default partitioner would not put on their command partition:
        # their outputs carry an explicit partition (normally none)
        self._unnatural: dict[int, set[str]] = {}
        self._out_partitions = self.topics.partitions
        self._cmd_partitions = self.topics.partitions
        self._explicit_all = False
        self.max_command_bytes = max_command_bytes
        self.window = max(0, dedupe_window)
        # derived command ids (channel bridge offers) applied, per command partition
        self._derived: dict[int, DerivedWindow] = {}
        self._last_refusal: str | None = None  # the reason of the latest refusal written (completions)

    # -- deployments -------------------------------------------------------------------

    def lookup(self, system: str, version: int | None) -> Deployment | None:
        dep = self.store.lookup(system, version)
        if dep is None and not self._refreshed:
            self._refreshed = True  # at most one registry read per batch
            self.store.refresh()
            dep = self.store.lookup(system, version)
        if dep is not None:
            self._deps[dep.key] = dep
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
        append = out.append
        decode = self.dec.decode
        decode_tuple = self.dec.decode_tuple
        macros = self._macro_cache
        ev_header = self.enc.event_header
        sysver = self.enc.sysver
        partitions = self.partitions
        deps = self._deps
        enc = self.enc
        events_topic = self.topics.events
        chan_header = enc.channel_header
        every = self.snapshot_every
        bound = self.bound
        running = Status.RUNNING
        snapshots_topic = self.topics.snapshots
        unnatural = self._unnatural
        chan_topic_of = self._channel_topic
        n_events = 0
        last_ts, last_ts_b = 0, b"\x00"
        gc_was = gc.isenabled()
        gc.disable()  # the hot path makes no reference cycles; a full collection per batch costs more
        try:
            max_bytes = self.max_command_bytes
            window = self.window
            pending: tuple[Any, str, int] | None = None  # a command that asked for its completion record
            for rec in batch:
                if pending is not None:
                    self._complete(pending, out)
                    pending = None
                msg = rec._msg
                hdrs = msg.headers()
                if hdrs:
                    pending = _completion_wanted(msg, hdrs, len(out))
                raw = msg.value()
                part = msg.partition()
                insts = partitions.get(part)
                if insts is None:
                    insts = partitions[part] = {}
                if len(raw) > max_bytes:
                    self._too_large(rec, raw, out)
                    continue
                t = decode_tuple(raw)
                if t is not None and is_derived(t[0]) and self._derived_repeat(part, t[0]):
                    continue
                if t is not None:
                    # -- fast path: a deterministic accepted offer (no draw, bounded settling) --
                    iid = t[1]
                    inst = insts.get(iid)
                    event = t[6]
                    params = t[5]
                    if (
                        inst is not None
                        and inst.status is running
                        and t[2] == "OFFER"
                        and event is not None
                        # an offer with a seq precondition takes the fast path only when it holds
                        and (not params or params.get(EXPECT_SEQ) in (None, str(inst.seq)))
                    ):
                        dep = deps.get((inst.system, inst.version))
                        key = msg.key()
                        cached = None
                        cid = t[0]
                        h = command_hash(cid) if cid else b""
                        recent = inst.recent
                        if dep is not None and key == iid.encode() and not (recent and h and seen(recent, h)):
                            label = dep.label_of.get(event)
                            if label is not None:
                                ck = (dep.key, inst.state, label)
                                cached = macros.get(ck)
                                if cached is None and ck not in macros:
                                    m = dep.macro(inst.state, label) if dep.macro_bound == bound else None
                                    cached = macros[ck] = (
                                        None
                                        if m is None
                                        else (m, enc.macro_parts(dep, m, chan_topic_of), len(m.steps))
                                    )
                        if cached is not None and dep is not None:
                            macro, parts, nsteps = cached
                            offset = msg.offset()
                            iid_b = zstr(iid)
                            prefix = ev_header + iid_b + sysver(dep)
                            cmd_b = zstr(t[0])
                            ts = t[8]
                            if ts != last_ts:  # commands of a batch mostly share a timestamp
                                last_ts, last_ts_b = ts, zlong(ts)
                            ts_b = last_ts_b
                            ev_part = part if iid in unnatural.get(part, ()) else None
                            tail = ts_b + b"\x02" + zl(part) + b"\x02" + zl(offset)
                            offer_id = t[7]
                            mid = b"\x00" + cmd_b
                            seq = inst.seq
                            first = True
                            for label_b, states_b, chan_mid, chan_topic in parts:
                                seq += 1
                                seq_b = zl(seq)
                                if first:
                                    first = False
                                    head = (
                                        label_b
                                        + (b"\x00" if offer_id is None else b"\x02" + zstr(offer_id))
                                        + cmd_b
                                    )
                                else:
                                    head = label_b + mid
                                append(OutRecord(events_topic, key, None, None,
                                                 b"".join((prefix, seq_b, head, states_b, tail)), ev_part))  # fmt: skip
                                if chan_topic is not None:
                                    append(OutRecord(chan_topic, key, None, None,
                                                     b"".join((chan_header, iid_b, chan_mid, seq_b, ts_b))))  # fmt: skip
                            n_events += nsteps
                            new = Instance(
                                iid,
                                inst.system,
                                inst.version,
                                macro.state,
                                seq,
                                macro.status,
                                ts,
                                inst.params,
                                push(recent, h, window) if h and nsteps else recent,
                            )
                            insts[iid] = new
                            if macro.status is not running or inst.seq // every != seq // every:
                                append(OutRecord(snapshots_topic, key, None, None,
                                                 enc.snapshot(new, part, offset), ev_part))  # fmt: skip
                                self.stats.snapshots += 1
                            continue
                    value = as_command_dict(t)
                else:
                    try:
                        name, value = decode(msg.value())
                    except Exception as exc:
                        ctx.dead_letter(rec, f"undecodable record: {exc}")
                        continue
                    if name != COMMAND_SCHEMA:
                        ctx.dead_letter(
                            rec, f"expected a {COMMAND_SCHEMA} record on {rec.topic}, got a {name} record"
                        )
                        continue
                    if is_derived(value["command_id"]) and self._derived_repeat(part, value["command_id"]):
                        continue
                    iid = value["instance_id"]
                    inst = insts.get(iid)
                if inst is None and self.home(iid) != part:
                    self._forward(rec, iid, out)
                    continue
                if inst is None and value["kind"] == "START" and self._fast_start(msg, value, insts, out):
                    continue
                self._general(rec, value, insts, out, ctx)
            if pending is not None:
                self._complete(pending, out)
        finally:
            if gc_was:
                gc.enable()
        self.stats.commands += len(batch)
        self.stats.events += n_events
        return out

    def _complete(self, pending: tuple[Any, str, int], out: list[OutRecord]) -> None:
        """The completion record of a command that asked for one (header ``csp-complete``): after
        the records the command wrote (``out[mark:]``), in the same transaction, with their counts.
        A forwarded command completes at its home partition instead; a dead-lettered one has none."""
        msg, command_id, mark = pending
        t = self.topics
        events = snapshots = 0
        refused = False
        for o in out[mark:]:
            topic = o.topic
            if topic == t.events:
                events += 1
            elif topic == t.snapshots:
                snapshots += 1
            elif topic == t.refusals:
                refused = True
            elif topic == t.commands:
                return
        if not (events or snapshots or refused):
            return  # nothing was applied or refused (a skipped repeat of a derived command)
        part = msg.partition()
        key = msg.key() or b""
        iid = key.decode("utf-8", "replace")
        inst = self.partitions.get(part, {}).get(iid)
        reason = self._last_refusal if refused else None
        value = {
            "command_id": command_id,
            "instance_id": iid,
            "command_partition": part,
            "command_offset": msg.offset(),
            "outcome": "REFUSED" if refused else "APPLIED",
            "events": events,
            "last_seq": inst.seq if events and inst is not None else None,
            "snapshot": snapshots > 0,
            "reason": reason,
            "timestamp": int(time.time() * 1000),
        }
        out.append(OutRecord(t.completions, key, None, None, self.enc.generic(COMPLETION_SCHEMA, value), part))
        self.stats.completions += 1

    def _derived_repeat(self, part: int, command_id: str) -> bool:
        window = self._derived.get(part)
        if window is None:
            window = self._derived[part] = DerivedWindow()
        return window.seen(command_id)

    def _fast_start(
        self, msg: Any, value: Mapping[str, Any], insts: dict[str, Instance], out: list[OutRecord]
    ) -> bool:
        """START of a new instance whose initial settling is deterministic; False: take the general path."""
        iid = value["instance_id"]
        key = msg.key()
        version = value["version"]
        if not iid or version is None or key != iid.encode():
            return False
        dep = self._deps.get((value["system"], version))
        if dep is None or dep.macro_bound != self.bound:
            return False
        macro = dep.start_macro()
        if macro is None:
            return False
        part = msg.partition()
        offset = msg.offset()
        ts = value["issued_at"]
        if not self._natural(iid, part):
            self._unnatural.setdefault(part, set()).add(iid)
        ev_part = part if iid in self._unnatural.get(part, ()) else None
        enc = self.enc
        seq = 0
        if macro.steps:
            iid_b = zstr(iid)
            prefix = enc.event_prefix(dep, iid_b)
            cmd_b = zstr(value["command_id"])
            ts_b = zlong(ts)
            tail = ts_b + b"\x02" + zl(part) + b"\x02" + zl(offset)
            for label_b, states_b, chan_mid, chan_topic in enc.macro_parts(dep, macro, self._channel_topic):
                seq += 1
                seq_b = zl(seq)
                out.append(OutRecord(self.topics.events, key, None, None,
                                     b"".join((prefix, seq_b, label_b, b"\x00", cmd_b, states_b, tail)), ev_part))  # fmt: skip
                if chan_topic is not None and chan_mid is not None:
                    out.append(OutRecord(chan_topic, key, None, None,
                                         b"".join((enc.channel_header, iid_b, chan_mid, seq_b, ts_b))))  # fmt: skip
            self.stats.events += seq
        cid = value["command_id"]
        new = Instance(
            iid, dep.system, dep.version, macro.state, seq, macro.status, ts, frozen_params(value["params"]),
            push(b"", command_hash(cid), self.window) if cid and seq else b"",
        )  # fmt: skip
        insts[iid] = new
        out.append(
            OutRecord(self.topics.snapshots, key, None, None, enc.snapshot(new, part, offset), ev_part)
        )
        self.stats.snapshots += 1
        return True

    def untrusted(self, system: str, version: int | None) -> str | None:
        """Why a START of ``system`` (version, or None: the newest) may not run, or None."""
        reasons = getattr(self.store, "untrusted", {})
        if not reasons:
            return None
        if version is not None:
            if self.store.lookup(system, version) is not None:
                return None
            why = reasons.get((system, version))
            return None if why is None else f"{system} v{version} is not trusted: {why}"
        bad = sorted(v for (s, v) in reasons if s == system)
        if bad and not self.store.versions(system):
            return f"{system} v{bad[-1]} is not trusted: {reasons[(system, bad[-1])]}"
        return None

    def _chan_topic_of(self, dep: Deployment, label: int) -> str:
        key = (dep.system, dep.label_channel[label] or "")
        topic = self._channel_topics.get(key)
        if topic is None:
            topic = self._channel_topics[key] = self.topics.channel(key[0], key[1])
        return topic

    def home(self, iid: str) -> int:
        """The home partition of an instance on the commands topic (Java murmur2 of its id)."""
        return partition_for(iid, self._cmd_partitions)

    def _forward(self, rec: InRecord, iid: str, out: list[OutRecord]) -> None:
        """A command for an instance that is not on the partition it arrived on goes, unchanged,
        to its instance's home partition (in the batch's transaction: exactly once)."""
        msg = rec._msg
        home = self.home(iid)
        origin = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}".encode()
        headers = tuple((k, v) for k, v in rec.headers if k != FORWARDED_HEADER)
        out.append(OutRecord(self.topics.commands, msg.key(), raw=msg.value(), partition=home,
                             headers=(*headers, (FORWARDED_HEADER, origin))))  # fmt: skip
        self.stats.forwarded += 1

    def _too_large(self, rec: InRecord, raw: bytes, out: list[OutRecord]) -> None:
        msg = rec._msg
        key = msg.key() or b""
        iid = key[:200].decode("utf-8", "replace")
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        command_id = where
        if raw[:5] == self.dec._header:  # name the command when its id is readable (bounded work)
            try:
                cid, _pos = _rstr(raw[:1100], 5)
                command_id = cid[:1000] or where
            except (IndexError, UnicodeDecodeError, ValueError):
                pass
        refusal = Refusal(
            "TOO_LARGE",
            f"command record {where} is {len(raw)} bytes, above the runtime's limit of {self.max_command_bytes} "
            f"bytes (sha256 {hashlib.sha256(raw).hexdigest()}); it was not decoded or applied",
        )
        self._refuse(out, msg.partition(), iid, None, command_id, refusal, rec.timestamp, None)

    def _natural(self, iid: str, part: int) -> bool:
        """Does the default (murmur2) partitioner put ``iid`` on ``part`` of the output topics?"""
        return self._explicit_all is False and partition_for(iid, self._out_partitions) == part

    def _general(
        self,
        rec: InRecord,
        value: Mapping[str, Any],
        insts: dict[str, Instance],
        out: list[OutRecord],
        ctx: BatchContext,
    ) -> None:
        """Any command, through the pure step (draws, refusals, starts, stops, divergence)."""
        enc = self.enc
        part = rec.partition
        cmd = command_from_record(value, rec.key)
        if isinstance(cmd, Refusal):
            iid = value.get("instance_id") or (rec.key_str or "")
            self._refuse(out, part, iid, insts.get(iid), value.get("command_id") or "", cmd,
                         int(value.get("issued_at") or rec.timestamp), value.get("system"))  # fmt: skip
            return
        iid = cmd.instance_id
        before = insts.get(iid)
        h = command_hash(cmd.command_id) if cmd.command_id else b""
        if before is not None and h and before.recent and seen(before.recent, h):
            dup = Refusal(
                "DUPLICATE",
                f"command {cmd.command_id} was already applied to instance {iid} (its events carry that "
                "command_id); it is not applied again: commands are idempotent on command_id",
                cmd.event, cmd.offer_id, (), before.state,
            )  # fmt: skip
            self._refuse(out, part, iid, before, cmd.command_id, dup, cmd.issued_at, cmd.system)
            return
        if cmd.kind == "START" and cmd.version is None and before is None and cmd.system:
            cmd = replace(cmd, version=self.resolve_latest(cmd.system, cmd.issued_at))
        if cmd.kind == "START" and before is None and cmd.system:
            if cmd.version is not None:
                self.lookup(cmd.system, cmd.version)  # reads the registry once when the version is new
            why = self.untrusted(cmd.system, cmd.version)
            if why is not None:
                bad = Refusal("UNTRUSTED_VERSION", why, cmd.event, cmd.offer_id)
                self._refuse(out, part, iid, None, cmd.command_id, bad, cmd.issued_at, cmd.system)
                return
        outcome = apply(cmd, before, self.lookup, self.bound)
        inst = outcome.instance
        if inst is not None and outcome.steps and h:
            inst = replace(inst, recent=push(before.recent if before is not None else b"", h, self.window))
        if before is None and inst is not None and not self._natural(iid, part):
            self._unnatural.setdefault(part, set()).add(iid)
        explicit = part if iid in self._unnatural.get(part, ()) else None
        key = iid.encode()
        if outcome.steps and inst is not None:
            dep = self.lookup(inst.system, inst.version)
            assert dep is not None
            for step in outcome.steps:
                out.append(OutRecord(self.topics.events, key, None, None,
                                     enc.event(dep, iid, step, cmd, part, rec.offset), explicit))  # fmt: skip
                if step.kind == KIND_OUTPUT and dep.label_channel[step.label] is not None:
                    out.append(OutRecord(self._chan_topic_of(dep, step.label), key, None, None,
                                         enc.channel_message(dep, iid, step, cmd.issued_at)))  # fmt: skip
            self.stats.events += len(outcome.steps)
        if outcome.refusal is not None:
            self._refuse(out, part, iid, inst, cmd.command_id, outcome.refusal, cmd.issued_at, cmd.system)
        if inst is not None:
            insts[iid] = inst
            every = self.snapshot_every
            if outcome.status_changed or (before is not None and before.seq // every != inst.seq // every):
                out.append(OutRecord(self.topics.snapshots, key, None, None,
                                     enc.snapshot(inst, part, rec.offset), explicit))  # fmt: skip
                self.stats.snapshots += 1

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
        if (
            len(refusal.acceptable) > MAX_REFUSAL_ACCEPTABLE
            or len(refusal.event or "") > MAX_REFUSAL_EVENT
            or len(refusal.message) > 4 * MAX_REFUSAL_EVENT
        ):
            refusal = bounded_refusal(refusal)
        raw = self.enc.refusal(iid, inst, command_id, refusal, ts, system)
        out.append(OutRecord(self.topics.refusals, iid.encode(), raw=raw, partition=part))
        self._last_refusal = refusal.reason
        self.stats.refusals += 1

    # -- recovery --------------------------------------------------------------------------

    def on_assign(self, partitions: Sequence[PartitionRef], ctx: AssignContext) -> None:
        mine = [p for p in partitions if p.topic == self.topics.commands]
        if not mine:
            return
        for ref in mine:
            if ref not in ctx.committed:
                # without the committed offset, records of aborted transactions cannot be told apart
                raise RuntimeError(f"{ref.topic}[{ref.partition}]: committed offset unknown; cannot recover")
        # the registry and every partition's snapshots and events are read concurrently (the reads
        # mostly wait on the broker), then folded
        with ThreadPoolExecutor(max_workers=2 * len(mine) + 1) as pool:
            registry = pool.submit(self.store.refresh)
            reads = {
                (ref.partition, topic): pool.submit(self._read_all, topic, ref.partition, schema)
                for ref in mine
                for topic, schema in (
                    (self.topics.snapshots, "CspSnapshot"),
                    (self.topics.events, "CspEvent"),
                )
            }
            registry.result()
            logs = {k: f.result() for k, f in reads.items()}
        self._check_partition_counts(ctx.bootstrap)
        for ref in mine:
            p = ref.partition
            insts = fold.recover(
                logs[(p, self.topics.snapshots)], logs[(p, self.topics.events)], max(0, ctx.committed[ref]),
                self.store.lookup, window=self.window,
            )  # fmt: skip
            self.stats.recovered_instances += len(insts)
            self.partitions[p] = insts
            self._unnatural[p] = {i for i in insts if not self._natural(i, p)}
            self._derived[p] = DerivedWindow.from_events(logs[(p, self.topics.events)], max(0, ctx.committed[ref]))
            for inst in insts.values():
                self.lookup(inst.system, inst.version)

    def _check_partition_counts(self, bootstrap: str) -> None:
        """Outputs go to the command's partition number: by the default partitioner when every
        instance-keyed topic has the same count, else explicitly."""
        from streams.admin import list_topics

        t = self.topics
        counts = list_topics(bootstrap)
        got = {counts.get(name) for name in (t.commands, t.events, t.snapshots, t.refusals)}
        self._explicit_all = len(got) != 1
        self._out_partitions = counts.get(t.events, t.partitions)
        cmd_parts = counts.get(t.commands, t.partitions)
        self._cmd_partitions = cmd_parts

    def recover_partition(self, partition: int, committed: int) -> dict[str, Instance]:
        snaps = list(self._read(self.topics.snapshots, partition, "CspSnapshot"))
        events = list(self._read(self.topics.events, partition, "CspEvent"))
        got = fold.recover(snaps, events, committed, self.store.lookup, window=self.window)
        self.stats.recovered_instances += len(got)
        return got

    def _read_all(self, topic: str, partition: int, schema: str) -> list[Mapping[str, Any]]:
        return list(self._read(topic, partition, schema))

    def _read(self, topic: str, partition: int, schema: str) -> Iterable[Mapping[str, Any]]:
        decode = self._event_decoder.decode if schema == "CspEvent" else self.codec.decode
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
                self._derived.pop(ref.partition, None)


def bounded_refusal(refusal: Refusal) -> Refusal:
    """``refusal`` with its copied fields cut to bounded sizes (a refusal never outgrows a record)."""
    acc = refusal.acceptable
    message = refusal.message[: 4 * MAX_REFUSAL_EVENT]
    if len(acc) > MAX_REFUSAL_ACCEPTABLE:
        message += f" ({len(acc)} acceptable events; the first {MAX_REFUSAL_ACCEPTABLE} are listed)"
        acc = acc[:MAX_REFUSAL_ACCEPTABLE]
    event = refusal.event
    if event is not None and len(event) > MAX_REFUSAL_EVENT:
        message += f" (event truncated from {len(event)} characters)"
        event = event[:MAX_REFUSAL_EVENT]
    return replace(refusal, message=message, event=event, acceptable=acc)
