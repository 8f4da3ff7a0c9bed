"""Offers from the event loop: one producer and one results consumer shared by every request.

The SDK's :meth:`Platform.offer` is synchronous: it waits for the command's delivery report,
then polls its results consumer until the command's completion record arrives. On the API
that meant a thread-pool hop per offer, a lock serialising every offer of every client, and
four thread wake-ups per request. Here a request encodes and produces its command on the
event loop (``produce`` does not block) and awaits a future; one *pump* thread serves the
producer's delivery reports and reads ``csp.events``, ``csp.refusals`` and ``csp.completions``
of every partition, and resolves the future when the command is complete (the same rule as
the SDK's: its completion record and every event it counts have been read). Offers from any
number of clients are in flight together.

Memory stays bounded: an event is kept only if its command position is one of ours, or, while
a command of ours on that partition has no delivery report yet (its position is unknown), for
that short while. Refusals and completions are kept only for our command ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from gateway.sdk import NoAnswer, OfferResult, Platform, PlatformError, is_complete, offer_result
from processors.csp.runtime.partitioning import partition_for
from processors.csp.runtime.records import COMPLETE_HEADER, command_record
from processors.csp.runtime.step import EXPECT_SEQ
from streams.clients import consume_available, consumer_config, producer_config


@dataclass
class _Pending:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[OfferResult]
    command_id: str
    offer_id: str
    partition: int
    position: tuple[int, int] | None = None  # (partition, offset) once delivered
    events: dict[int, Mapping[str, Any]] = field(default_factory=dict)  # seq -> CspEvent
    refusal: Mapping[str, Any] | None = None
    completion: Mapping[str, Any] | None = None


class OfferPump:
    """Asynchronous offers for the API (see the module's docstring). Thread-safe; start on first use."""

    def __init__(self, platform: Platform, poll_s: float = 0.05) -> None:
        self.p = platform
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._by_id: dict[str, _Pending] = {}
        self._by_pos: dict[tuple[int, int], _Pending] = {}
        self._undelivered: dict[int, int] = {}  # partition -> commands without a delivery report
        self._early: dict[tuple[int, int], list[Mapping[str, Any]]] = {}  # events of unknown positions
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._start_lock = threading.Lock()

    # -- the request side (event loop) -------------------------------------------------

    async def offer(
        self, instance_id: str, event: str, timeout_s: float = 30.0, expect_seq: int | None = None
    ) -> OfferResult:
        """Offer ``event`` to an instance; the accepted event (and what followed) or the refusal.
        With ``expect_seq``, only while the instance is at that seq."""
        from processors.channels.message import instance_id_error

        if (err := instance_id_error(instance_id)) is not None:
            raise ValueError(f"instance id: {err}")
        if self._thread is None:
            await asyncio.get_running_loop().run_in_executor(None, self._start)
        producer = self._producer
        assert producer is not None
        oid, cid = uuid.uuid4().hex, uuid.uuid4().hex
        part = partition_for(instance_id, self.p.partitions)
        value = self.p.codec.encode(
            "CspCommand",
            command_record(cid, instance_id, "OFFER", int(time.time() * 1000), event=event, offer_id=oid,
                           params=None if expect_seq is None else {EXPECT_SEQ: str(expect_seq)}),  # fmt: skip
        )
        loop = asyncio.get_running_loop()
        pending = _Pending(loop, loop.create_future(), cid, oid, part)
        with self._lock:
            self._by_id[cid] = pending
            self._undelivered[part] = self._undelivered.get(part, 0) + 1
        topic = self.p.topics.commands

        def delivered(err: KafkaError | None, msg: Message) -> None:
            self._delivered(cid, part, err, msg.offset())

        try:
            producer.produce(topic, key=instance_id.encode(), value=value, partition=part,
                             headers=[(COMPLETE_HEADER, cid.encode())], on_delivery=delivered)  # fmt: skip
        except (BufferError, KafkaException) as exc:
            self._forget(cid, undelivered=True)
            raise PlatformError(f"could not write to {topic}[{part}]: {exc}") from None
        try:
            return await asyncio.wait_for(pending.future, timeout_s)
        except TimeoutError:
            pos = pending.position
            where = f"{topic}[{part}]@{pos[1]}" if pos else f"{topic}[{part}]"
            raise NoAnswer(
                f"no answer to command {cid} ({where}) within {timeout_s}s: is a runtime worker running "
                "(`csp worker`)? The command stays on the log and is applied when a worker consumes it."
            ) from None
        finally:
            self._forget(cid, undelivered=False)

    # -- the pump thread ---------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            bootstrap = self.p.bootstrap
            # linger 0: an interactive command leaves at once (the SDK flushes instead)
            linger: dict[str, Any] = {"linger.ms": 0}
            self._producer = Producer(producer_config(bootstrap, **linger))
            consumer = Consumer(consumer_config(bootstrap, f"csp-api-offers-{uuid.uuid4().hex}",
                                                **{"enable.partition.eof": False}))  # fmt: skip
            # Every partition from its end as the broker reports it now, resolved before any
            # command is sent. (The embedded broker reports the last batch's base offset + 1,
            # never more than the end: a few older records are read again and ignored.)
            t = self.p.topics
            tps = []
            for topic in (t.events, t.refusals, t.completions):
                for p in range(self.p.partitions):
                    _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    tps.append(TopicPartition(topic, p, max(0, int(high))))
            consumer.assign(tps)
            self._consumer = consumer
            self._thread = threading.Thread(target=self._run, name="csp-offer-pump", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        consumer, producer = self._consumer, self._producer
        assert consumer is not None and producer is not None
        t = self.p.topics
        wait = self.poll_s
        while not self._stop.is_set():
            msgs = consume_available(consumer, 1000, wait)
            producer.poll(0)  # delivery reports: positions of our commands
            touched: set[str] = set()
            with self._lock:
                for msg in msgs:
                    value = msg.value()
                    if msg.error() is not None or value is None:
                        continue
                    try:
                        name, rec = self.p.codec.decode(value)
                    except Exception:  # noqa: BLE001 - not ours to judge: the engine dead-letters
                        continue
                    topic = msg.topic()
                    if topic == t.events and name == "CspEvent":
                        self._on_event(rec, touched)
                    elif topic == t.refusals and name == "CspRefusal":
                        got = self._by_id.get(rec["command_id"])
                        if got is not None and got.refusal is None:
                            got.refusal = rec
                            touched.add(rec["command_id"])
                    elif topic == t.completions and name == "CspCompletion":
                        got = self._by_id.get(rec["command_id"])
                        if got is not None and got.completion is None:
                            got.completion = rec
                            touched.add(rec["command_id"])
                for cid in touched:
                    self._resolve_if_complete(cid)
                # a delivery report still due: come back for it soon rather than after a long poll
                wait = 0.001 if self._undelivered else self.poll_s

    def _on_event(self, rec: Mapping[str, Any], touched: set[str]) -> None:
        part, off = rec.get("command_partition"), rec.get("command_offset")
        if part is None or off is None:
            return
        pos = (int(part), int(off))
        got = self._by_pos.get(pos)
        if got is not None:
            got.events.setdefault(int(rec["seq"]), rec)  # (instance, seq) dedup
            touched.add(got.command_id)
        elif self._undelivered.get(pos[0], 0) > 0:
            self._early.setdefault(pos, []).append(rec)

    def _delivered(self, cid: str, part: int, err: KafkaError | None, offset: int | None) -> None:
        """Delivery report (pump thread, from ``producer.poll``)."""
        with self._lock:
            left = self._one_delivered(part)
            got = self._by_id.get(cid)
            if got is not None:
                if err is not None:
                    self._settle(got, exc=PlatformError(f"could not write to {self.p.topics.commands}[{part}]: {err}"))
                else:
                    pos = (part, int(offset or 0))
                    got.position = pos
                    self._by_pos[pos] = got
                    for rec in self._early.pop(pos, []):
                        got.events.setdefault(int(rec["seq"]), rec)
            if left <= 0:  # nothing of ours on this partition is unplaced: the rest is others'
                for k in [k for k in self._early if k[0] == part]:
                    del self._early[k]
            if got is not None:
                self._resolve_if_complete(cid)

    def _resolve_if_complete(self, cid: str) -> None:
        got = self._by_id.get(cid)
        if got is None or got.completion is None or got.position is None:
            return
        # the SDK's rule; snapshots are not read here (an offer's answer does not use them)
        if not is_complete(got.completion, len(got.events), False, got.refusal is not None, need_snapshot=False):
            return
        evs = [got.events[s] for s in sorted(got.events)]
        self._settle(got, result=offer_result(got.offer_id, evs, got.refusal))

    @staticmethod
    def _settle(got: _Pending, result: OfferResult | None = None, exc: Exception | None = None) -> None:
        def finish() -> None:
            if got.future.done():
                return
            if exc is not None:
                got.future.set_exception(exc)
            else:
                got.future.set_result(result)  # type: ignore[arg-type]

        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            got.loop.call_soon_threadsafe(finish)

    def _forget(self, cid: str, *, undelivered: bool) -> None:
        with self._lock:
            got = self._by_id.pop(cid, None)
            if got is not None and got.position is not None:
                self._by_pos.pop(got.position, None)
            if undelivered and got is not None:
                self._one_delivered(got.partition)

    def _one_delivered(self, part: int) -> int:
        """One command fewer awaits its delivery report on ``part`` (lock held); how many still do."""
        left = self._undelivered.get(part, 1) - 1
        if left > 0:
            self._undelivered[part] = left
        else:
            self._undelivered.pop(part, None)
        return left

    def close(self) -> None:
        """Stop the pump (an offer after this starts it again)."""
        with self._start_lock:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(5)
            if self._producer is not None:
                self._producer.flush(5)
            if self._consumer is not None:
                self._consumer.close()
            self._thread = self._producer = self._consumer = None
            self._stop.clear()
