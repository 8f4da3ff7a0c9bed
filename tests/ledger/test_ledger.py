"""The ledger processor over the real broker and an in-process EVM chain (eth-tester).

Signature refusal, contract deployment and calls with decoded events, revert reasons,
the Agreement flow of two agents, and idempotency on the request id.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account.messages import encode_defunct
from web3 import Web3

from processors.ledger.requests import canonical_bytes, sign_request
from tests.ledger.ledger_helpers import LedgerRig, running_ledger


def _done(rig: LedgerRig, tx_id: str) -> dict[str, Any]:
    receipt = rig.client.receipt(tx_id, timeout_s=90)
    assert receipt is not None, f"no receipt for {tx_id}"
    return receipt


@pytest.fixture(scope="module")
def rig(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    with running_ledger(kafka_bootstrap, tmp_path_factory.mktemp("ledger")) as rig:
        yield rig


def test_unsigned_and_forged_requests_are_refused(rig: LedgerRig) -> None:
    unsigned = rig.client.build("deploy", "platform", contract="AuditAnchor", sign=False)
    receipt = _done(rig, rig.client.send(unsigned))
    assert receipt["status"] == "REFUSED" and "unsigned" in receipt["reason"]
    assert receipt["tx_hash"] is None

    # Signed by bob's key but claiming to be alice.
    forged = rig.client.build("deploy", "alice", contract="AuditAnchor", sign=False)
    forged["signature"] = sign_request(rig.keys.require("bob"), forged)
    receipt = _done(rig, rig.client.send(forged))
    assert receipt["status"] == "REFUSED"
    assert "signature does not match agent 'alice'" in receipt["reason"]
    assert rig.keys.require("bob").address in receipt["reason"]

    # A valid signature over other content (the args were changed after signing).
    tampered = rig.client.build("deploy", "platform", contract="AuditAnchor")
    tampered["args_json"] = "[1]"
    receipt = _done(rig, rig.client.send(tampered))
    assert receipt["status"] == "REFUSED" and "signature does not match" in receipt["reason"]

    unknown = rig.client.build("deploy", "platform", contract="AuditAnchor", sign=False)
    unknown["agent"] = "nobody"
    unknown["signature"] = sign_request(rig.keys.require("platform"), unknown)
    receipt = _done(rig, rig.client.send(unknown))
    assert receipt["status"] == "REFUSED" and "no key for agent 'nobody'" in receipt["reason"]


def test_anchor_contract_events_and_revert_reason(rig: LedgerRig) -> None:
    deployed = _done(rig, rig.client.submit("deploy", "platform", contract="AuditAnchor"))
    assert deployed["status"] == "SUCCESS", deployed
    address = deployed["contract_address"]
    assert Web3.is_checksum_address(address)
    assert deployed["sender"] == rig.keys.require("platform").address
    assert rig.chain.w3.eth.get_code(address) != b""

    root = "0x" + "ab" * 32
    anchored = _done(rig, rig.client.submit("call", "platform", contract="AuditAnchor", address=address,
                                            function="anchor", args=[root, 7]))
    assert anchored["status"] == "SUCCESS", anchored
    logs = json.loads(anchored["logs_json"])
    assert [log["event"] for log in logs] == ["Anchored"]
    assert logs[0]["args"]["root"] == root and logs[0]["args"]["treeSize"] == 7
    assert anchored["block_number"] > deployed["block_number"] and anchored["gas_used"] > 21000

    # Only the platform may anchor: alice's call comes back REVERTED with the reason.
    refused = _done(rig, rig.client.submit("call", "alice", contract="AuditAnchor", address=address,
                                           function="anchor", args=[root, 8]))
    assert refused["status"] == "REVERTED"
    assert refused["reason"] == "AuditAnchor: only the platform may anchor"
    contract = rig.chain.w3.eth.contract(address=address, abi=_abi("AuditAnchor"))
    assert contract.functions.latestSize().call() == 7


def _abi(name: str) -> list[dict[str, Any]]:
    from processors.ledger.artifacts import artifact

    return artifact(name).abi


def test_agreement_between_two_agents(rig: LedgerRig) -> None:
    alice, bob = rig.keys.require("alice"), rig.keys.require("bob")
    terms = Web3.keccak(text="deliver 10 units at 3 EUR")
    deployed = _done(rig, rig.client.submit("deploy", "alice", contract="Agreement",
                                            args=[[alice.address, bob.address], "0x" + terms.hex()]))
    assert deployed["status"] == "SUCCESS", deployed
    address = deployed["contract_address"]

    early = _done(rig, rig.client.submit("call", "alice", contract="Agreement", address=address,
                                         function="execute", args=["deliver", "0x01"]))
    assert early["status"] == "REVERTED" and early["reason"] == "Agreement: not accepted by all parties"

    for agent in (alice, bob):
        signature = "0x" + bytes(agent.sign_message(encode_defunct(primitive=bytes(terms))).signature).hex()
        name = "alice" if agent is alice else "bob"
        accepted = _done(rig, rig.client.submit("call", name, contract="Agreement", address=address,
                                                function="accept", args=[signature]))
        assert accepted["status"] == "SUCCESS", accepted
        assert json.loads(accepted["logs_json"])[0]["args"]["party"] == agent.address

    # bob signing alice's acceptance again: the contract checks the signer is the sender.
    executed = _done(rig, rig.client.submit("call", "bob", contract="Agreement", address=address,
                                            function="execute", args=["deliver", "0x0a03"]))
    assert executed["status"] == "SUCCESS", executed
    event = json.loads(executed["logs_json"])[0]
    assert event["event"] == "Executed" and event["args"]["functionName"] == "deliver"
    assert event["args"]["params"] == "0x0a03"
    again = _done(rig, rig.client.submit("call", "alice", contract="Agreement", address=address,
                                         function="execute", args=["deliver", "0x01"]))
    assert again["status"] == "REVERTED" and again["reason"] == "Agreement: already executed"


def test_same_request_twice_is_submitted_once(rig: LedgerRig) -> None:
    bob = rig.keys.require("bob")
    target = rig.keys.require("alice").address
    request = rig.client.build("transfer", "bob", address=target, value_wei=12345)
    nonce_before = rig.chain.pending_nonce(bob.address)
    first = _done(rig, rig.client.send(request))
    rig.client.send(request)  # the same bytes again: a retry by the producer
    receipts = [r for r in rig.client.receipts(timeout_s=3) if r["tx_id"] == request["tx_id"]]
    assert len(receipts) == 2, "the repeat gets a receipt too"
    assert {r["tx_hash"] for r in receipts} == {first["tx_hash"]}
    assert rig.chain.pending_nonce(bob.address) == nonce_before + 1, "submitted twice"
    assert first["status"] == "SUCCESS"


def test_bad_arguments_are_refused_with_the_reason(rig: LedgerRig) -> None:
    receipt = _done(rig, rig.client.submit("call", "alice", contract="AuditAnchor",
                                           address="0x" + "00" * 20, function="nope", args=[]))
    assert receipt["status"] == "REFUSED" and "has no function 'nope'" in receipt["reason"]
    receipt = _done(rig, rig.client.submit("deploy", "alice", contract="Agreement", args=["x"]))
    assert receipt["status"] == "REFUSED" and "do not fit the ABI" in receipt["reason"]
    assert canonical_bytes({"tx_id": "a"}) != canonical_bytes({"tx_id": "b"})
