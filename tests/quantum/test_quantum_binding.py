"""The quantum service adapter (request()/reply()) and the example protocol."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from processors.quantum.binding import ADAPTER, verdict
from processors.quantum.spec import Limits, parse_request
from processors.services.api import BoundEvent, ServiceAdapter, ServiceBinding, resolve_service

ROOT = Path(__file__).resolve().parents[2]
BINDING = ServiceBinding("qteleport", "qreq", "quantum", reply_channel="qres")


def bound(event: str, seq: int = 3, binding: ServiceBinding = BINDING) -> BoundEvent:
    return BoundEvent(binding, "inst-1", seq, event, tuple(event.split(".", 1)[1:]))


def test_adapter_is_the_builtin_quantum_service() -> None:
    assert isinstance(ADAPTER, ServiceAdapter)
    assert resolve_service("quantum") is ADAPTER
    assert (ADAPTER.request_topic, ADAPTER.result_topic) == ("quantum.requests", "quantum.results")


def test_requests_from_events() -> None:
    key, rec = ADAPTER.request(bound("qreq.entangle.alice.bob"))
    assert key == "inst-1:3" == rec["request_id"] and rec["instance_id"] == "inst-1"
    job = parse_request({**rec, "requested_at": 0}, Limits())
    assert job.operation == "entangle" and job.op.agents == ("alice", "bob")  # type: ignore[union-attr]
    # values given field by field give the same request; a replayed event gives the same request
    split = BoundEvent(BINDING, "inst-1", 3, "qreq.entangle.alice.bob", ("entangle", "alice", "bob"))
    assert ADAPTER.request(split) == ADAPTER.request(bound("qreq.entangle.alice.bob"))
    _k, tel = ADAPTER.request(bound("qreq.teleport.alice.bob.plus", seq=7))
    assert tel["operation"] == "teleport" and tel["agents"] == ["alice", "bob"]
    assert abs(tel["state"]["amplitudes"][0] - 2**-0.5) < 1e-12
    custom = ServiceBinding("s", "qreq", "quantum", "qres",
                            {"state.psi": '{"amplitudes": [0.6, 0.8], "phases": [0, 1]}', "noise": "depolarizing=0.1",
                             "shots": "64"})  # fmt: skip
    _k, c = ADAPTER.request(bound("qreq.teleport.alice.bob.psi", binding=custom))
    assert c["state"] == {"amplitudes": [0.6, 0.8], "phases": [0.0, 1.0]} and c["shots"] == 64
    assert c["noise"]["depolarizing"] == 0.1
    _k, bad = ADAPTER.request(bound("qreq.fly.alice"))
    assert bad["operation"].startswith("unknown")  # answered by the processor with an error


def test_replies_carry_the_verdict() -> None:
    base = {"request_id": "inst-1:3", "instance_id": "inst-1", "status": "OK", "below_threshold": False}
    reply = ADAPTER.reply(BINDING, base)
    assert reply is not None
    assert (reply.instance_id, reply.event, reply.command_id) == ("inst-1", "qres.ok", "svc:inst-1:3")
    assert verdict({**base, "below_threshold": True}) == "low"
    assert verdict({**base, "status": "REFUSED"}) == "refused"
    assert verdict({**base, "status": "ERROR"}) == "error"
    assert ADAPTER.reply(BINDING, {**base, "instance_id": None}) is None  # not from a binding
    assert ADAPTER.reply(ServiceBinding("s", "qreq", "quantum"), base) is None  # no reply channel


def test_example_protocol_verifies() -> None:
    r = CliRunner().invoke(app, ["check", str(ROOT / "examples" / "quantum" / "teleport.csp")])
    assert r.exit_code == 0, r.output
    assert "4 pass" in r.output


def test_example_runs_end_to_end(kafka_bootstrap: str) -> None:
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=kafka_bootstrap)
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "quantum" / "run_quantum.py")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "quantum example passed" in proc.stdout and "FAIL" not in proc.stdout
