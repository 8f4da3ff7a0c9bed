"""examples/agreement end to end: the protocol's `chain` channel bound to the ledger service.

A real runtime worker and channel bridge (engine threads), a real ledger processor on an
in-process EVM chain: the negotiated agreement is deployed, signed by both agents and
executed on chain, each receipt coming back to the instance as an event.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import agreement_demo
from processors.ledger.artifacts import artifact
from tests.channels.channel_helpers import runtime_and_bridge
from tests.ledger.ledger_helpers import running_ledger
from tests.shared_helpers import new_platform


def test_agreement_protocol_runs_on_chain_through_the_binding(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSP_DATA_DIR", str(tmp_path))  # the adapter's keystore (bridge in this process)
    platform = new_platform(kafka_bootstrap, tmp_path)
    with running_ledger(kafka_bootstrap, tmp_path, agents=("alice", "bob")) as rig, runtime_and_bridge(platform):
        verdicts = agreement_demo.deploy(platform)
        assert verdicts.count("pass") == 3, verdicts
        outcome = agreement_demo.negotiate(platform, 2, timeout_s=150)
        on_chain = [r for r in rig.client.receipts(timeout_s=2) if r["instance_id"] == outcome.instance_id]
    assert outcome.executed, outcome.trace
    steps = [e for e in outcome.trace if e.startswith(("chain.", "receipt.", "done", "failed"))]
    assert steps == ["chain.alice.deploy", "receipt.ok", "chain.alice.sign", "receipt.ok",
                     "chain.bob.sign", "receipt.ok", "chain.alice.execute", "receipt.ok", "done"]
    assert [r["status"] for r in on_chain] == ["SUCCESS"] * 4
    address = on_chain[0]["contract_address"]
    contract = rig.chain.w3.eth.contract(address=address, abi=artifact("Agreement").abi)
    assert contract.functions.executed().call() is True
    assert contract.functions.acceptedCount().call() == 2
