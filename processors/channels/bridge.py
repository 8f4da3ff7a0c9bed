"""The channel bridge: turns Kafka records into offers, and output events into service requests.

One engine processor (consumer group ``csp-channels``), its inputs following the registry:

* every **input channel** topic of a deployed system: a ``ChannelMessage`` (Avro or JSON, see
  :mod:`.message`) keyed by instance id is an OFFER to that instance, command id
  ``ch:<topic>:<partition>:<offset>``; a malformed one is refused on ``csp.refusals`` with that
  command id; bytes that are no channel message go to ``<topic>.dlq``;
* every **linked output channel**: each message becomes an OFFER to the linked instance,
  command id ``ln:<route>:<instance>:<seq>`` (messages older than the link are skipped);
* every **bound channel**: each message becomes the service's request record
  (:mod:`processors.services.api`), and every result on the service's result topic an OFFER
  on the reply channel, command id ``svc:<request_id>``.

Outputs commit with the consumed offsets in one transaction. Command ids are deterministic, so
a record processed twice (a retried batch, aborted records the embedded broker shows) is
applied once by the runtime (:mod:`processors.csp.runtime.derived`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from processors.channels.fastcodec import FastChannelCodec
from processors.channels.message import MalformedMessage, NotAMessage, offer_of, parse_json
from processors.channels.routes import Link, Routes
from processors.csp.runtime.model import INPUT
from processors.csp.runtime.registry import DeploymentStore
from processors.csp.runtime.topics import RuntimeTopics
from processors.services.api import (
    BoundEvent,
    ServiceAdapter,
    ServiceBinding,
    UnknownServiceError,
    resolve_service,
)
from streams.engine import BatchContext, Codec, ProcessorBase
from streams.records import InRecord, OutRecord

CHANNEL_SCHEMA = "ChannelMessage"
log = structlog.get_logger()


@dataclass(frozen=True)
class _Input:
    system: str
    channel: str


@dataclass(frozen=True)
class _Output:
    system: str
    channel: str
    links: tuple[Link, ...]
    binding: ServiceBinding | None
    since: int  # messages older than the route are not forwarded (ms)


@dataclass(frozen=True)
class _Result:
    service: str
    bindings: tuple[ServiceBinding, ...]


Route = _Input | _Output | _Result


class ChannelBridge(ProcessorBase):
    decode_inputs = False
    raw_inputs = True  # input channels accept JSON as well as the wire format

    def __init__(
        self,
        store: DeploymentStore,
        codec: Codec,
        topics: RuntimeTopics | None = None,
        *,
        group: str | None = None,
    ) -> None:
        self.topics = topics or RuntimeTopics()
        self.name = group or (
            f"{self.topics.namespace}.csp-channels" if self.topics.namespace else "csp-channels"
        )
        self.store = store
        self.codec = codec
        self.fast = FastChannelCodec(codec)
        self.table: dict[str, Route] = {}
        self.inputs: Sequence[str] = ()
        self.adapters: dict[str, ServiceAdapter] = {}
        self.pending: dict[str, ServiceBinding] = {}  # request id -> binding (results route back)
        self.errors: list[str] = []
        self.missing: set[str] = set()  # routed topics that do not exist (yet)
        self.offers = 0
        self.requests = 0

    # -- routing table -------------------------------------------------------------------

    def adapter(self, service: str) -> ServiceAdapter:
        got = self.adapters.get(service)
        if got is None:
            got = self.adapters[service] = resolve_service(service)
        return got

    def refresh(self, existing: Iterable[str] | None = None) -> bool:
        """Re-read the registry and rebuild the routing table; True when the input topics changed.

        ``existing``: topic names that exist (topics missing from it are not subscribed yet)."""
        self.store.refresh()
        routes = Routes.fold(self.store.route_records)
        times = {r["route_id"]: int(r.get("created_at") or 0) for r in self.store.route_records}
        table: dict[str, Route] = {}
        for system, versions in self.store.systems().items():
            dep = self.store.lookup(system, versions[-1])
            if dep is None:
                continue
            for ch in dep.channels.values():
                links = tuple(routes.links_from(system, ch.name))
                binding = routes.binding_of(system, ch.name)
                topic = self.topics.channel(system, ch.name)
                if ch.role == INPUT:
                    table[topic] = _Input(system, ch.name)
                elif links or binding is not None:
                    ids = [lk.route_id for lk in links] + (
                        [] if binding is None else [f"bind:{system}.{ch.name}"]
                    )
                    table[topic] = _Output(system, ch.name, links, binding, min(times.get(i, 0) for i in ids))
        by_service: dict[str, list[ServiceBinding]] = {}
        for b in routes.bindings.values():
            by_service.setdefault(b.service, []).append(b)
        for service, bs in by_service.items():
            try:
                adapter = self.adapter(service)
            except UnknownServiceError as exc:
                self.errors.append(str(exc))
                continue
            table[adapter.result_topic] = _Result(
                service, tuple(sorted(bs, key=lambda b: (b.system, b.channel)))
            )
        self.missing = set()
        if existing is not None:
            have = set(existing)
            self.missing = {t for t in table if t not in have}
            table = {t: r for t, r in table.items() if t in have}
        self.table = table
        inputs = tuple(sorted(table))
        changed = inputs != tuple(self.inputs)
        self.inputs = inputs
        return changed

    # -- processing ----------------------------------------------------------------------

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]:
        out: list[OutRecord] = []
        append = out.append
        table = self.table
        commands = self.topics.commands
        fast = self.fast
        input_offer = fast.input_offer
        offer = fast.offer
        n = 0
        for rec in batch:
            msg = rec._msg
            route = table.get(msg.topic())
            if route is None:
                continue  # a topic no longer routed (unlinked, unbound): nothing to do
            if isinstance(route, _Input):
                got = input_offer(msg.value(), msg.key(), route.channel)
                if got is None:
                    self._input(rec, route, out, ctx)
                    continue
                iid, key, event = got
                cid = f"ch:{msg.topic()}:{msg.partition()}:{msg.offset()}"
                append(OutRecord(commands, key, None, None, offer(cid, iid, event, msg.timestamp()[1])))
                n += 1
            elif isinstance(route, _Output):
                self._output(rec, route, out, ctx)
            else:
                self._result(rec, route, out, ctx)
        self.offers += n
        return out

    def _command(self, out: list[OutRecord], iid: str, event: str, cid: str, ts: int) -> None:
        out.append(
            OutRecord(self.topics.commands, iid.encode(), None, None, self.fast.offer(cid, iid, event, ts))
        )
        self.offers += 1

    def _input(self, rec: InRecord, route: _Input, out: list[OutRecord], ctx: BatchContext) -> None:
        raw = rec.raw or b""
        cid = f"ch:{rec.topic}:{rec.partition}:{rec.offset}"
        try:
            fast = self.fast.channel_message(raw)
            if fast is not None:
                value: Mapping[str, Any] = {"instance_id": fast[0], "event": fast[3], "values": fast[4]}
            elif raw[:1] == b"{":
                value = parse_json(raw)
            else:
                name, value = self.codec.decode(raw)
                if name != CHANNEL_SCHEMA:
                    raise NotAMessage(
                        f"expected a {CHANNEL_SCHEMA} record on {rec.topic}, got a {name} record"
                    )
            offer = offer_of(value, rec.key, route.channel)
        except NotAMessage as exc:
            ctx.dead_letter(rec, str(exc))
            return
        except MalformedMessage as exc:
            self._refuse(out, exc.instance_id, cid, str(exc), rec.timestamp, route.system)
            return
        except Exception as exc:  # undecodable Avro
            ctx.dead_letter(rec, f"undecodable record: {exc}")
            return
        self._command(out, offer.instance_id, offer.event, cid, rec.timestamp)

    def _refuse(self, out: list[OutRecord], iid: str, cid: str, message: str, ts: int, system: str) -> None:
        value: dict[str, Any] = {
            "instance_id": iid, "system": system, "version": None, "command_id": cid, "offer_id": cid,
            "event": None, "reason": "MALFORMED", "message": message, "acceptable": [], "state": None,
            "timestamp": ts,
        }  # fmt: skip
        out.append(
            OutRecord(self.topics.refusals, iid.encode(), None, None, self.codec.encode("CspRefusal", value))
        )

    def _output(self, rec: InRecord, route: _Output, out: list[OutRecord], ctx: BatchContext) -> None:
        if rec.timestamp < route.since:
            return
        try:
            fast = self.fast.channel_message(rec.raw or b"")
            if fast is not None:
                msg: Mapping[str, Any] = {"instance_id": fast[0], "event": fast[3], "values": fast[4],
                                          "seq": fast[5], "timestamp": fast[6]}  # fmt: skip
            else:
                name, msg = self.codec.decode(rec.raw or b"")
                if name != CHANNEL_SCHEMA:
                    ctx.dead_letter(
                        rec, f"expected a {CHANNEL_SCHEMA} record on {rec.topic}, got a {name} record"
                    )
                    return
        except Exception as exc:
            ctx.dead_letter(rec, f"undecodable record: {exc}")
            return
        iid, seq, values = msg["instance_id"], int(msg["seq"]), list(msg["values"])
        for link in route.links:
            dst = link.destination(iid, values)
            if dst is None:
                self._refuse(out, iid, link.command_id(iid, seq),
                             f"link {link.route_id}: message has no value {link.instance_map} naming the instance",
                             rec.timestamp, link.dst_system)  # fmt: skip
                continue
            self._command(
                out, dst, ".".join([link.dst_channel, *values]), link.command_id(iid, seq), msg["timestamp"]
            )
        b = route.binding
        if b is not None:
            adapter = self.adapter(b.service)
            bound = BoundEvent(b, iid, seq, msg["event"], tuple(values))
            key, request = adapter.request(bound)
            out.append(OutRecord(adapter.request_topic, key.encode(), adapter.request_schema, request))
            self.pending[bound.request_id] = b
            self.requests += 1

    def _result(self, rec: InRecord, route: _Result, out: list[OutRecord], ctx: BatchContext) -> None:
        adapter = self.adapter(route.service)
        try:
            name, result = self.codec.decode(rec.raw or b"")
        except Exception as exc:
            ctx.dead_letter(rec, f"undecodable record: {exc}")
            return
        if name != adapter.result_schema:
            return  # not a result record (the service's own consumers dead-letter it)
        for b in self._candidates(route, adapter, result):
            reply = adapter.reply(b, result)
            if reply is not None:
                self._command(out, reply.instance_id, reply.event, reply.command_id, rec.timestamp)
                return

    def _candidates(
        self, route: _Result, adapter: ServiceAdapter, result: Mapping[str, Any]
    ) -> Sequence[ServiceBinding]:
        """The binding a result belongs to: the one that made the request when this bridge made it,
        else the bindings of the service in (system, channel) order."""
        for b in route.bindings:
            reply = adapter.reply(b, result)
            if reply is not None:
                request_id = reply.command_id.removeprefix("svc:")
                known = self.pending.pop(request_id, None)
                if known is not None:
                    return [known]
                break
        return route.bindings
