"""The quantum processor: ``quantum.requests`` -> qiskit-aer -> ``quantum.results``, on the engine.

For each batch it validates every request (:mod:`.spec`), simulates all of them in as few
``AerSimulator.run`` calls as possible (:mod:`.simulate`), then applies them to the pair
registry in input order (an entangle records a pair; a teleport consumes one, or is refused)
and emits one ``QuantumResult`` per request, keyed by ``request_id``, in the batch's
transaction (exactly-once). A request id already answered is not answered again.

A record that is not a ``QuantumRequest`` goes to ``quantum.requests.dlq``; a request that is
wrong (bad QASM, limits, non-normalised state, unknown agent, no pair) gets a result with
``status`` ERROR/REFUSED, an ``error_code`` and a message. Nothing stops the processor.

Recovery (``on_assign``): the registry is a fold over ``quantum.results`` (all partitions),
ignoring results of requests at or past the committed offset of their input partition
(aborted, or about to be processed again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from processors.quantum.pairs import PairRegistry, pair_id_for
from processors.quantum.simulate import Outcome, Simulator, failed
from processors.quantum.spec import Entangle, Job, Limits, RequestError, Teleport, parse_request
from processors.quantum.topics import QuantumTopics
from streams.engine import AssignContext, BatchContext, Codec, PartitionRef, ProcessorBase
from streams.reader import read_to_end
from streams.records import InRecord, OutRecord

REQUEST_SCHEMA = "QuantumRequest"
RESULT_SCHEMA = "QuantumResult"
DEFAULT_THRESHOLD = 0.85
SMALL_DENSITY_QUBITS = 3  # entangle results carry the density matrix up to this size


@dataclass
class QuantumStats:
    requests: int = 0
    results: int = 0
    duplicates: int = 0
    simulator_calls: int = 0
    recovered_pairs: int = 0


def _flat(m: np.ndarray | None) -> tuple[list[float], list[float]]:
    if m is None:
        return [], []
    a = np.asarray(m, dtype=complex).reshape(-1)
    return [float(x) for x in a.real], [float(x) for x in a.imag]


def result_record(
    value: Mapping[str, Any], rec: InRecord, outcome: Outcome, *, threshold: float, pair_id: str | None = None
) -> dict[str, Any]:
    """The ``QuantumResult`` of a request and its outcome (pure)."""
    sv_re, sv_im = _flat(outcome.statevector)
    dm_re, dm_im = _flat(outcome.density_matrix)
    fid = outcome.fidelity
    return {
        "request_id": value["request_id"],
        "instance_id": value.get("instance_id"),
        "status": outcome.status,
        "backend": "aer",
        "num_qubits": outcome.num_qubits,
        "shots": int(value.get("shots") or 0),
        "seed": outcome.seed,
        "counts": outcome.counts,
        "error": outcome.error,
        "duration_ms": outcome.duration_ms,
        "completed_at": int(value.get("requested_at") or rec.timestamp),
        "operation": value.get("operation") or "circuit",
        "agents": list(value.get("agents") or ()),
        "error_code": outcome.error_code,
        "fidelity": fid,
        "fidelity_threshold": threshold,
        "below_threshold": fid is not None and fid < threshold,
        "pair_id": pair_id,
        "classical_bits": outcome.classical_bits,
        "statevector_re": sv_re,
        "statevector_im": sv_im,
        "density_matrix_re": dm_re,
        "density_matrix_im": dm_im,
        "physical_error_rate": outcome.physical_error_rate,
        "logical_error_rate": outcome.logical_error_rate,
        "source_partition": rec.partition,
        "source_offset": rec.offset,
    }


def _keeps_density(job: Job | Outcome, value: Mapping[str, Any]) -> bool:
    """Results carry the density matrix when asked, for teleport (2x2) and for small entangled states."""
    if value.get("return_density_matrix") or not isinstance(job, Job):
        return bool(value.get("return_density_matrix"))
    op = job.op
    return isinstance(op, Teleport) or (isinstance(op, Entangle) and len(op.agents) <= SMALL_DENSITY_QUBITS)


class QuantumProcessor(ProcessorBase):
    decode_inputs = False  # decoded here, so a foreign record is dead-lettered with a precise reason

    def __init__(
        self,
        codec: Codec,
        topics: QuantumTopics | None = None,
        *,
        limits: Limits | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        group: str | None = None,
    ) -> None:
        self.topics = topics or QuantumTopics()
        self.name = group or (f"{self.topics.namespace}.quantum" if self.topics.namespace else "quantum")
        self.inputs = (self.topics.requests,)
        self.codec = codec
        self.limits = limits or Limits()
        self.threshold = threshold
        self.sim = Simulator(self.limits)
        self.registry = PairRegistry()
        self.positions: dict[int, int] = {}  # input partition -> next offset to process
        self.stats = QuantumStats()

    # -- processing ------------------------------------------------------------------

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]:
        items: list[tuple[InRecord, Mapping[str, Any], Job | Outcome]] = []
        seen_now: set[str] = set()
        for rec in batch:
            self.positions[rec.partition] = rec.offset + 1
            try:
                name, value = self.codec.decode(rec.raw or b"")
            except Exception as exc:
                ctx.dead_letter(rec, f"undecodable record: {exc}")
                continue
            if name != REQUEST_SCHEMA:
                ctx.dead_letter(
                    rec, f"expected a {REQUEST_SCHEMA} record on {rec.topic}, got a {name} record"
                )
                continue
            rid = value.get("request_id") or ""
            if rid and (rid in self.registry.answered or rid in seen_now):
                self.stats.duplicates += 1  # idempotent on request_id: answered once
                continue
            seen_now.add(rid)
            try:
                items.append((rec, value, parse_request(value, self.limits)))
            except RequestError as exc:
                items.append((rec, value, failed(exc.code, str(exc))))
        # 1. everything but teleports, in one pass (entangled pairs must exist before they are used)
        first = [j for _r, _v, j in items if isinstance(j, Job) and not isinstance(j.op, Teleport)]
        outcomes: dict[int, Outcome] = (
            dict(zip(map(id, first), self.sim.run(first), strict=True)) if first else {}
        )
        # 2. the pair registry, in input order: record pairs, give each teleport its pair (or refuse it)
        pairs: dict[int, str] = {}
        teleports: list[tuple[Job, Job]] = []  # (the request's job, the job over its pair)
        for _src, _req, job in items:
            if not isinstance(job, Job):
                continue
            if isinstance(job.op, Entangle):
                done = outcomes[id(job)]
                if done.status != "OK":  # a valid Bell/GHZ circuit cannot fail: let the engine isolate it
                    raise RuntimeError(f"entangle {job.request_id}: simulation failed: {done.error}")
                pid = pair_id_for(job.request_id)
                pairs[id(job)] = pid
                state = done.density_matrix if len(job.op.agents) == 2 else None
                self.registry.add(pid, job.op.agents, state)
            elif isinstance(job.op, Teleport):
                decided = self._decide(job)
                if isinstance(decided, Outcome):
                    outcomes[id(job)] = decided
                else:
                    pid, rho = decided
                    pairs[id(job)] = pid
                    teleports.append((job, replace(job, pair=rho)))
        # 3. the teleports over their pairs, in one pass
        if teleports:
            ran = self.sim.run([over for _job, over in teleports])
            for (job, _over), done in zip(teleports, ran, strict=True):
                outcomes[id(job)] = done
        out: list[OutRecord] = []
        for src, req, job in items:
            outcome = job if isinstance(job, Outcome) else outcomes[id(job)]
            pair_id = pairs.get(id(job))  # a teleport that took a pair consumed it, even if Aer failed
            if outcome.density_matrix is not None and not _keeps_density(job, req):
                outcome.density_matrix = None
            result = result_record(req, src, outcome, threshold=self.threshold, pair_id=pair_id)
            self.registry.answered.add(result["request_id"])
            out.append(OutRecord(self.topics.results, src.key, RESULT_SCHEMA, result))
        self.stats.requests += len(batch)
        self.stats.results += len(out)
        return out

    def _decide(self, job: Job) -> Outcome | tuple[str, Any]:
        """A teleport's pair (id, state), or the outcome that refuses it."""
        op = job.op
        assert isinstance(op, Teleport)
        for agent in (op.sender, op.receiver):
            if agent not in self.registry.agents:
                return failed("UNKNOWN_AGENT", f"unknown agent {agent!r}: it has never been entangled")
        taken = self.registry.take(op.sender, op.receiver)
        if taken is None:
            return failed(
                "NO_PAIR",
                f"refused: no entangled pair between {op.sender!r} and {op.receiver!r} "
                f"(entangle them first; each teleport consumes a pair)",
                status="REFUSED",
            )
        return taken

    # -- recovery ----------------------------------------------------------------------

    def on_assign(self, partitions: Sequence[PartitionRef], ctx: AssignContext) -> None:
        mine = [p for p in partitions if p.topic == self.topics.requests]
        if not mine:
            return
        for ref in mine:
            self.positions[ref.partition] = max(0, ctx.committed.get(ref, 0))
        self.registry = self.recover(ctx.bootstrap)
        self.stats.recovered_pairs = len(self.registry.created) - len(self.registry.consumed)

    def recover(self, bootstrap: str) -> PairRegistry:
        from streams.admin import list_topics

        n = list_topics(bootstrap).get(self.topics.results, 0)
        with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
            logs = list(pool.map(lambda p: list(read_to_end(bootstrap, self.topics.results, p)), range(n)))
        registry = PairRegistry()
        for log in logs:
            for _off, _key, value, _ts in log:
                if value is None:
                    continue
                try:
                    name, rec = self.codec.decode(value)
                except Exception:
                    continue
                if name != RESULT_SCHEMA:
                    continue
                sp, so = rec.get("source_partition"), rec.get("source_offset")
                if sp is not None and so is not None and sp in self.positions and so >= self.positions[sp]:
                    continue  # aborted, or its request is processed again
                registry.apply(rec)
        return registry

    def on_revoke(self, partitions: Sequence[PartitionRef]) -> None:
        for ref in partitions:
            if ref.topic == self.topics.requests:
                self.positions.pop(ref.partition, None)
