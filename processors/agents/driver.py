"""The agent driver: LLM agents drive CSP instances, one protocol-allowed event at a time.

An instance is bound to agents by its START parameters:

* ``agents`` — a JSON list of bindings ``{"agent": NAME, "events": [PATTERN, ...],
  "on_error": [PATTERN, ...]}`` (optional ``model``, ``role``, ``prompt`` override the
  registry entry of NAME); a pattern is a channel (``accept``) or an event prefix
  (``vote.2``);
* ``task`` — the task text given to every agent's prompt.

The driver is a processor on the engine reading ``csp.snapshots``, ``csp.events``,
``agents.responses`` and ``agents.registry`` (the agents' model, role and prompt template;
on a miss it also re-reads the registry, at most every ``registry_ttl_s``). It folds each instance's ``(seq, state, status)`` and trace. When an
instance rests in a stable state (no τ/✓/output pending) and an agent owns some of its
acceptable events, the driver emits one ``AgentRequest`` in choice mode whose allowed
events are exactly those (:func:`.choice.allowed_events`) with request id
``<instance>:<seq>:<agent>`` — deterministic, so a reprocessed batch asks the same
question, which the agent processor answers from its journal.

The request names where the answer goes (``params``: ``offer_topic``, ``offer_partition``,
``seq``): for an OK answer the *agent processor* offers the chosen event itself, in the
transaction of its response, with command id ``agent:<request_id>`` and the precondition
``expect_seq`` = ``seq``. The runtime applies it only while the instance is still at that
``seq`` (it refuses it NOT_ACCEPTABLE when the instance moved on), and only an event of the
request's allowed set is ever offered (the agent processor refuses any other answer). That
saves a hop per step: the driver no longer relays answers. For an ERROR/TIMEOUT answer the
driver offers the first acceptable event matching the binding's ``on_error`` patterns (the
protocol's own ``timeout`` event), if any.

With an ``answerer`` (the agent processor of this process) the driver claims each request's
call from it and, for the answers that come while its batch is under way, puts request
(marked :func:`.processor.inline`), response and offer out in its own transaction: two hops
per step. An answer not in by then is handed over (the request goes out unmarked; the
processor answers it from the same, journaled call).

An agent's free-text ``message`` goes into the next prompts' trace beside the event it
chose. The response is committed with the offer, before the runtime can perform the event,
so the driver, which reads both, holds an instance's next request until it has seen the
response behind the instance's last agent event (normally it has, in the same or an earlier
batch), when it asked that request itself. An agent's event it did not ask for (a command id
made by hand, or a request asked before a restart) holds nothing: its note is added to the
trace if and when its response comes.

One driver per namespace: it keeps every instance it sees in memory, rebuilt on assignment
by reading ``agents.responses`` (the agents' messages) and the assigned
``csp.events``/``csp.snapshots`` partitions from the beginning.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from processors.agents import choice as ch
from processors.agents.processor import inline, offer_for
from processors.agents.prompts import TraceItem, render
from processors.agents.registry import AgentRegistry, AgentSpec
from processors.agents.topics import AgentTopics
from processors.csp.runtime.model import KIND_TAU, Deployment, Status
from processors.csp.runtime.partitioning import partition_for
from processors.csp.runtime.records import command_record
from processors.csp.runtime.registry import DeploymentStore
from processors.csp.runtime.step import EXPECT_SEQ
from processors.csp.runtime.topics import RuntimeTopics
from streams.engine import AssignContext, BatchContext, Codec, PartitionRef, ProcessorBase
from streams.reader import read_records
from streams.records import InRecord, OutRecord

COMMAND_PREFIX = "agent:"
ON_ERROR_SUFFIX = ":on_error"
# inline answers: the batch waits for its calls while one completes at least every this often,
# and no longer than INLINE_MAX_S in all
INLINE_STALL_S = 0.05
INLINE_MAX_S = 1.0


class InlineAnswerer(Protocol):
    """The agent processor of this process (:meth:`.AgentProcessor.claim_inline`)."""

    def claim_inline(self, part: int, req: Mapping[str, Any]) -> Future[dict[str, Any]] | None: ...


@dataclass(frozen=True)
class Binding:
    agent: str
    events: tuple[str, ...]
    on_error: tuple[str, ...] = ()
    model: str | None = None
    role: str | None = None
    prompt: str | None = None


def parse_bindings(raw: str | None) -> list[Binding]:
    """The ``agents`` START parameter; raises ValueError naming what is wrong."""
    if not raw:
        return []
    data = json.loads(raw)
    if not isinstance(data, list):
        raise ValueError("the agents parameter must be a JSON list of bindings")
    out: list[Binding] = []
    for i, b in enumerate(data):
        if not isinstance(b, dict) or not isinstance(b.get("agent"), str) or not b.get("events"):
            raise ValueError(f'binding {i}: needs "agent" (a name) and "events" (patterns)')
        out.append(
            Binding(
                b["agent"],
                tuple(str(p) for p in b["events"]),
                tuple(str(p) for p in b.get("on_error") or ()),
                b.get("model"),
                b.get("role"),
                b.get("prompt"),
            )
        )
    return out


def bindings_param(bindings: Sequence[Binding]) -> str:
    return json.dumps(
        [
            {k: v for k, v in (("agent", b.agent), ("events", list(b.events)), ("on_error", list(b.on_error)),
                               ("model", b.model), ("role", b.role), ("prompt", b.prompt)) if v}  # fmt: skip
            for b in bindings
        ]
    )


def request_id(instance_id: str, seq: int, agent: str) -> str:
    return f"{instance_id}:{seq}:{agent}"


def split_request_id(rid: str) -> tuple[str, int, str] | None:
    parts = rid.rsplit(":", 2)
    if len(parts) != 3:
        return None
    try:
        return parts[0], int(parts[1]), parts[2]
    except ValueError:
        return None


@dataclass
class Tracked:
    instance_id: str
    system: str = ""
    version: int = 0
    seq: int = -1
    state: int = -1
    status: str = Status.RUNNING.value
    bindings: list[Binding] = field(default_factory=list)
    task: str = ""
    bound: bool = False  # the START snapshot (with params) was seen
    trace: dict[int, TraceItem] = field(default_factory=dict)
    requested: set[tuple[int, str]] = field(default_factory=set)
    # the agent's event (seq) whose response, with the agent's message, is not seen yet
    awaiting: tuple[str, int] | None = None  # (command id, seq)
    # agents' events this driver did not ask for, without their note yet: command id -> seq
    unnoted: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Note:
    """What an agent said with an event it chose (or why it did not choose)."""

    agent: str
    message: str


def note_of(resp: Mapping[str, Any]) -> tuple[str, Note] | None:
    """The command id an answer's event carries, and the note for the trace; None: not a
    driver request (a plain chat or a service binding)."""
    rid = str(resp.get("request_id") or "")
    parts = split_request_id(rid)
    if parts is None:
        return None
    agent = parts[2]
    if resp.get("status") == "OK" and resp.get("event") is not None:
        return COMMAND_PREFIX + rid, Note(agent, resp.get("message") or "")
    why = resp.get("error") or resp.get("status")
    return COMMAND_PREFIX + rid + ON_ERROR_SUFFIX, Note(agent, f"(no answer: {why})")


def answered_seq(command_id: str) -> int | None:
    """The seq an agent command was chosen at; its event is the instance's next (seq + 1)."""
    if not command_id.startswith(COMMAND_PREFIX):
        return None
    rid = command_id[len(COMMAND_PREFIX) :].removesuffix(ON_ERROR_SUFFIX)
    parts = split_request_id(rid)
    return None if parts is None else parts[1]


