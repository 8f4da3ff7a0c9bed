"""QuantumProcessor.process on hand-built records: ordering inside one batch, duplicates, foreign records.

(The broker tests run the same processor on the engine; these check one batch in isolation.)
"""

from __future__ import annotations

from typing import Any

from processors.quantum.processor import QuantumProcessor
from processors.quantum.requests import request_record
from schemas.codec import Codec
from schemas.registry import LocalRegistry
from streams.engine import BatchContext, dead_letter_topic_for
from streams.records import InRecord

CODEC = Codec(LocalRegistry.load())


def records(*values: dict[str, Any] | bytes) -> list[InRecord]:
    out = []
    for off, v in enumerate(values):
        raw = v if isinstance(v, bytes) else CODEC.encode("QuantumRequest", {**v, "requested_at": 1000 + off})
        key = None if isinstance(v, bytes) else v["request_id"].encode()
        out.append(InRecord.of("quantum.requests", 0, off, key, raw, CODEC.decode, timestamp=1000 + off))
    return out


def run(proc: QuantumProcessor, batch: list[InRecord]) -> tuple[list[dict[str, Any]], BatchContext]:
    ctx = BatchContext(proc.name, dead_letter_topic_for)
    outs = list(proc.process(batch, ctx))
    assert all(o.topic == "quantum.results" and o.schema == "QuantumResult" for o in outs)
    return [dict(o.value or {}) for o in outs], ctx


def test_one_batch_entangle_then_teleports_in_input_order() -> None:
    plus = {"amplitudes": [0.707, 0.707], "phases": [0, 0]}
    proc = QuantumProcessor(CODEC)
    batch = records(
        request_record("teleport", request_id="t0", agents=["a", "b"], state=plus),  # before any pair
        request_record("entangle", request_id="e1", agents=["a", "b"]),
        request_record("teleport", request_id="t1", agents=["b", "a"], state=plus),
        request_record("teleport", request_id="t2", agents=["a", "b"], state=plus),
        request_record("entangle", request_id="e1", agents=["a", "b"]),  # duplicate id: skipped
        b"\x00\x00\x00\x00\x01garbage",
    )
    results, ctx = run(proc, batch)
    by_id = {r["request_id"]: r for r in results}
    assert [r["request_id"] for r in results] == ["t0", "e1", "t1", "t2"]
    assert by_id["t0"]["status"] == "ERROR" and by_id["t0"]["error_code"] == "UNKNOWN_AGENT"
    assert by_id["e1"]["status"] == "OK" and by_id["e1"]["pair_id"] == "pair:e1"
    assert (
        by_id["t1"]["status"] == "OK"
        and by_id["t1"]["pair_id"] == "pair:e1"
        and by_id["t1"]["fidelity"] > 0.999
    )
    assert by_id["t2"]["status"] == "REFUSED" and by_id["t2"]["error_code"] == "NO_PAIR"
    assert [(r.offset, "undecodable" in e or "schema" in e) for r, e in ctx.dead_letters] == [(5, True)]
    assert all(r["source_partition"] == 0 for r in results)
    assert [r["source_offset"] for r in results] == [0, 1, 2, 3]
    # a later batch: the ids are remembered, the pair stays consumed
    again, _ = run(proc, records(request_record("teleport", request_id="t1", agents=["a", "b"], state=plus)))
    assert again == []


def test_the_registry_folds_from_results() -> None:
    proc = QuantumProcessor(CODEC)
    results, _ = run(proc, records(
        request_record("entangle", request_id="e1", agents=["a", "b"], noise={"depolarizing": 0.2}),
        request_record("entangle", request_id="e2", agents=["a", "b"]),
        request_record("teleport", request_id="t1", agents=["a", "b"], state={"amplitudes": [1, 0]}),
    ))  # fmt: skip
    from processors.quantum.pairs import PairRegistry

    folded = PairRegistry().fold(CODEC.decode(CODEC.encode("QuantumResult", r))[1] for r in results)
    assert folded.available("b", "a") == ["pair:e2"] == proc.registry.available("a", "b")
    assert folded.answered == {"e1", "e2", "t1"}
    taken = folded.take("b", "a")
    assert taken is not None and taken[0] == "pair:e2" and taken[1] is not None
