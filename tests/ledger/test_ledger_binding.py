"""The ledger's service adapter and the committed contract artifacts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from processors.ledger.keys import keystore_for
from processors.ledger.requests import verify_signature
from processors.services.api import BoundEvent, ServiceAdapter, ServiceBinding, resolve_service

ROOT = Path(__file__).resolve().parents[2]


def test_adapter_builds_signed_requests_and_replies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSP_DATA_DIR", str(tmp_path))
    alice = keystore_for(tmp_path).create("alice")
    adapter = resolve_service("ledger")
    assert isinstance(adapter, ServiceAdapter)
    binding = ServiceBinding("deal", "chain", "ledger", "receipt",
                             {"contract": "Agreement", "address": "0x" + "22" * 20})
    bound = BoundEvent(binding, "inst-1", 7, "chain.alice.execute.deliver.0x01", ("alice", "execute", "deliver", "0x01"))
    key, request = adapter.request(bound)
    assert request["tx_id"] == "inst-1:7" and request["command_id"] == "svc:inst-1:7"
    assert request["agent"] == "alice" and request["function"] == "execute"
    assert request["args_json"] == '["deliver", "0x01"]' and request["instance_id"] == "inst-1"
    verify_signature(request, alice.address)
    assert key == request["chain_id"]
    reply = adapter.reply(binding, {"tx_id": "inst-1:7", "instance_id": "inst-1", "status": "REVERTED"})
    assert reply is not None and reply.event == "receipt.reverted" and reply.command_id == "svc:inst-1:7"
    assert adapter.reply(binding, {"tx_id": "x", "instance_id": None, "status": "SUCCESS"}) is None
    with pytest.raises(ValueError, match="names no function"):
        adapter.request(BoundEvent(binding, "i", 1, "chain.alice", ("alice",)))


@pytest.mark.skipif(
    not ((ROOT / ".tools/node_modules/.bin/solcjs").exists() or shutil.which("solcjs")),
    reason="solc-js is not installed (make tools: npm install solc)",
)
def test_committed_artifacts_match_a_fresh_compile() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "processors/ledger/contracts/build.py"), "--check"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_agreement_protocol_events_run_on_chain(kafka_bootstrap: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The events of examples/agreement (deploy, sign, sign, execute) through the adapter and
    the ledger processor: each receipt maps back to the reply the protocol expects."""
    from tests.ledger.ledger_helpers import running_ledger

    monkeypatch.setenv("CSP_DATA_DIR", str(tmp_path))
    adapter = resolve_service("ledger")
    binding = ServiceBinding("agreement", "chain", "ledger", "receipt", {"terms": "3 units at 2 EUR"})
    steps = [("alice", "deploy"), ("alice", "sign"), ("alice", "execute"), ("bob", "sign"), ("alice", "execute")]
    expected = ["receipt.ok", "receipt.ok", "receipt.reverted", "receipt.ok", "receipt.ok"]
    with running_ledger(kafka_bootstrap, tmp_path, agents=("alice", "bob")) as rig:
        for seq, ((agent, fn), want) in enumerate(zip(steps, expected, strict=True), start=1):
            _key, request = adapter.request(BoundEvent(binding, "deal-1", seq, f"chain.{agent}.{fn}", (agent, fn)))
            receipt = rig.client.receipt(rig.client.send(request), timeout_s=90)
            assert receipt is not None
            reply = adapter.reply(binding, receipt)
            assert reply is not None and reply.instance_id == "deal-1"
            assert reply.event == want, (fn, receipt)
        assert receipt["logs_json"] and "Executed" in receipt["logs_json"]