@dataclass
class DriverStats:
    requests: int = 0
    offers: int = 0
    dropped: int = 0
    on_error: int = 0
    answered: int = 0  # OK answers (offered by the agent processor)
    inline: int = 0  # answered in the driver's own transaction (request, response, offer)
    handed_over: int = 0  # claimed inline, not answered in time: the agent processor answers them
    held: int = 0  # requests held until the previous answer's message was seen


class AgentDriver(ProcessorBase):
    decode_inputs = True

    def __init__(
        self,
        store: DeploymentStore,
        registry: AgentRegistry,
        codec: Codec,
        runtime: RuntimeTopics | None = None,
        topics: AgentTopics | None = None,
        *,
        default_model: str = "local",
        registry_ttl_s: float = 5.0,
        group: str | None = None,
        logger: Any = None,
        answerer: InlineAnswerer | None = None,
        inline_stall_s: float = INLINE_STALL_S,
    ) -> None:
        self.registry_ttl_s = registry_ttl_s
        self.answerer = answerer
        self.inline_stall_s = inline_stall_s
        self.runtime = runtime or RuntimeTopics()
        self.topics = topics or AgentTopics(self.runtime.namespace)
        self.name = group or (f"{self.topics.namespace}.agent-driver" if self.topics.namespace else "agent-driver")
        self.inputs = (self.runtime.snapshots, self.runtime.events, self.topics.responses, self.topics.registry)
        self.store = store
        self.registry = registry
        self.codec = codec
        self.default_model = default_model
        self.insts: dict[str, Tracked] = {}
        self.notes: dict[str, Note] = {}  # command id -> the agent's note
        self.stats = DriverStats()
        self.log = (logger or structlog.get_logger()).bind(processor=self.name)
        self._refreshed = False
        self._registry_read_at = -1e9
        self._inline: set[str] = set()  # request ids answered inline, their responses not read back yet

    # -- lookups --------------------------------------------------------------------------

    def _dep(self, system: str, version: int) -> Deployment | None:
        dep = self.store.lookup(system, version)
        if dep is None and not self._refreshed:
            self._refreshed = True
            self.store.refresh()
            dep = self.store.lookup(system, version)
        return dep

    def _agent(self, name: str) -> AgentSpec | None:
        """The registry entry of ``name``; on a miss the registry is re-read, at most once per
        ``registry_ttl_s`` (a binding may carry model/role/prompt inline and need no entry)."""
        spec = self.registry.get(name)
        now = time.monotonic()
        if spec is None and now - self._registry_read_at >= self.registry_ttl_s:
            self._registry_read_at = now
            self.registry.refresh()
            spec = self.registry.get(name)
        return spec

    # -- folding ----------------------------------------------------------------------------

    def _tracked(self, iid: str) -> Tracked:
        t = self.insts.get(iid)
        if t is None:
            t = self.insts[iid] = Tracked(iid)
        return t

    def apply_snapshot(self, rec: Mapping[str, Any]) -> Tracked:
        t = self._tracked(rec["instance_id"])
        t.system, t.version = rec["system"], int(rec["version"])
        if not t.bound:
            params = rec.get("params") or {}
            try:
                t.bindings = parse_bindings(params.get("agents"))
            except ValueError as exc:
                self.log.warning("agents.bad_binding", instance=t.instance_id, error=str(exc))
                t.bindings = []
            t.task = params.get("task", "")
            t.bound = True
        seq = int(rec["seq"])
        if seq > t.seq:
            t.seq, t.state = seq, int(rec["state"])
            t.status = rec["status"]
        elif seq == t.seq and rec["status"] != Status.RUNNING.value:
            t.status = rec["status"]
        return t

    def apply_event(self, rec: Mapping[str, Any]) -> Tracked:
        t = self._tracked(rec["instance_id"])
        t.system, t.version = rec["system"], int(rec["version"])
        seq = int(rec["seq"])
        if rec["kind"] != KIND_TAU and seq not in t.trace:
            cid = rec.get("command_id") or ""
            chosen_at = answered_seq(cid)
            note = None
            if chosen_at is not None and chosen_at + 1 == seq:  # the event an agent chose
                note = self.notes.get(cid)
                agent = next((b.agent for b in t.bindings
                              if cid.removesuffix(ON_ERROR_SUFFIX).endswith(f":{b.agent}")), None)  # fmt: skip
                if note is None and agent is not None and cid.startswith(f"{COMMAND_PREFIX}{t.instance_id}:"):
                    if (chosen_at, agent) in t.requested:
                        # this driver asked: the response, committed with the offer, is on
                        # agents.responses; the next prompt waits for the agent's message
                        t.awaiting = (cid, seq)
                    else:
                        # not asked here (a command id made by hand, or asked before a restart):
                        # nothing to wait for; a response that comes later still notes the event
                        t.unnoted[cid] = seq
            t.trace[seq] = TraceItem(
                seq, rec["event"], tuple(rec.get("payload") or ()), note.agent if note else None,
                note.message if note else None,
            )  # fmt: skip
        if seq > t.seq:
            t.seq, t.state = seq, int(rec["state_after"])
            if rec["kind"] == "TICK":
                t.status = Status.TERMINATED.value
            else:
                dep = self._dep(t.system, t.version)
                t.status = (
                    Status.DEADLOCKED.value if dep is not None and dep.is_dead(t.state) else Status.RUNNING.value
                )
        return t

    # -- processing -----------------------------------------------------------------------------

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]:
        self._refreshed = False
        out: list[OutRecord] = []
        touched: dict[str, Tracked] = {}
        last_ts: dict[str, int] = {}
        for rec in batch:
            name, value = rec.decoded()
            if rec.topic == self.runtime.snapshots and name == "CspSnapshot":
                t = self.apply_snapshot(value)
            elif rec.topic == self.runtime.events and name == "CspEvent":
                t = self.apply_event(value)
            elif rec.topic == self.topics.responses and name == "AgentResponse":
                got = self._on_response(value, rec.timestamp, out)
                if got is None:
                    continue
                t = got
            elif rec.topic == self.topics.registry and name == "AgentRegistryRecord":
                self.registry.apply(rec.offset, value)
                continue
            else:
                ctx.dead_letter(rec, f"agent driver: unexpected {name} record on {rec.topic}")
                continue
            touched[t.instance_id] = t
            last_ts[t.instance_id] = int(value.get("timestamp") or rec.timestamp)
        claimed: list[tuple[OutRecord, Future[dict[str, Any]]]] = []
        for iid, t in touched.items():
            self._ask(t, last_ts[iid], out, claimed)
        if claimed:
            self._answer_inline(claimed, last_ts, out)
        return out

    def _answer_inline(
        self, claimed: list[tuple[OutRecord, Future[dict[str, Any]]]], last_ts: Mapping[str, int],
        out: list[OutRecord],
    ) -> None:  # fmt: skip
        """Requests whose calls this process's agent processor runs: wait for the answers while
        they keep coming (at least one per ``inline_stall_s``, at most ``INLINE_MAX_S`` in all),
        then put each answered request out with its response and offer, in this transaction: a
        step is two hops (runtime → driver → runtime), not three. A request not answered by then
        goes out as usual, and the agent processor answers it from the same call."""
        pending = {fut for _rec, fut in claimed}
        deadline = time.monotonic() + INLINE_MAX_S
        while pending:
            left = deadline - time.monotonic()
            done, pending = wait(pending, timeout=min(self.inline_stall_s, max(0.0, left)),
                                 return_when=FIRST_COMPLETED)  # fmt: skip
            if not done or left <= 0:
                break
        for rec, fut in claimed:
            if not fut.done() or fut.exception() is not None:  # the processor's batch has it
                out.append(rec)
                self.stats.handed_over += 1
                continue
            assert rec.value is not None
            req, response = inline(rec.value), fut.result()
            rid = str(req["request_id"])
            out.append(dataclasses.replace(rec, value=req))
            out.append(OutRecord(self.topics.responses, rid.encode(), "AgentResponse", response))
            offer = offer_for(req, response)
            if offer is not None:
                out.append(offer)
            self.stats.inline += 1
            # the note; for a failed answer the on_error offer, in this transaction as well
            self._on_response(response, last_ts.get(str(req["instance_id"]), 0), out)
            self._inline.add(rid)  # read back later: nothing more to do

    def _ask(
        self, t: Tracked, ts: int, out: list[OutRecord], claimed: list[tuple[OutRecord, Future[dict[str, Any]]]]
    ) -> None:  # fmt: skip
        if not t.bound or not t.bindings or t.status != Status.RUNNING.value or t.seq < 0:
            return
        if t.awaiting is not None:  # the next prompt needs the last agent's message
            self.stats.held += 1
            return
        dep = self._dep(t.system, t.version)
        if dep is None:
            return
        for b in t.bindings:
            if (t.seq, b.agent) in t.requested:
                continue
            allowed = ch.allowed_events(dep, t.state, b.events)
            if not allowed:
                continue
            t.requested.add((t.seq, b.agent))
            spec = self._agent(b.agent)
            model = b.model or (spec.model if spec else None) or self.default_model
            role = b.role or (spec.role if spec else "")
            template = b.prompt or (spec.prompt if spec else None)
            rid = request_id(t.instance_id, t.seq, b.agent)
            messages = render(
                template,
                name=b.agent,
                role=role,
                task=t.task,
                system=t.system,
                instance=t.instance_id,
                events=allowed,
                trace=[t.trace[s] for s in sorted(t.trace)],
            )
            req = {
                "request_id": rid,
                "instance_id": t.instance_id,
                "command_id": COMMAND_PREFIX + rid,
                "agent": b.agent,
                "model": model,
                "messages": messages,
                "temperature": spec.temperature if spec else None,
                "max_tokens": None,
                "seed": None,
                # the agent processor offers an OK answer's event itself, at this seq only
                "params": {"mode": "choice", "allowed": json.dumps(allowed), "system": t.system,
                           "seq": str(t.seq), "offer_topic": self.runtime.commands,
                           "offer_partition": str(partition_for(t.instance_id, self.runtime.partitions))},  # fmt: skip
                "requested_at": ts,
            }
            part = partition_for(rid, self.topics.request_partitions)
            rec = OutRecord(self.topics.requests, rid.encode(), "AgentRequest", req, partition=part)
            self.stats.requests += 1
            fut = None if self.answerer is None else self.answerer.claim_inline(part, req)
            if fut is None:
                out.append(rec)
            else:
                claimed.append((rec, fut))

    def _record_note(self, resp: Mapping[str, Any]) -> tuple[str, Tracked | None] | None:
        """Keep the answer's note; returns (command id, the instance whose held request it
        releases, if any), or None for a response that is not a driver request's."""
        got = note_of(resp)
        if got is None:
            return None
        cid, note = got
        self.notes[cid] = note
        t = self.insts.get(str(resp.get("instance_id") or ""))
        if t is None:
            return cid, None
        late = t.unnoted.pop(cid, None)
        if late is not None and late in t.trace:
            t.trace[late] = dataclasses.replace(t.trace[late], agent=note.agent, message=note.message)
        if t.awaiting is None or t.awaiting[0] != cid:
            return cid, None
        seq = t.awaiting[1]
        t.awaiting = None
        item = t.trace.get(seq)
        if item is not None:
            t.trace[seq] = dataclasses.replace(item, agent=note.agent, message=note.message)
        return cid, t

    def _on_response(self, resp: Mapping[str, Any], ts: int, out: list[OutRecord]) -> Tracked | None:
        """Note the answer; offer the on_error event for a failed one. Returns an instance whose
        next request may now be asked."""
        rid = str(resp.get("request_id") or "")
        if rid in self._inline:  # this driver's own inline answer, read back: handled already
            self._inline.discard(rid)
            got = self._record_note(resp)
            return None if got is None else got[1]
        got = self._record_note(resp)
        if got is None:
            return None
        cid, released = got
        if resp["status"] == "OK" and resp.get("event") is not None:
            self.stats.answered += 1  # the agent processor offered it, with the seq precondition
            return released
        iid, seq, agent = split_request_id(resp["request_id"]) or ("", -1, "")
        t = self.insts.get(iid)
        if t is None or not t.bound or t.seq != seq or t.status != Status.RUNNING.value:
            self.stats.dropped += 1
            return released
        dep = self._dep(t.system, t.version)
        binding = next((b for b in t.bindings if b.agent == agent), None)
        if dep is None or binding is None:
            self.stats.dropped += 1
            return released
        fallback = [e for e in (dep.acceptable(t.state) if ch.is_stable(dep, t.state) else [])
                    if ch.matches(e, binding.on_error)]  # fmt: skip
        if not fallback:
            self.log.warning("agents.no_answer", request_id=resp["request_id"], error=resp.get("error"))
            self.stats.dropped += 1
            return released
        self.stats.on_error += 1
        value = command_record(cid, iid, "OFFER", int(resp.get("timestamp") or ts), event=fallback[0],
                               offer_id=resp["request_id"], params={EXPECT_SEQ: str(seq)})  # fmt: skip
        part = partition_for(iid, self.runtime.partitions)
        out.append(OutRecord(self.runtime.commands, iid.encode(), "CspCommand", value, partition=part))
        self.stats.offers += 1
        return released

    # -- recovery ---------------------------------------------------------------------------------

    def on_assign(self, partitions: Sequence[PartitionRef], ctx: AssignContext) -> None:
        if any(ref.topic == self.topics.registry for ref in partitions):
            self.registry.refresh()
        for ref in partitions:  # the agents' messages first: the events' trace items carry them
            if ref.topic == self.topics.responses:
                self._replay(ref.topic, ref.partition, "AgentResponse", self._record_note)
        for ref in partitions:
            if ref.topic == self.runtime.snapshots:
                self._replay(ref.topic, ref.partition, "CspSnapshot", self.apply_snapshot)
        for ref in partitions:
            if ref.topic == self.runtime.events:
                self._replay(ref.topic, ref.partition, "CspEvent", self.apply_event)

    def _replay(self, topic: str, partition: int, schema: str, apply: Any) -> None:
        for _o, rec in read_records(self.store.bootstrap, topic, partition, self.codec.decode, schema):
            apply(rec)

    def on_revoke(self, partitions: Sequence[PartitionRef]) -> None:
        # instances stay known (a re-assignment folds again, idempotent on seq); the requests of
        # a batch that is rolled back must be asked again when it is processed again
        for t in self.insts.values():
            t.requested.clear()
        self._inline.clear()

