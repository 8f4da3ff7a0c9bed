"""The agent processor: ``agents.requests`` → model → ``agents.responses``, on the engine.

Exactly-once without calling a model twice
------------------------------------------
The engine commits a batch's outputs and its input offsets in one transaction. A model
call is a side effect outside that transaction: if the worker dies (or the transaction
aborts) after the call, the batch is processed again. So the processor *records each
result before using it*:

1. for every request of the batch without a recorded result or a call under way, the
   model is called (concurrently, ``concurrency`` at a time);
2. each result is written to ``agents.journal`` as soon as it arrives — same partition
   number as its request, key ``request_id``, an ``AgentResponse`` record — by a separate
   idempotent producer **outside** the transaction, and is used only once the broker
   acknowledged it (a failed write fails the batch);
3. only then are the responses produced on ``agents.responses`` in the batch transaction.

Calls start early: an :class:`~processors.agents.early.EarlyReader` reads the assigned
request partitions ahead of the engine and starts each request's call as soon as the
request is produced, so a request that arrives while a batch is under way does not wait
for that batch. The batch then takes the answer recorded (or being recorded) by then. A
revoked partition's calls under way are journaled before the revocation completes. (Not
when the driver of this process answers inline, :meth:`AgentProcessor.claim_inline`: it
starts its requests' calls itself.)

On assignment (start, rebalance, retried batch) the processor reads the journal partitions
of its request partitions to their end and answers any request found there from the
journal: a request answered before a crash — whether or not its response committed — is
never sent to the model again. A request that appears twice on ``agents.requests`` gets the
same recorded response twice; consumers deduplicate responses on ``request_id``.

Request modes (``params["mode"]``):

* ``chat`` (default): one call; the content is the answer.
* ``choice``: protocol-constrained choice among ``params["allowed"]`` (a JSON list of
  events). The model must answer with the :mod:`.choice` JSON schema; an answer that is
  not JSON or names an event outside the list is rejected and asked again (with the
  reason) up to ``choice_attempts`` times, then refused: an ERROR response whose ``event``
  is null. Only an allowed event is ever put in ``event``.

  A choice request may name where the chosen event goes: ``params["offer_topic"]`` (the
  runtime's commands topic), ``params["offer_partition"]`` and ``params["seq"]`` (the
  instance's seq the choice was asked at). For an OK answer the processor then produces,
  in the same transaction as the response, an ``OFFER`` of the event to the instance
  (``request["instance_id"]``) with command id ``request["command_id"]``, offer id the
  request id, and the precondition ``expect_seq`` = ``seq``: the runtime applies it only
  while the instance is still there. Replaying a recorded answer produces the same offer,
  which the runtime deduplicates on its command id.

Timeouts, 429 and 5xx are retried with backoff within a budget (:mod:`.llm`); then the
response is ERROR or TIMEOUT with the reason. Usage (summed over calls) and latency are
recorded on every response.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import openai
import structlog
from confluent_kafka import KafkaError, Message, Producer

from processors.agents import choice as ch
from processors.agents.early import EarlyReader
from processors.agents.llm import ERROR, OK, CallResult, RetryPolicy, Usage, call_model
from processors.agents.topics import AgentTopics
from processors.csp.runtime.records import command_record
from processors.csp.runtime.step import EXPECT_SEQ
from streams.clients import producer_config
from streams.engine import AssignContext, BatchContext, Codec, PartitionRef, ProcessorBase
from streams.reader import read_records
from streams.records import InRecord, OutRecord

REQUEST_SCHEMA = "AgentRequest"
RESPONSE_SCHEMA = "AgentResponse"
DEFAULT_CHOICE_ATTEMPTS = 3
JOURNAL_TIMEOUT_S = 30.0
# the early reader starts no more calls while this many per call thread are under way
EARLY_LIMIT_PER_THREAD = 4
# params[ANSWERED_BY] = INLINE: a request the driver answered in its own transaction (with the
# response and the offer); the processor passes it by if its journal holds the answer (the
# driver's claim records it before the transaction), and answers it otherwise
ANSWERED_BY = "answered_by"
INLINE = "driver"


class JournalError(RuntimeError):
    """A result could not be recorded; it is not used (the batch fails and is retried)."""


@dataclass
class AgentStats:
    requests: int = 0
    model_calls: int = 0
    replayed: int = 0
    refused: int = 0
    early: int = 0  # calls started by the early reader
    inline: int = 0  # calls claimed by the driver of this process (answered in its transaction)
    passed: int = 0  # requests the driver answered inline, passed by here
    unverified: int = 0  # marked as answered inline without a recorded answer: answered here
    offered: int = 0  # chosen events offered to the runtime


def _now_ms() -> int:
    return int(time.time() * 1000)


def offer_target_error(req: Mapping[str, Any]) -> str | None:
    """What is wrong with a request's offer target (``offer_topic`` ...); None: fine or none."""
    params: Mapping[str, str] = req.get("params") or {}
    if "offer_topic" not in params:
        return None
    if params.get("mode") != "choice":
        return "params.offer_topic needs a choice request (params.mode = choice)"
    for key in ("offer_partition", "seq"):
        text = params.get(key) or ""
        if not (text.isascii() and text.isdigit()):
            return f"params.{key} must be a non-negative integer with params.offer_topic, got {text!r}"
    if not req.get("instance_id") or not req.get("command_id"):
        return "params.offer_topic needs the request's instance_id and command_id"
    return None


