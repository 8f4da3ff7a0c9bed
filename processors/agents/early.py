"""Early answers: read ``agents.requests`` ahead of the engine and start each model call at once.

The engine hands the agent processor one batch at a time and commits it before it polls
again, so a request that arrives while a batch's model calls (or its commit) are under way
waits for them: with a few protocol instances in flight that was the main part of a step's
added latency. An :class:`EarlyReader` reads the processor's assigned request partitions
on its own consumer (``read_uncommitted``: it sees a request as soon as the driver produced
it, before that transaction commits) and *claims* each request: the processor starts its
model call, and records the result in the journal before anything uses it, exactly as for
a call started from a batch. When the engine's batch then brings the request, its answer
is ready or under way; nothing is called twice (a claim of a request already answered or
in flight returns that answer).

A request read early whose transaction is then aborted is still answered and journaled;
the driver asks again with the same request id (its ids are deterministic), which the
journal answers. The reader never commits offsets and never produces anything.

Assignment changes are handed to the reader's own thread (a consumer is not used from two
threads); with no partitions left the thread closes its consumer and ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.clients import consume_available, consumer_config

# the agents' consumers (this reader and the engines of processors.agents.worker): a protocol
# step crosses several hops; their broker-side fetch wait is the platform's
# (CSP_KAFKA_FETCH_WAIT_MS, 10 ms), and a batch is returned when full or after POLL_TIMEOUT_S,
# so that a lone record moves on at once
POLL_TIMEOUT_S = 0.01
MAX_RECORDS = 500

Claim = Callable[[int, Mapping[str, Any]], None]
Decode = Callable[[bytes], tuple[str, dict[str, Any]]]


class EarlyReader:
    def __init__(self, bootstrap: str, topic: str, group_id: str, decode: Decode, claim: Claim,
                 logger: Any = None) -> None:  # fmt: skip
        self.bootstrap = bootstrap
        self.topic = topic
        self.group_id = group_id
        self.decode = decode
        self.claim = claim
        self.log = (logger or structlog.get_logger()).bind(early_reader=topic)
        self.claimed = 0
        self._lock = threading.Lock()
        self._wanted: dict[int, int] = {}  # partition -> offset to start from
        self._changed = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def add(self, partitions: Mapping[int, int]) -> None:
        """Read these partitions too, each from the given offset (negative: the beginning)."""
        with self._lock:
            self._wanted.update(partitions)
            self._changed = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=f"early-{self.topic}", daemon=True)
                self._thread.start()

    def remove(self, partitions: set[int]) -> None:
        with self._lock:
            for p in partitions:
                self._wanted.pop(p, None)
            self._changed = True

    def stop(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            self._wanted.clear()
            self._changed = True
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        conf = consumer_config(self.bootstrap, self.group_id, read_committed=False)
        consumer = Consumer(conf)
        assigned: set[int] = set()
        try:
            while True:
                with self._lock:
                    if self._changed:
                        self._changed = False
                        wanted = dict(self._wanted)
                        if not wanted:
                            self._thread = None  # a later add() starts a new thread
                            return
                        gone = assigned - set(wanted)
                        new = {p: o for p, o in wanted.items() if p not in assigned}
                        if gone:
                            consumer.incremental_unassign([TopicPartition(self.topic, p) for p in sorted(gone)])
                        if new:
                            consumer.incremental_assign(
                                [TopicPartition(self.topic, p, o if o >= 0 else OFFSET_BEGINNING)
                                 for p, o in sorted(new.items())]  # fmt: skip
                            )
                        assigned = set(wanted)
                for msg in consume_available(consumer, MAX_RECORDS, POLL_TIMEOUT_S):
                    part, value = msg.partition(), msg.value()
                    if msg.error() is None and value is not None and part is not None and part in assigned:
                        self._offer(part, value)
        except Exception as exc:  # the engine answers everything anyway: only the head start is lost
            self.log.warning("agents.early_reader_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            consumer.close()

    def _offer(self, partition: int, value: bytes) -> None:
        try:
            name, req = self.decode(value)
        except Exception:
            return  # the engine dead-letters it
        if name != "AgentRequest" or not req.get("request_id"):
            return
        self.claimed += 1
        self.claim(partition, req)
