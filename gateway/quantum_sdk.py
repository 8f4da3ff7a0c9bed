"""The quantum part of the SDK: submit quantum requests and wait for their results.

    with QuantumClient.connect() as q:               # or Platform(...).quantum
        pair = q.entangle("alice", "bob")            # result record (dict): fidelity, pair_id, ...
        res = q.teleport("alice", "bob", {"amplitudes": [0.707, 0.707], "phases": [0, 1.57]})
        res = q.run(open("bell.qasm").read())        # counts
        res = q.error_correction("bit_flip", 0.1)    # logical vs physical error rate

Requests go to ``quantum.requests`` keyed by request id; results are read from every partition of
``quantum.results`` from fences appended when the client starts, and matched by request id.
A ``quantum`` worker must be running (``csp quantum worker``, ``csp run``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from gateway.client_base import KafkaClient
from infra.settings import Settings
from processors.quantum.requests import DEFAULT_SHOTS, request_record
from processors.quantum.topics import QuantumTopics
from schemas.codec import Codec
from streams.admin import ensure_topics, list_topics
from streams.clients import consume_available, consumer_config


class QuantumTimeout(RuntimeError):
    """No result arrived in time (is a quantum worker running?)."""


class QuantumClient(KafkaClient):
    def __init__(
        self,
        bootstrap: str,
        *,
        codec: Codec | None = None,
        namespace: str = "",
        settings: Settings | None = None,
    ) -> None:
        super().__init__(bootstrap, codec=codec, settings=settings)
        self.topics = QuantumTopics(namespace)
        self._consumer: Consumer | None = None
        self._results: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        super().close()

    # -- plumbing ---------------------------------------------------------------------

    def listen(self) -> Consumer:
        """Start reading results from the results topic's current end, before requests are sent.

        The end offsets come from the fetch path (``streams.reader.end_offset``): nothing is
        written to the topic, which users consume."""
        if self._consumer is None:
            from streams.reader import end_offset

            topics = list_topics(self.bootstrap)
            if self.topics.results not in topics or self.topics.requests not in topics:
                ensure_topics(self.bootstrap, self.topics.specs())
                topics = list_topics(self.bootstrap)
            n = topics[self.topics.results]
            offsets = {p: end_offset(self.bootstrap, self.topics.results, p) for p in range(n)}
            c = Consumer(consumer_config(self.bootstrap, f"quantum-client-{uuid.uuid4().hex}"))
            c.assign([TopicPartition(self.topics.results, p, o) for p, o in offsets.items()])
            self._consumer = c
        return self._consumer

    def submit(self, record: Mapping[str, Any]) -> str:
        """Send one request record (see :func:`processors.quantum.requests.request_record`); returns its id."""
        self.listen()
        value = dict(record)
        if not value.get("requested_at"):
            value["requested_at"] = int(time.time() * 1000)
        rid = str(value["request_id"])
        self.producer.produce(self.topics.requests, self.codec.encode("QuantumRequest", value), rid.encode())
        self.producer.poll(0)
        return rid

    def submit_many(self, records: Iterable[Mapping[str, Any]]) -> list[str]:
        ids = [self.submit(r) for r in records]
        self.producer.flush(30)
        return ids

    def poll(self, timeout_s: float = 0.2) -> int:
        """Read results that arrived; returns how many new ones."""
        c = self.listen()
        got = 0
        for msg in consume_available(c, 1000, timeout_s):
            if msg.error() is not None or not msg.value():
                continue
            try:
                name, rec = self.codec.decode(msg.value() or b"")
            except Exception:
                continue
            if name == "QuantumResult" and rec["request_id"] not in self._results:
                self._results[rec["request_id"]] = rec
                got += 1
        return got

    def wait(self, request_ids: Sequence[str], timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """The results of ``request_ids`` (in that order)."""
        self.producer.flush(30)
        deadline = time.monotonic() + timeout_s
        while any(r not in self._results for r in request_ids):
            if time.monotonic() > deadline:
                missing = [r for r in request_ids if r not in self._results]
                raise QuantumTimeout(
                    f"no result for {len(missing)} request(s) within {timeout_s}s (first: {missing[0]}); "
                    "is a quantum worker running (csp quantum worker / csp run)?"
                )
            self.poll(0.2)
        return [self._results[r] for r in request_ids]

    def call(self, record: Mapping[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
        return self.wait([self.submit(record)], timeout_s)[0]

    # -- operations -------------------------------------------------------------------

    def entangle(
        self, *agents: str, noise: Mapping[str, float] | None = None, shots: int = DEFAULT_SHOTS,
        timeout_s: float = 60.0,
    ) -> dict[str, Any]:  # fmt: skip
        """A Bell pair (2 agents) or GHZ state (more) between the agents; records a pair for teleport."""
        return self.call(request_record("entangle", agents=agents, noise=noise, shots=shots), timeout_s)

    def teleport(
        self, sender: str, receiver: str, state: Mapping[str, Sequence[float]], *,
        noise: Mapping[str, float] | None = None, shots: int = DEFAULT_SHOTS, timeout_s: float = 60.0,
    ) -> dict[str, Any]:  # fmt: skip
        """Teleport ``{"amplitudes": [a0, a1], "phases": [p0, p1]}`` over a recorded pair (consumed)."""
        rec = request_record("teleport", agents=(sender, receiver), state=state, noise=noise, shots=shots)
        return self.call(rec, timeout_s)

    def run(
        self, qasm: str, *, shots: int = DEFAULT_SHOTS, noise: Mapping[str, float] | None = None,
        statevector: bool = False, density_matrix: bool = False, timeout_s: float = 60.0,
    ) -> dict[str, Any]:  # fmt: skip
        """Run an OpenQASM 2 or 3 program: counts (and optionally the statevector / density matrix)."""
        version = "3.0" if "OPENQASM 3" in qasm else "2.0"
        rec = request_record("circuit", circuit=qasm, qasm_version=version, shots=shots, noise=noise,
                             return_statevector=statevector, return_density_matrix=density_matrix)  # fmt: skip
        return self.call(rec, timeout_s)

    def error_correction(
        self, code: str, error_rate: float, *, noise: Mapping[str, float] | None = None,
        shots: int = DEFAULT_SHOTS, timeout_s: float = 60.0,
    ) -> dict[str, Any]:  # fmt: skip
        """The 3-qubit ``bit_flip`` / ``phase_flip`` code under ``error_rate``: logical vs physical rates."""
        rec = request_record("error_correction", code=code, error_rate=error_rate, noise=noise, shots=shots)
        return self.call(rec, timeout_s)
