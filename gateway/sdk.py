"""Python SDK of the CSP runtime.

    platform = Platform.connect()                      # settings / embedded stack
    platform.deploy("buffer.csp", "BUFFER", outputs=["right"])
    inst = platform.start("BUFFER")
    result = inst.offer("left.1")                      # the accepted CspEvent, or the refusal
    for msg in platform.subscribe("right", system="BUFFER"):
        ...
    platform.instances()

Commands go to ``csp.commands`` keyed (and explicitly partitioned, Java
murmur2) by instance id; results are read back from ``csp.events`` /
``csp.snapshots`` / ``csp.refusals`` of the same partition, starting at the
partition's end offset taken before the command (reads never write), and
matched by the command's position (events, snapshots) or id (refusals). Consumers deduplicate on ``(instance, seq)``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from gateway.client_base import KafkaClient
from infra.settings import Settings
from processors.csp.runtime import fold
from processors.csp.runtime.deploy import Plan, plan
from processors.csp.runtime.model import Deployment
from processors.csp.runtime.model import Instance as InstanceState
from processors.csp.runtime.partitioning import partition_for
from processors.csp.runtime.records import COMPLETE_HEADER, command_record
from processors.csp.runtime.registry import DeploymentStore, deployment_record, publish
from processors.csp.runtime.signing import key_path, load_or_create_key, sign_record
from processors.csp.runtime.step import EXPECT_SEQ
from processors.csp.runtime.topics import RuntimeTopics
from schemas.codec import Codec
from streams.admin import ensure_topics, list_topics
from streams.clients import consume_available, consumer_config
from streams.reader import end_offset, read_records

if TYPE_CHECKING:
    from gateway.quantum_sdk import QuantumClient
    from processors.ledger.client import LedgerClient

if TYPE_CHECKING:
    from gateway.agents import Agents

if TYPE_CHECKING:
    from gateway.index import InstanceIndex
    from processors.channels.admin import LinkPlan
    from processors.channels.routes import Routes
    from processors.services.api import ServiceBinding


class PlatformError(RuntimeError):
    """A platform operation failed (refused deployment, refused start, timeout, ...)."""


class NoAnswer(PlatformError):
    """No runtime worker answered a command in time (is ``csp worker`` running?)."""


@dataclass(frozen=True)
class OfferResult:
    """The outcome of an offer: the accepted event (a CspEvent dict) or the refusal (a CspRefusal dict).

    Both when the event was accepted and the process then diverged (a DIVERGENT refusal after
    the steps it took)."""

    offer_id: str
    event: Mapping[str, Any] | None = None
    refusal: Mapping[str, Any] | None = None
    follow: tuple[Mapping[str, Any], ...] = ()  # the events the process performed after it (seen so far)

    @property
    def accepted(self) -> bool:
        return self.event is not None

    def __bool__(self) -> bool:
        return self.accepted

    def __str__(self) -> str:
        if self.event is not None:
            after = "".join(f", {e['event']}" for e in self.follow)
            halted = f"; then {self.refusal['reason']}: {self.refusal['message']}" if self.refusal else ""
            return f"accepted {self.event['event']} (seq {self.event['seq']}){after}{halted}"
        assert self.refusal is not None
        acc = self.refusal.get("acceptable") or []
        tail = f"; acceptable: {', '.join(acc)}" if acc else ""
        return (
            f"refused {self.refusal.get('event')}: {self.refusal['reason']}: {self.refusal['message']}{tail}"
        )


@dataclass
class Instance:
    """A running instance (``platform.start`` returns one)."""

    platform: Platform
    instance_id: str
    system: str
    version: int
    snapshot: Mapping[str, Any] = field(default_factory=dict)

    def offer(self, event: str, timeout_s: float = 30.0, *, expect_seq: int | None = None) -> OfferResult:
        return self.platform.offer(self.instance_id, event, timeout_s=timeout_s, expect_seq=expect_seq)

    def stop(self, timeout_s: float = 30.0) -> Mapping[str, Any]:
        return self.platform.stop(self.instance_id, timeout_s=timeout_s)

    def replay(self, until: int | None = None) -> fold.Replay:
        return self.platform.replay(self.instance_id, until)

    def trace(self) -> list[str]:
        return [e["event"] for e in self.replay().trace]


def is_complete(
    done: Mapping[str, Any], events: int, snapshot: bool, refusal: bool, *, need_snapshot: bool = True
) -> bool:
    """A command is complete when its completion record ``done`` has come and so has every
    record it counts: its events, its snapshot (when asked for) and, if refused, its refusal."""
    if events < int(done["events"]) or (need_snapshot and done["snapshot"] and not snapshot):
        return False
    return not (done["outcome"] == "REFUSED" and not refusal)


def offer_result(
    offer_id: str, events: Sequence[Mapping[str, Any]], refusal: Mapping[str, Any] | None
) -> OfferResult:
    """An offer's outcome from its command's events (in seq order) and refusal."""
    accepted = next((e for e in events if e.get("offer_id") == offer_id), None)
    if accepted is None:
        return OfferResult(offer_id, None, refusal)
    return OfferResult(offer_id, accepted, refusal, tuple(e for e in events if e is not accepted))


class _Results:
    """Reads csp.events / csp.snapshots / csp.refusals / csp.completions of the partitions we
    sent commands to, and keeps only the records of the commands being waited for (others'
    commands share the partitions: keeping theirs would grow without bound)."""

    def __init__(self, platform: Platform) -> None:
        self.p = platform
        conf = consumer_config(
            platform.bootstrap, f"csp-sdk-{uuid.uuid4().hex}", **{"enable.partition.eof": False}
        )
        self.consumer = Consumer(conf)
        self.assigned: set[int] = set()
        self.wanted: dict[tuple[int, int], str] = {}  # command position -> command id
        self.wanted_ids: set[str] = set()
        self.by_position: dict[tuple[int, int], dict[int, Mapping[str, Any]]] = {}  # seq -> event
        self.snap_by_position: dict[tuple[int, int], Mapping[str, Any]] = {}
        self.refusal_by_command: dict[str, Mapping[str, Any]] = {}
        self.completion_by_command: dict[str, Mapping[str, Any]] = {}
        self.polled_others = 0  # records read that belonged to no command waited for (dropped)

    def ensure(self, partition: int) -> None:
        if partition in self.assigned:
            return
        t = self.p.topics
        tps = [
            TopicPartition(topic, partition, self.p.fence(topic, partition))
            for topic in (t.events, t.snapshots, t.refusals, t.completions)
        ]
        self.consumer.incremental_assign(tps)
        self.assigned.add(partition)

    def want(self, part: int, offset: int, command_id: str) -> None:
        self.wanted[(part, offset)] = command_id
        self.wanted_ids.add(command_id)

    def unwant(self, part: int, offset: int, command_id: str) -> None:
        pos = (part, offset)
        self.wanted.pop(pos, None)
        self.wanted_ids.discard(command_id)
        self.by_position.pop(pos, None)
        self.snap_by_position.pop(pos, None)
        self.refusal_by_command.pop(command_id, None)
        self.completion_by_command.pop(command_id, None)

    def poll(self, timeout_s: float) -> int:
        n = 0
        t = self.p.topics
        for msg in consume_available(self.consumer, 1000, timeout_s):
            if msg.error() is not None or msg.value() is None:
                continue
            try:
                name, rec = self.p.codec.decode(msg.value() or b"")
            except Exception:
                continue
            n += 1
            topic = msg.topic()
            if name in ("CspEvent", "CspSnapshot"):
                pos = (rec.get("command_partition"), rec.get("command_offset"))
                if pos not in self.wanted:
                    self.polled_others += 1
                elif topic == t.events and name == "CspEvent":  # (instance, seq) dedup within the command
                    self.by_position.setdefault(pos, {}).setdefault(int(rec["seq"]), rec)
                elif topic == t.snapshots and name == "CspSnapshot":
                    self.snap_by_position.setdefault(pos, rec)
            elif name in ("CspRefusal", "CspCompletion"):
                cid = rec["command_id"]
                if cid not in self.wanted_ids:
                    self.polled_others += 1
                elif topic == t.refusals and name == "CspRefusal":
                    self.refusal_by_command.setdefault(cid, rec)
                elif topic == t.completions and name == "CspCompletion":
                    self.completion_by_command.setdefault(cid, rec)
        return n

    def complete(
        self, part: int, offset: int, command_id: str
    ) -> tuple[list[Mapping[str, Any]], Mapping[str, Any] | None, Mapping[str, Any] | None] | None:
        """The command's (events, snapshot, refusal) once its completion record and every record
        it counts have been read; None before."""
        done = self.completion_by_command.get(command_id)
        if done is None:
            return None
        pos = (int(done["command_partition"]), int(done["command_offset"]))
        evs = self.by_position.get(pos, {})
        snap = self.snap_by_position.get(pos)
        ref = self.refusal_by_command.get(command_id)
        if not is_complete(done, len(evs), snap is not None, ref is not None):
            return None
        return [evs[s] for s in sorted(evs)], snap, ref

    def close(self) -> None:
        self.consumer.close()


class Platform(KafkaClient):
    """Client of a running platform (Kafka + runtime workers)."""

    def __init__(
        self,
        bootstrap: str,
        *,
        codec: Codec | None = None,
        namespace: str = "",
        settings: Settings | None = None,
    ) -> None:
        super().__init__(bootstrap, codec=codec, settings=settings)
        self.topics = RuntimeTopics(namespace)
        self.store = DeploymentStore(
            bootstrap, self.codec, self.topics, compiled_dir=self.settings.resolved_data_dir() / "compiled"
        )
        self._results: _Results | None = None
        self._partitions: int | None = None
        self._quantum: QuantumClient | None = None

    @property
    def quantum(self) -> QuantumClient:
        """Quantum operations (entangle, teleport, run, error_correction): see :mod:`gateway.quantum_sdk`."""
        if self._quantum is None:
            from gateway.quantum_sdk import QuantumClient

            self._quantum = QuantumClient(
                self.bootstrap, codec=self.codec, namespace=self.topics.namespace, settings=self.settings
            )
        return self._quantum

    def ledger(self) -> LedgerClient:
        """The ledger service: signed EVM transactions over Kafka (docs/ledger.md)."""
        from processors.ledger.client import LedgerClient
        from processors.ledger.keys import keystore_for

        keys = keystore_for(self.settings.resolved_data_dir(), self.settings.ledger_keys)
        return LedgerClient(self.bootstrap, self.codec, keys)

    def close(self) -> None:
        if self._quantum is not None:
            self._quantum.close()
            self._quantum = None
        if self._results is not None:
            self._results.close()
            self._results = None
        super().close()

    # -- plumbing ---------------------------------------------------------------------

    @property
    def partitions(self) -> int:
        if self._partitions is None:
            topics = list_topics(self.bootstrap)
            if self.topics.commands not in topics:
                ensure_topics(self.bootstrap, self.topics.specs())
                topics = list_topics(self.bootstrap)
            self._partitions = topics[self.topics.commands]
        return self._partitions

    def _produce_sync(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        headers: list[tuple[str, bytes]] | None = None,
        timeout_s: float = 30.0,
    ) -> int:
        got: dict[str, Any] = {}

        def done(err: KafkaError | None, msg: Message) -> None:
            got["err"], got["offset"] = err, msg.offset()

        kwargs: dict[str, Any] = {"key": key, "value": value, "partition": partition, "on_delivery": done}
        if headers:
            kwargs["headers"] = headers
        self.producer.produce(topic, **kwargs)
        self.producer.flush(timeout_s)
        if "err" not in got:
            raise PlatformError(f"could not write to {topic}[{partition}] within {timeout_s}s")
        if got["err"] is not None:
            raise PlatformError(f"could not write to {topic}[{partition}]: {got['err']}")
        return int(got["offset"])

    def fence(self, topic: str, partition: int) -> int:
        """The partition's current end offset: reading from it sees everything written later.

        Writes nothing (it used to append a fence record; see :mod:`streams.reader`)."""
        return end_offset(self.bootstrap, topic, partition)

    @property
    def results(self) -> _Results:
        if self._results is None:
            self._results = _Results(self)
        return self._results

    def send(self, instance_id: str, kind: str, *, wait: bool = True, **fields: Any) -> tuple[int, int, str]:
        """Send one command; returns (partition, offset, command_id) (offset -1 when not waited for)."""
        command_id = fields.pop("command_id", None) or uuid.uuid4().hex
        issued_at = fields.pop("issued_at", None) or int(time.time() * 1000)
        value = self.codec.encode(
            "CspCommand", command_record(command_id, instance_id, kind, issued_at, **fields)
        )
        part = partition_for(instance_id, self.partitions)
        if not wait:
            self.producer.produce(self.topics.commands, key=instance_id.encode(), value=value, partition=part)
            self.producer.poll(0)
            return part, -1, command_id
        # a waited-for command asks the runtime for its completion record (csp.completions)
        offset = self._produce_sync(self.topics.commands, instance_id.encode(), value, part,
                                    headers=[(COMPLETE_HEADER, command_id.encode())])  # fmt: skip
        return part, offset, command_id

    def send_many(self, commands: Iterable[tuple[str, str, Mapping[str, Any]]]) -> int:
        """Bulk: (instance_id, kind, fields) commands, not waited for; returns how many were sent."""
        n = 0
        parts = self.partitions
        topic = self.topics.commands
        now = int(time.time() * 1000)
        for iid, kind, fields in commands:
            f = dict(fields)
            cid = f.pop("command_id", None) or uuid.uuid4().hex
            ts = f.pop("issued_at", None) or now
            value = self.codec.encode("CspCommand", command_record(cid, iid, kind, ts, **f))
            while True:
                try:
                    self.producer.produce(
                        topic, key=iid.encode(), value=value, partition=partition_for(iid, parts)
                    )
                    break
                except BufferError:
                    self.producer.poll(0.05)
            n += 1
        self.producer.flush(60)
        return n

    def _await(
        self, part: int, offset: int, command_id: str, timeout_s: float
    ) -> tuple[list[Mapping[str, Any]], Mapping[str, Any] | None, Mapping[str, Any] | None]:
        """Wait for the command's completion record (written by the runtime after the command's
        events, snapshot and refusal, in the same transaction) and for every record it counts."""
        res = self.results
        deadline = time.monotonic() + timeout_s
        res.want(part, offset, command_id)
        try:
            while True:
                got = res.complete(part, offset, command_id)
                if got is not None:
                    return got
                if time.monotonic() > deadline:
                    raise NoAnswer(
                        f"no answer to command {command_id} ({self.topics.commands}[{part}]@{offset}) within "
                        f"{timeout_s}s: is a runtime worker running (`csp worker`)? The command stays on the log "
                        "and is applied when a worker consumes it."
                    )
                res.poll(0.05)
        finally:
            res.unwant(part, offset, command_id)  # what came for it, and whatever comes later, is dropped

    # -- deployments -------------------------------------------------------------------

    def deploy(
        self,
        path: str | Path,
        process: str,
        *,
        name: str | None = None,
        outputs: Sequence[str] = (),
        force: bool = False,
        max_states: int = 1_000_000,
        bind: Sequence[str] = (),
    ) -> Plan:
        """Check, compile and register a system. Returns the plan (``plan.refused``: nothing deployed).

        ``bind``: ``CHANNEL=SERVICE[:REPLY_CHANNEL]`` service bindings recorded with the deployment."""
        from processors.channels.admin import bind_all, check_binds

        check_binds(bind)  # a bad binding fails before anything is deployed
        system = name or process
        self.store.refresh()
        version = (self.store.versions(system) or [0])[-1] + 1
        pl = plan(
            path,
            process,
            name=system,
            outputs=outputs,
            version=version,
            force=force,
            max_states=max_states,
            deployed_at=int(time.time() * 1000),
        )
        if pl.refused:
            return pl
        dep = pl.deployment
        for _attempt in range(5):
            self.publish_deployment(dep)
            got = self.store.record(dep.system, dep.version)
            if (
                got is not None
                and got["source_hash"] == dep.source_hash
                and got["deployed_at"] == dep.deployed_at
            ):
                if bind:
                    bind_all(self.store, dep.system, bind)
                return Plan(dep, pl.results, pl.failed, pl.force)
            # a concurrent deploy took this version first (first record wins): take the next one
            dep = replace(dep, version=self.next_version(dep.system))
        raise PlatformError(
            f"could not register {dep.system}: versions kept being taken by concurrent deploys"
        )

    def publish_deployment(self, dep: Deployment) -> int:
        """Register ``dep`` (its version as given) and create its channel topics; returns the record offset."""
        ensure_topics(
            self.bootstrap,
            self.topics.specs() + [self.topics.channel_spec(dep.system, c) for c in dep.channels],
        )
        record = deployment_record(dep, self.settings.resolved_data_dir() / "compiled")
        signed = sign_record(record, load_or_create_key(key_path(self.settings)))
        offset = publish(self.bootstrap, self.codec, self.topics.registry, signed)
        self.store.refresh()
        return offset

    # -- channels: links and service bindings (processors/channels) -----------------------

    def bind(
        self, system: str, channel: str, service: str, reply_channel: str | None = None
    ) -> ServiceBinding:
        """Bind ``system.channel`` (an output channel) to a service; results come back on ``reply_channel``."""
        from processors.channels.admin import make_binding, publish_binding

        self.store.refresh()
        b = make_binding(self.store, system, channel, service, reply_channel)
        publish_binding(self.store, b)
        return b

    def link(self, src: str, dst: str, *, instance_map: str = "same", force: bool = False) -> LinkPlan:
        """Link ``SRC.out`` to ``DST.in`` after checking the pair (``plan.refused``: not linked)."""
        from processors.channels.admin import plan_link, publish_link
        from processors.channels.routes import parse_endpoint

        pl = plan_link(
            self.store, parse_endpoint(src), parse_endpoint(dst), instance_map=instance_map, force=force
        )
        if not pl.refused:
            publish_link(self.store, pl.link)
        return pl

    def unlink(self, *route_ids: str) -> int:
        """Remove links or bindings by route id (``link:A.out->B.in``, ``bind:A.chan``)."""
        from processors.channels.admin import unlink

        return unlink(self.store, route_ids)

    def undeploy(self, system: str) -> list[int]:
        """Remove a system: its links and bindings, and its versions from new starts (running
        instances keep running). Returns the versions it had; a later deploy starts again."""
        from processors.channels.admin import undeploy

        return undeploy(self.store, system)

    def routes(self) -> Routes:
        from processors.channels.admin import routes

        return routes(self.store)

    def next_version(self, system: str) -> int:
        self.store.refresh()
        return (self.store.versions(system) or [0])[-1] + 1

    @property
    def agents(self) -> Agents:
        """The agents service: registry and collaboration (``gateway.agents``)."""
        from gateway.agents import Agents

        return Agents(self)

    def systems(self) -> dict[str, list[int]]:
        self.store.refresh()
        return self.store.systems()

    # -- instances ---------------------------------------------------------------------

    def start(
        self,
        system: str,
        *,
        version: int | None = None,
        params: Mapping[str, str] | None = None,
        instance_id: str | None = None,
        timeout_s: float = 30.0,
    ) -> Instance:
        """Start an instance and wait for it; raises :class:`PlatformError` with the refusal.

        Instance ids are Kafka keys: non-empty, no control characters, at most 200 bytes (ValueError)."""
        from processors.channels.message import instance_id_error

        iid = instance_id or f"{system}-{uuid.uuid4().hex[:12]}"
        if (err := instance_id_error(iid)) is not None:
            raise ValueError(f"instance id: {err}")
        if version is None:
            latest = self.next_version(system) - 1
            version = latest if latest > 0 else None  # None: the runtime refuses UNKNOWN_SYSTEM
        part = partition_for(iid, self.partitions)
        self.results.ensure(part)
        part, offset, cid = self.send(iid, "START", system=system, version=version, params=dict(params or {}))
        _evs, snap, ref = self._await(part, offset, cid, timeout_s)
        if ref is not None and snap is None:
            raise PlatformError(f"start of {system} refused: {ref['reason']}: {ref['message']}")
        assert snap is not None
        return Instance(self, iid, snap["system"], int(snap["version"]), snap)

    def instance(self, instance_id: str) -> Instance:
        for inst in self.instances():
            if inst.instance_id == instance_id:
                return Instance(self, inst.instance_id, inst.system, inst.version)
        raise PlatformError(f"no instance {instance_id}")

    def offer(
        self,
        instance_id: str,
        event: str,
        *,
        offer_id: str | None = None,
        timeout_s: float = 30.0,
        expect_seq: int | None = None,
    ) -> OfferResult:
        """Offer ``event`` (CSPm syntax, e.g. ``c.1.true``) to an instance; returns the event or the refusal.

        With ``expect_seq`` the offer holds only while the instance is at that seq (its last
        event's); otherwise it is refused NOT_ACCEPTABLE ("has moved on"). Returns when the
        command is complete: refused, or its last event leaves the instance settled."""
        from processors.channels.message import instance_id_error

        if (err := instance_id_error(instance_id)) is not None:
            raise ValueError(f"instance id: {err}")
        oid = offer_id or uuid.uuid4().hex
        part = partition_for(instance_id, self.partitions)
        self.results.ensure(part)
        params = None if expect_seq is None else {EXPECT_SEQ: str(expect_seq)}
        part, offset, cid = self.send(instance_id, "OFFER", event=event, offer_id=oid, params=params)
        evs, _snap, ref = self._await(part, offset, cid, timeout_s)
        return offer_result(oid, evs, ref)

    def stop(self, instance_id: str, *, timeout_s: float = 30.0) -> Mapping[str, Any]:
        """Stop an instance; returns its final snapshot (or the refusal)."""
        part = partition_for(instance_id, self.partitions)
        self.results.ensure(part)
        part, offset, cid = self.send(instance_id, "STOP")
        _evs, snap, ref = self._await(part, offset, cid, timeout_s)
        return snap if snap is not None else (ref or {})

    # -- reading the log ----------------------------------------------------------------

    def read(self, topic: str, schema: str, partitions: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """Every ``schema`` record of ``topic`` (all partitions, read concurrently) up to now."""
        from concurrent.futures import ThreadPoolExecutor

        if partitions is None:
            partitions = range(list_topics(self.bootstrap).get(topic, 0))
        parts = list(partitions)
        if len(parts) <= 1:
            return [r for p in parts for r in self._read_partition(topic, schema, p)]
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            chunks = list(pool.map(lambda p: self._read_partition(topic, schema, p), parts))
        return [r for chunk in chunks for r in chunk]

    def _read_partition(self, topic: str, schema: str, partition: int) -> list[dict[str, Any]]:
        return [rec for _o, rec in read_records(self.bootstrap, topic, partition, self.codec.decode, schema)]

    def events(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        """csp.events deduplicated on (instance, seq), in (instance, seq) order."""
        parts = None if instance_id is None else [partition_for(instance_id, self.partitions)]
        evs = self.read(self.topics.events, "CspEvent", parts)
        if instance_id is not None:
            evs = [e for e in evs if e["instance_id"] == instance_id]
        per = fold.dedupe_events(evs)
        return [dict(per[i][s]) for i in sorted(per) for s in sorted(per[i])]

    def refusals(self) -> list[dict[str, Any]]:
        seen: set[str] = set()
        out = []
        for r in self.read(self.topics.refusals, "CspRefusal"):
            if r["command_id"] not in seen:
                seen.add(r["command_id"])
                out.append(r)
        return out

    def instances(self) -> list[InstanceState]:
        """Every instance, folded from the snapshots and events so far."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=3) as pool:  # the reads mostly wait on the broker
            registry = pool.submit(self.store.refresh)
            snaps_f = pool.submit(self.read, self.topics.snapshots, "CspSnapshot")
            evs_f = pool.submit(self.read, self.topics.events, "CspEvent")
            registry.result()
            snaps, evs = snaps_f.result(), evs_f.result()
        got = fold.recover(snaps, evs, None, self.store.lookup, strict=False)
        return [got[k] for k in sorted(got)]

    def instance_index(self) -> InstanceIndex:
        """The incremental instance index of this broker and namespace (``gateway/index.py``), caught up."""
        import hashlib

        from gateway.index import InstanceIndex

        tag = hashlib.sha256(f"{self.bootstrap}|{self.topics.namespace}".encode()).hexdigest()[:16]
        path = self.settings.resolved_data_dir() / "index" / f"{self.topics.namespace or 'default'}-{tag}.sqlite"
        index = InstanceIndex(path, self.bootstrap, self.codec, self.topics)
        index.catch_up()
        return index

    def replay(self, instance_id: str, until: int | None = None) -> fold.Replay:
        from concurrent.futures import ThreadPoolExecutor

        parts = [partition_for(instance_id, self.partitions)]
        with ThreadPoolExecutor(max_workers=3) as pool:  # the reads mostly wait on the broker
            registry = pool.submit(self.store.refresh)
            snaps_f = pool.submit(self.read, self.topics.snapshots, "CspSnapshot", parts)
            evs_f = pool.submit(self.read, self.topics.events, "CspEvent", parts)
            registry.result()
            snaps = [s for s in snaps_f.result() if s["instance_id"] == instance_id]
            evs = [e for e in evs_f.result() if e["instance_id"] == instance_id]
        if not snaps and not evs:
            raise PlatformError(f"no instance {instance_id} in {self.topics.events}/{self.topics.snapshots}")
        return fold.replay(instance_id, snaps, evs, self.store.lookup, until)

    def subscribe(
        self,
        channel: str,
        *,
        system: str | None = None,
        from_beginning: bool = True,
        timeout_s: float | None = None,
        instance: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Iterate over the ChannelMessages of a channel (``"system.channel"`` or ``system=``), deduplicated.

        Ends after ``timeout_s`` seconds without a message (None: never). ``instance``: only the
        messages of that instance.
        """
        if system is None and "." in channel:
            system, channel = channel.split(".", 1)
        if system is None:
            owners = [s for s, vs in self.systems().items()
                      if channel in (self.store.lookup(s, vs[-1]) or _NO).channels]  # fmt: skip
            if len(owners) != 1:
                raise PlatformError(
                    f"channel {channel!r} is on {len(owners)} deployed systems ({', '.join(owners) or 'none'}); "
                    "give system=..."
                )
            system = owners[0]
        topic = self.topics.channel(system, channel)
        got = self.stream(topic, "ChannelMessage", from_beginning=from_beginning, timeout_s=timeout_s)
        return got if instance is None else (m for m in got if m["instance_id"] == instance)

    def follow(
        self, what: str = "events", *, from_beginning: bool = True, timeout_s: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Iterate over csp.events (deduplicated on (instance, seq)) or csp.refusals (on command id)."""
        if what == "events":
            return self.stream(
                self.topics.events, "CspEvent", from_beginning=from_beginning, timeout_s=timeout_s
            )
        if what == "refusals":
            return self.stream(self.topics.refusals, "CspRefusal", from_beginning=from_beginning,
                               timeout_s=timeout_s, dedupe=lambda r: (r["command_id"], 0))  # fmt: skip
        raise ValueError(f"follow: {what!r} is not 'events' or 'refusals'")

    def stream(
        self,
        topic: str,
        schema: str,
        *,
        from_beginning: bool = True,
        timeout_s: float | None = None,
        dedupe: Callable[[Mapping[str, Any]], tuple[str, int]] | None = None,
        start_offset: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """``schema`` records of every partition of ``topic``, deduplicated (default: on (instance, seq)).

        Ends after ``timeout_s`` seconds without a record (None: never). ``start_offset``: read every
        partition from that offset."""
        key_of = dedupe or (lambda r: (r.get("instance_id", ""), r.get("seq", -1)))
        conf = consumer_config(
            self.bootstrap, f"csp-sub-{uuid.uuid4().hex}", **{"enable.partition.eof": False}
        )
        consumer = Consumer(conf)
        try:
            nparts = list_topics(self.bootstrap).get(topic, self.partitions)
            tps = [
                TopicPartition(
                    topic, p, start_offset if start_offset is not None else 0 if from_beginning else self.fence(topic, p)
                )
                for p in range(nparts)
            ]
            consumer.assign(tps)
            seen: set[tuple[str, int]] = set()
            last = time.monotonic()
            while True:
                for msg in consume_available(consumer, 500, 0.2):
                    if msg.error() is not None or msg.value() is None:
                        continue
                    try:
                        name, rec = self.codec.decode(msg.value() or b"")
                    except Exception:
                        continue
                    if name != schema:
                        continue
                    k = key_of(rec)
                    if k in seen:
                        continue
                    seen.add(k)
                    last = time.monotonic()
                    yield rec
                if timeout_s is not None and time.monotonic() - last > timeout_s:
                    return
        finally:
            consumer.close()


class _NoDeployment:
    channels: Mapping[str, Any] = {}


_NO = _NoDeployment()
