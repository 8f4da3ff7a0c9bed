"""``csp quantum ...`` against a real broker and an in-thread quantum worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from quantum_helpers import new_client, thread_worker
from typer.testing import CliRunner

from gateway.cli import app


def test_cli_entangle_teleport_run(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSP_KAFKA_BOOTSTRAP", kafka_bootstrap)
    q = new_client(kafka_bootstrap, tmp_path)
    ns = ["--namespace", q.topics.namespace]
    runner = CliRunner()
    qasm = tmp_path / "ghz.qasm"
    qasm.write_text('OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[3] q;\nbit[3] c;\nh q[0];\ncx q[0], q[1];\n'
                    "cx q[1], q[2];\nc = measure q;\n")  # fmt: skip
    with q, thread_worker(q):
        r = runner.invoke(
            app, ["quantum", "entangle", "alice", "bob", "--noise", "depolarizing=0.01", "--json", *ns]
        )
        assert r.exit_code == 0, r.output
        pair = json.loads(r.output.strip().splitlines()[-1])
        assert pair["status"] == "OK" and 0.97 < pair["fidelity"] < 1.0
        state = '{"amplitudes": [0.707, 0.707], "phases": [0, 1.57]}'
        r = runner.invoke(app, ["quantum", "teleport", "alice", "bob", "--state", state, *ns])
        assert r.exit_code == 0, r.output
        assert "teleport" in r.output and pair["pair_id"] in r.output and "classical bits" in r.output
        # over the noisy pair: (2F + 1) / 3 for a pair of fidelity F under depolarizing-like noise, about
        got = float(r.output.split("fidelity ")[1].split()[0])
        assert abs(got - (2 * pair["fidelity"] + 1) / 3) < 0.01 and got < 1.0
        r = runner.invoke(app, ["quantum", "teleport", "alice", "bob", "--state", "+", *ns])
        assert r.exit_code == 1 and "NO_PAIR" in r.output
        r = runner.invoke(app, ["quantum", "run", str(qasm), "--shots", "200", "--json", *ns])
        assert r.exit_code == 0, r.output
        counts = json.loads(r.output.strip().splitlines()[-1])["counts"]
        assert set(counts) == {"000", "111"} and sum(counts.values()) == 200
        r = runner.invoke(app, ["quantum", "correct", "bit_flip", "--error-rate", "0.2", *ns])
        assert r.exit_code == 0 and "logical error rate 0.104000" in r.output
    r = runner.invoke(app, ["quantum", "entangle", "a", "b", "--noise", "depolarising=0.1", *ns])
    assert r.exit_code == 2 and "depolarizing" in r.output
    r = runner.invoke(app, ["quantum", "teleport", "a", "b", "--state", "{oops", *ns])
    assert r.exit_code == 2 and "not JSON" in r.output