def inline(req: Mapping[str, Any]) -> dict[str, Any]:
    """``req`` marked as answered in the driver's transaction (the processor passes it by)."""
    return {**req, "params": {**(req.get("params") or {}), ANSWERED_BY: INLINE}}


def is_inline(req: Mapping[str, Any]) -> bool:
    return (req.get("params") or {}).get(ANSWERED_BY) == INLINE


def offer_for(req: Mapping[str, Any], response: Mapping[str, Any]) -> OutRecord | None:
    """The OFFER of an OK choice's event to the instance the request names, at its seq only."""
    params: Mapping[str, str] = req.get("params") or {}
    topic = params.get("offer_topic")
    if not topic or response.get("status") != OK or response.get("event") is None:
        return None
    iid = str(req["instance_id"])
    value = command_record(str(req["command_id"]), iid, "OFFER", int(response["timestamp"]),
                           event=str(response["event"]), offer_id=str(req["request_id"]),
                           params={EXPECT_SEQ: params["seq"]})  # fmt: skip
    return OutRecord(topic, iid.encode(), "CspCommand", value, partition=int(params["offer_partition"]))


class AgentProcessor(ProcessorBase):
    decode_inputs = True

    def __init__(
        self,
        bootstrap: str,
        codec: Codec,
        client_factory: Callable[[], openai.OpenAI],
        topics: AgentTopics | None = None,
        *,
        policy: RetryPolicy | None = None,
        default_model: str = "local",
        choice_attempts: int = DEFAULT_CHOICE_ATTEMPTS,
        concurrency: int = 8,
        group: str | None = None,
        logger: Any = None,
        early: bool = True,
    ) -> None:
        self.topics = topics or AgentTopics()
        self.name = group or (f"{self.topics.namespace}.agents" if self.topics.namespace else "agents")
        self.inputs = (self.topics.requests,)
        self.bootstrap = bootstrap
        self.codec = codec
        self.client_factory = client_factory
        self.policy = policy or RetryPolicy()
        self.default_model = default_model
        self.choice_attempts = max(1, choice_attempts)
        self.concurrency = max(1, concurrency)
        self.recorded: dict[int, dict[str, dict[str, Any]]] = {}
        self.stats = AgentStats()
        self.log = (logger or structlog.get_logger()).bind(processor=self.name)
        self._clients = threading.local()  # one client (and connection pool) per call thread
        self._journal: Producer | None = None
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="agent-call")
        self.early_start = early
        self._early: EarlyReader | None = None
        self._lock = threading.Lock()  # recorded, _inflight, _early: the call threads share them
        self._closed = threading.Event()
        self._inflight: dict[str, tuple[int, Future[dict[str, Any]]]] = {}
        # request id -> partition: started early, not yet through a batch (not "replayed" then)
        self._early_answered: dict[str, int] = {}

    # -- state ----------------------------------------------------------------------------

    @property
    def client(self) -> openai.OpenAI:
        """This thread's client: the call threads do not share one connection pool, whose lock
        they would queue on (measured: a quarter of the worker's samples waited there)."""
        client: openai.OpenAI | None = getattr(self._clients, "client", None)
        if client is None:
            client = self._clients.client = self.client_factory()
        return client

    def on_assign(self, partitions: Sequence[PartitionRef], ctx: AssignContext) -> None:
        early: dict[int, int] = {}
        for ref in partitions:
            if ref.topic != self.topics.requests:
                continue
            got: dict[str, dict[str, Any]] = {}
            for _off, rec in read_records(
                self.bootstrap, self.topics.journal, ref.partition, self.codec.decode, RESPONSE_SCHEMA
            ):
                got.setdefault(rec["request_id"], rec)  # first recorded result wins
            with self._lock:
                self.recorded[ref.partition] = got
            early[ref.partition] = ctx.committed.get(ref, -1)
        if early and self.early_start:
            if self._early is None:
                self._early = EarlyReader(self.bootstrap, self.topics.requests, f"{self.name}.early",
                                          self.codec.decode, self._claim_early, self.log)  # fmt: skip
            self._early.add(early)

    def on_revoke(self, partitions: Sequence[PartitionRef]) -> None:
        parts = {ref.partition for ref in partitions if ref.topic == self.topics.requests}
        if not parts:
            return
        if self._early is not None:
            self._early.remove(parts)
        with self._lock:  # no new calls for these partitions from here on
            for p in parts:
                self.recorded.pop(p, None)
            for rid in [r for r, p in self._early_answered.items() if p in parts]:
                del self._early_answered[rid]
            under_way = [fut for p, fut in self._inflight.values() if p in parts]
        # calls under way are journaled before the next owner reads the journal: none is repeated
        wait(under_way, timeout=self.policy.budget_s + 30)

    def close(self) -> None:
        self._closed.set()
        if self._early is not None:
            self._early.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._journal is not None:
            self._journal.flush(10)
            self._journal = None

    # -- processing -------------------------------------------------------------------------

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]:
        todo: dict[str, tuple[int, Mapping[str, Any]]] = {}
        order: list[tuple[int, str, Mapping[str, Any]]] = []
        for rec in batch:
            name, value = rec.decoded()
            if name != REQUEST_SCHEMA:
                ctx.dead_letter(rec, f"expected an {REQUEST_SCHEMA} record on {rec.topic}, got {name}")
                continue
            rid = value.get("request_id") or ""
            if not rid:
                ctx.dead_letter(rec, "AgentRequest with an empty request_id")
                continue
            if (problem := offer_target_error(value)) is not None:
                ctx.dead_letter(rec, f"AgentRequest {rid}: {problem}")
                continue
            part = rec.partition
            if is_inline(value):
                with self._lock:
                    # the driver's claim journaled the answer before its transaction: a marked
                    # request without one was not answered there (a record made by hand)
                    answered = rid in self.recorded.get(part, {})
                    if answered:
                        self._early_answered.pop(rid, None)
                if answered:  # responded and offered in the driver's transaction
                    self.stats.passed += 1
                    continue
                self.stats.unverified += 1
                self.log.warning("agents.unverified_inline", request_id=rid,
                                 detail=f"params.{ANSWERED_BY} = {INLINE} without a recorded answer: answered here")  # fmt: skip
            with self._lock:
                replay = rid in self.recorded.setdefault(part, {}) and rid not in self._early_answered
            if replay:
                self.stats.replayed += 1
                self.log.info("agents.replayed", request_id=rid)
            if rid not in todo:
                todo[rid] = (part, value)
            order.append((part, rid, value))
        self.stats.requests += len(order)
        answers = self._answers(todo)
        out: list[OutRecord] = []
        for _part, rid, req in order:
            response = answers[rid]
            out.append(OutRecord(self.topics.responses, rid.encode(), RESPONSE_SCHEMA, response))
            offer = offer_for(req, response)
            if offer is not None:
                out.append(offer)
                self.stats.offered += 1
        return out

    def _answers(self, todo: Mapping[str, tuple[int, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
        """The recorded answer of every request: from the journal, from a call the early reader
        started, or from a call started now. Fails (after waiting for all) if any failed."""
        futures = {rid: self._claim(part, req) for rid, (part, req) in todo.items()}
        answers: dict[str, dict[str, Any]] = {}
        error: BaseException | None = None
        for rid, fut in futures.items():
            try:
                answers[rid] = fut.result()
            except BaseException as exc:  # wait for the others (each is journaled); fail the batch after
                error = error or exc
        with self._lock:
            for rid in futures:
                self._early_answered.pop(rid, None)
        if error is not None:
            raise error
        return answers

    def claim_inline(self, part: int, req: Mapping[str, Any]) -> Future[dict[str, Any]] | None:
        """For the driver of this process: the (recorded) answer to ``req``, to go out in the
        driver's own transaction with its request (marked :func:`inline`), or in the processor's
        when the driver does not wait for it. None: ``part`` is not this processor's (the
        request takes the usual way)."""
        if offer_target_error(req) is not None:
            return None
        try:
            return self._claim(part, req, source="inline")
        except LookupError:
            return None

    def _claim(self, part: int, req: Mapping[str, Any], source: str | None = None) -> Future[dict[str, Any]]:
        """The answer to ``req`` (partition ``part``): recorded, under way, or a call started now
        (``source``: by the early reader or the driver). Raises LookupError when ``part`` is not
        assigned."""
        rid = str(req["request_id"])
        with self._lock:
            known = self.recorded.get(part)
            if known is None:
                raise LookupError(f"{self.topics.requests}[{part}] is not assigned to this processor")
            if rid in known:
                done: Future[dict[str, Any]] = Future()
                done.set_result(known[rid])
                return done
            entry = self._inflight.get(rid)
            if entry is not None:
                return entry[1]
            fut = self._pool.submit(self._answer_and_record, part, req)
            self._inflight[rid] = (part, fut)
            if source is not None:  # the batch that meets the request takes it: not a replay
                self._early_answered[rid] = part
                if source == "inline":
                    self.stats.inline += 1
                else:
                    self.stats.early += 1
            return fut

    def _claim_early(self, part: int, req: Mapping[str, Any]) -> None:
        if offer_target_error(req) is not None or is_inline(req):
            return  # the engine dead-letters it / the driver answered it
        if len(self._inflight) >= EARLY_LIMIT_PER_THREAD * self.concurrency:
            return  # a backlog: the batches claim these themselves (memory stays bounded)
        with contextlib.suppress(LookupError):  # revoked meanwhile
            self._claim(part, req, source="early")

    def _answer_and_record(self, part: int, req: Mapping[str, Any]) -> dict[str, Any]:
        """Call the model, then record the result in the journal; only then may it be used."""
        rid = str(req["request_id"])
        try:
            response = self.answer(req)
            self._journal_write(part, rid, response)
            with self._lock:
                known = self.recorded.get(part)
                if known is not None:
                    response = known.setdefault(rid, response)
            return response
        finally:
            with self._lock:
                self._inflight.pop(rid, None)

    def _journal_write(self, part: int, rid: str, response: Mapping[str, Any]) -> None:
        journal = self._journal_producer()
        acked = threading.Event()
        failure: list[str] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failure.append(str(err))
            acked.set()

        journal.produce(self.topics.journal, key=rid.encode(), value=self.codec.encode(RESPONSE_SCHEMA, response),
                        partition=part, on_delivery=delivered)  # fmt: skip
        acked.wait(JOURNAL_TIMEOUT_S)  # the journal thread serves the delivery reports
        if failure or not acked.is_set():
            why = failure[0] if failure else f"not acknowledged within {JOURNAL_TIMEOUT_S:g}s"
            raise JournalError(f"could not record the answer to {rid} on {self.topics.journal}: {why}")

    def _journal_producer(self) -> Producer:
        with self._lock:
            if self._journal is None:
                # each journal record is sent at once: no linger
                linger: dict[str, Any] = {"linger.ms": 0}
                self._journal = Producer(producer_config(self.bootstrap, **linger))
                threading.Thread(target=self._serve_journal, args=(self._journal,), name="agent-journal",
                                 daemon=True).start()  # fmt: skip
            return self._journal

    def _serve_journal(self, producer: Producer) -> None:
        """Delivery reports of the journal records, as they come (the call threads wait on them)."""
        while not self._closed.is_set():
            producer.poll(0.05)

    # -- one request --------------------------------------------------------------------------

    def answer(self, req: Mapping[str, Any]) -> dict[str, Any]:
        """The response to one request (calls the model; never raises for model failures)."""
        params: Mapping[str, str] = req.get("params") or {}
        model = req.get("model") or self.default_model
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in req.get("messages") or []]
        if params.get("mode") == "choice":
            return self._choose(req, model, messages, params)
        result = self._call(req, model, messages, None)
        return self._response(req, model, result, result.usage, result.latency_ms, result.attempts)

    def _call(
        self, req: Mapping[str, Any], model: str, messages: list[dict[str, str]], fmt: Mapping[str, Any] | None
    ) -> CallResult:
        self.stats.model_calls += 1
        return call_model(
            self.client,
            model,
            messages,
            policy=self.policy,
            response_format=fmt,
            temperature=req.get("temperature"),
            max_tokens=req.get("max_tokens"),
            seed=req.get("seed"),
        )

    def _choose(
        self, req: Mapping[str, Any], model: str, messages: list[dict[str, str]], params: Mapping[str, str]
    ) -> dict[str, Any]:
        try:
            allowed = [str(e) for e in json.loads(params.get("allowed") or "[]")]
        except ValueError:
            allowed = []
        base = self._response(req, model, CallResult(ERROR), None, 0, 0)
        if not allowed:
            return base | {"error": "choice request without allowed events (params.allowed)"}
        fmt = ch.response_format(allowed)
        usage = Usage()
        latency = attempts = 0
        reasons: list[str] = []
        for _round in range(self.choice_attempts):
            result = self._call(req, model, messages, fmt)
            usage = usage + (result.usage or Usage())
            latency += result.latency_ms
            attempts += result.attempts
            if result.status != OK:
                return self._response(req, model, result, usage, latency, attempts)
            parsed = ch.parse_choice(result.content, allowed)
            if isinstance(parsed, ch.Choice):
                return self._response(req, model, result, usage, latency, attempts) | {
                    "event": parsed.event,
                    "message": parsed.message,
                }
            reasons.append(f"{parsed.reason}: {parsed.detail}")
            self.log.warning("agents.choice_rejected", request_id=req["request_id"], reason=parsed.detail)
            messages = [
                *messages,
                {"role": "assistant", "content": result.content or ""},
                {"role": "user", "content": ch.correction(parsed, allowed)},
            ]
            last = result
        self.stats.refused += 1
        return self._response(req, model, last, usage, latency, attempts) | {
            "status": ERROR,
            "error": f"refused: {len(reasons)} answers outside the protocol: " + " | ".join(reasons),
        }

    def _response(
        self,
        req: Mapping[str, Any],
        model: str,
        result: CallResult,
        usage: Usage | None,
        latency_ms: int,
        attempts: int,
    ) -> dict[str, Any]:
        return {
            "request_id": req["request_id"],
            "instance_id": req.get("instance_id"),
            "model": model,
            "status": result.status,
            "content": result.content,
            "finish_reason": result.finish_reason,
            "usage": None if usage is None else usage.as_record(),
            "latency_ms": latency_ms,
            "error": result.error,
            "timestamp": _now_ms(),
            "agent": req.get("agent"),
            "event": None,
            "attempts": attempts,
            "message": None,
        }
