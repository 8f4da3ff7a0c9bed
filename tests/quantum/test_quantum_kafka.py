"""The quantum processor on the real broker and engine: results, refusals, errors, dead letters, recovery."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Producer
from quantum_helpers import new_client, thread_worker

from processors.quantum.requests import request_record
from streams.clients import producer_config
from streams.reader import read_to_end

PLUS = {"amplitudes": [0.707, 0.707], "phases": [0, 1.57]}


def test_entangle_teleport_refuse_errors_and_dead_letters(kafka_bootstrap: str, tmp_path: Path) -> None:
    q = new_client(kafka_bootstrap, tmp_path)
    with q, thread_worker(q):
        pair = q.entangle("alice", "bob", timeout_s=90)
        assert pair["status"] == "OK" and pair["pair_id"] and pair["fidelity"] > 0.999999
        assert pair["below_threshold"] is False and pair["fidelity_threshold"] == 0.85
        sent = q.teleport("alice", "bob", PLUS)
        assert sent["status"] == "OK", sent["error"]
        assert sent["pair_id"] == pair["pair_id"] and sent["fidelity"] >= 0.999
        assert sent["classical_bits"] in {"00", "01", "10", "11"} and len(sent["density_matrix_re"]) == 4
        again = q.teleport("bob", "alice", PLUS)  # the pair was consumed
        assert (
            again["status"] == "REFUSED"
            and again["error_code"] == "NO_PAIR"
            and "no entangled pair" in again["error"]
        )
        stranger = q.teleport("alice", "zed", PLUS)
        assert (
            stranger["status"] == "ERROR"
            and stranger["error_code"] == "UNKNOWN_AGENT"
            and "'zed'" in stranger["error"]
        )
        noisy = q.entangle("carol", "dave", noise={"depolarizing": 0.3})
        assert noisy["status"] == "OK" and noisy["fidelity"] < 0.85 and noisy["below_threshold"] is True
        bad = q.run("OPENQASM 2.0; qreg q[1]; frobnicate q[0];")
        assert bad["status"] == "ERROR" and bad["error_code"] == "BAD_QASM"
        big = q.run('OPENQASM 2.0; include "qelib1.inc"; qreg q[40]; h q[0];')
        assert big["status"] == "ERROR" and big["error_code"] == "LIMIT" and "too many qubits" in big["error"]
        unnorm = q.teleport("carol", "dave", {"amplitudes": [1, 1], "phases": [0, 0]})
        assert unnorm["status"] == "ERROR" and unnorm["error_code"] == "NOT_NORMALISED"
        over = q.teleport("dave", "carol", PLUS)  # over the recorded noisy pair (either direction)
        assert over["status"] == "OK" and over["pair_id"] == noisy["pair_id"]
        assert (
            0.5 < over["fidelity"] < 0.9 and over["below_threshold"] is True
        )  # the pair's noise carries over
        ec = q.error_correction("bit_flip", 0.1)
        assert ec["logical_error_rate"] < ec["physical_error_rate"]
        # a duplicate request id is answered once; garbage goes to the dead-letter topic
        dup = request_record("entangle", request_id="dup-1", agents=["x", "y"])
        first = q.call(dup)
        p = Producer(producer_config(kafka_bootstrap))
        p.produce(q.topics.requests, q.codec.encode("QuantumRequest", {**dup, "requested_at": 1}), b"dup-1")
        p.produce(q.topics.requests, b"not avro at all", b"junk")
        p.flush(10)
        follow = q.entangle("x", "y")  # processed after the duplicate and the junk
        assert follow["status"] == "OK" and first["status"] == "OK"
        deadline = time.monotonic() + 30
        dead: list[bytes] = []
        while not dead and time.monotonic() < deadline:
            dead = [v for _o, _k, v, _t in read_to_end(kafka_bootstrap, q.topics.requests + ".dlq", 0) if v]
        assert len(dead) == 1
        name, letter = q.codec.decode(dead[0])
        assert name == "DeadLetter" and letter["value"] == b"not avro at all"
    results = [
        q.codec.decode(v)[1]
        for part in range(2)
        for _o, _k, v, _t in read_to_end(kafka_bootstrap, q.topics.results, part)
        if v
    ]
    assert [r["request_id"] for r in results].count("dup-1") == 1


def test_pairs_survive_a_worker_restart(kafka_bootstrap: str, tmp_path: Path) -> None:
    q = new_client(kafka_bootstrap, tmp_path)
    with q:
        with thread_worker(q):
            first = q.entangle("ann", "ben", timeout_s=90)
            second = q.entangle("ann", "ben")
            used = q.teleport("ann", "ben", {"amplitudes": [1, 0], "phases": [0, 0]})
            assert used["pair_id"] == min(first["pair_id"], second["pair_id"])
        with thread_worker(q) as proc:  # a new processor: the registry is folded from quantum.results
            left = q.teleport("ben", "ann", {"amplitudes": [0, 1], "phases": [0, 0]}, timeout_s=90)
            assert left["status"] == "OK" and left["pair_id"] == max(first["pair_id"], second["pair_id"])
            assert left["fidelity"] >= 0.999
            none = q.teleport("ann", "ben", {"amplitudes": [0, 1], "phases": [0, 0]})
            assert none["status"] == "REFUSED"
            assert proc.registry.agents >= {"ann", "ben"}
