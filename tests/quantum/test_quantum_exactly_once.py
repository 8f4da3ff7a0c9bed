"""Exactly-once: SIGKILL a quantum worker subprocess mid-stream, restart it, check every request got one answer."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from quantum_helpers import new_client, spawn_worker

from processors.quantum.requests import request_record
from streams.reader import read_to_end

BELL = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2]; h q[0]; cx q[0],q[1]; measure q -> c;'


def test_sigkill_mid_stream_then_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    q = new_client(kafka_bootstrap, tmp_path)
    records: list[dict[str, Any]] = []
    for i in range(40):
        a, b = f"a{i % 5}", f"b{i % 5}"
        records.append(request_record("entangle", request_id=f"ent-{i}", agents=[a, b], shots=64))
        records.append(request_record("circuit", request_id=f"circ-{i}", circuit=BELL, shots=64))
    teleports = [
        request_record(
            "teleport",
            request_id=f"tel-{i}",
            agents=[f"a{i % 5}", f"b{i % 5}"],
            state={"amplitudes": [0.6, 0.8], "phases": [0.0, 0.5]},
            shots=64,
        )  # fmt: skip
        for i in range(50)  # 50 teleports for 40 pairs: at least 10 are refused
    ]
    log = tmp_path / "worker.log"
    worker = spawn_worker(q, "w1", log, "--batch-size", "4")
    with q:
        try:
            ids = q.submit_many(records)
            q.wait(ids[:4], timeout_s=120)  # the worker is running
            ids += q.submit_many(teleports)
            seen_at_kill = q.poll(0.1) + 4
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            assert seen_at_kill < len(ids), "the worker finished before the kill: not mid-stream"
            worker = spawn_worker(q, "w1", log, "--batch-size", "16")
            q.wait(ids, timeout_s=240)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
    time.sleep(0.5)
    results: dict[str, list[dict[str, Any]]] = {}
    for part in range(2):
        for _o, _k, v, _t in read_to_end(kafka_bootstrap, q.topics.results, part):
            if v:
                rec = q.codec.decode(v)[1]
                results.setdefault(rec["request_id"], []).append(rec)
    assert set(results) == set(ids)
    # the embedded broker shows records of aborted transactions: any copy of a result says the same
    for rid, copies in results.items():
        assert len({(c["status"], c["pair_id"], c["error_code"]) for c in copies}) == 1, rid
    final = {rid: copies[-1] for rid, copies in results.items()}
    ok = [r for r in final.values() if r["operation"] == "teleport" and r["status"] == "OK"]
    refused = [r for r in final.values() if r["operation"] == "teleport" and r["status"] == "REFUSED"]
    assert len(ok) + len(refused) == 50 and len(refused) >= 10
    pairs = [r["pair_id"] for r in ok]
    assert len(pairs) == len(set(pairs)), "a pair was consumed twice"
    created = {r["pair_id"] for r in final.values() if r["operation"] == "entangle"}
    assert set(pairs) <= created and len(created) == 40
    assert all(r["fidelity"] >= 0.999 for r in ok)
