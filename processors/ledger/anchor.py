"""Audit anchoring: signed audit checkpoints' roots, anchored on the EVM chain.

The :class:`AnchorProcessor` (an engine processor) reads the checkpoints announced on
``audit.log``. It opens each one with the audit verifier key, so a checkpoint that the
platform's audit key did not sign is never anchored. An anchor is due when
``every`` checkpoints have arrived since the last anchor, or when ``interval_ms`` of
record time has passed since it. For each anchor the processor emits, in one engine
transaction:

* a ``LedgerAnchor`` record on ``ledger.anchors``: the tree size, the root, the previous
  anchor and the contract;
* a signed ``LedgerTransaction`` calling ``AuditAnchor.anchor(root, size)`` as the
  platform, with ``tx_id = "anchor:<contract>:<size>"``. The ledger processor is idempotent
  on it, so a replayed batch anchors nothing twice.

:func:`compare_with_chain` (pure) checks checkpoints against the roots anchored on chain.
``csp audit verify --chain`` uses it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from processors.ledger.client import DEFAULT_CHAIN, LedgerClient
from processors.ledger.keys import PLATFORM_AGENT, Keystore
from schemas.codec import Codec
from schemas.records import LEDGER_ANCHOR, LEDGER_TRANSACTION
from streams.engine import AssignContext, BatchContext, PartitionRef, ProcessorBase
from streams.reader import read_records
from streams.records import InRecord, OutRecord

AUDIT_TOPIC = "audit.log"
ANCHORS_TOPIC = "ledger.anchors"
REQUESTS_TOPIC = "ledger.transactions"
ANCHOR_FILE = "audit_anchor.json"


@dataclass(frozen=True)
class AnchorPolicy:
    every: int = 1  # anchor at least every N checkpoints
    interval_ms: int = 60_000  # ...or when this much record time passed since the last anchor


@dataclass(frozen=True)
class Anchored:
    size: int
    root: str  # hex
    timestamp: int  # ms, record time of the checkpoint


def anchor_file(data_dir: Path) -> Path:
    return data_dir / "ledger" / ANCHOR_FILE


def load_anchor_address(data_dir: Path, configured: str | None = None) -> str | None:
    """``CSP_AUDIT_ANCHOR_ADDRESS``, else the address ``csp audit anchor-deploy`` recorded."""
    if configured:
        return configured
    path = anchor_file(data_dir)
    if not path.is_file():
        return None
    return str(json.loads(path.read_text())["address"])


def save_anchor_address(data_dir: Path, address: str, chain: str) -> Path:
    from infra.private import write_private

    return write_private(anchor_file(data_dir), json.dumps({"address": address, "chain": chain}) + "\n")


def anchor_tx_id(contract: str, size: int) -> str:
    return f"anchor:{contract.lower()}:{size}"


def _anchor_hash(prev_root: str | None, root: str, size: int) -> str:
    return hashlib.sha256(f"{prev_root or ''}|{root}|{size}".encode()).hexdigest()


class AnchorProcessor(ProcessorBase):
    name = "ledger-anchor"
    decode_inputs = True

    def __init__(
        self,
        bootstrap: str,
        codec: Codec,
        keys: Keystore,
        contract: str,
        verifiers: Sequence[Any],
        policy: AnchorPolicy | None = None,
        *,
        audit_topic: str = AUDIT_TOPIC,
        anchors_topic: str = ANCHORS_TOPIC,
        requests_topic: str = REQUESTS_TOPIC,
        chain_id: str = DEFAULT_CHAIN,
    ) -> None:
        self.bootstrap = bootstrap
        self.codec = codec
        self.client = LedgerClient(bootstrap, codec, keys, chain_id=chain_id)
        self.contract = contract
        self.verifiers = list(verifiers)
        self.policy = policy or AnchorPolicy()
        self.inputs = (audit_topic,)
        self.audit_topic = audit_topic
        self.anchors_topic = anchors_topic
        self.requests_topic = requests_topic
        self.last: Anchored | None = None
        self.since_last = 0  # checkpoints seen since the last anchor
        self.log = structlog.get_logger("ledger.anchor")

    # -- state: the last anchor of this contract, and the checkpoints since ----------------

    def on_assign(self, partitions: Sequence[PartitionRef], ctx: AssignContext) -> None:
        self.last, self.since_last = None, 0
        for _off, rec in read_records(self.bootstrap, self.anchors_topic, 0, self.codec.decode, LEDGER_ANCHOR):
            if rec.get("external_ref") == self.contract and (self.last is None or rec["last_seq"] > self.last.size):
                self.last = Anchored(int(rec["last_seq"]), str(rec["merkle_root"]), int(rec["timestamp"]))
        committed = max((o for o in ctx.committed.values()), default=-1)
        if committed > 0 and self.last is not None:  # checkpoints consumed since the last anchor
            for offset, rec in read_records(self.bootstrap, self.audit_topic, 0, self.codec.decode, "AuditEntry"):
                if offset >= committed:
                    break
                if rec.get("checkpoint") and int(rec["seq"]) > self.last.size:
                    self.since_last += 1

    def on_revoke(self, partitions: Sequence[PartitionRef]) -> None:
        self.last, self.since_last = None, 0

    # -- processing -----------------------------------------------------------------------

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]:
        from projections.audit.note import NoteError, open_checkpoint

        outs: list[OutRecord] = []
        for record in batch:
            value = record.value
            note = value.get("checkpoint")
            if not note:
                continue  # v1 entries: not checkpoints
            try:
                body = open_checkpoint(str(note), self.verifiers)
            except NoteError as exc:
                ctx.dead_letter(record, f"checkpoint not anchored: {exc}")
                continue
            size, root, ts = body.size, body.root.hex(), int(value["timestamp"])
            if self.last is not None and size <= self.last.size:
                continue  # already anchored (or older than the last anchor)
            self.since_last += 1
            due = (
                self.last is None
                or self.since_last >= self.policy.every
                or ts - self.last.timestamp >= self.policy.interval_ms
            )
            if due:
                outs.extend(self._anchor(size, root, ts))
        return outs

    def _anchor(self, size: int, root: str, ts: int) -> list[OutRecord]:
        prev = self.last
        request = self.client.build(
            "call", PLATFORM_AGENT, contract="AuditAnchor", address=self.contract, function="anchor",
            args=["0x" + root, size], tx_id=anchor_tx_id(self.contract, size),
        )
        request["timestamp"] = ts  # deterministic: a replayed batch yields the same bytes
        from processors.ledger.requests import sign_request

        request["signature"] = sign_request(self.client.keys.require(PLATFORM_AGENT), request)
        anchor = {
            "anchor_id": anchor_tx_id(self.contract, size),
            "chain_id": self.client.chain_id,
            "block_number": size,
            "first_seq": prev.size if prev else 0,
            "last_seq": size,
            "tx_count": size - (prev.size if prev else 0),
            "merkle_root": root,
            "prev_anchor_hash": prev.root if prev else None,
            "anchor_hash": _anchor_hash(prev.root if prev else None, root, size),
            "external_ref": self.contract,
            "timestamp": ts,
        }
        self.last, self.since_last = Anchored(size, root, ts), 0
        self.log.info("ledger.anchor", size=size, root=root, contract=self.contract)
        return [
            OutRecord(topic=self.requests_topic, key=self.client.chain_id.encode(), schema=LEDGER_TRANSACTION,
                      value=request),
            OutRecord(topic=self.anchors_topic, key=self.client.chain_id.encode(), schema=LEDGER_ANCHOR, value=anchor),
        ]


# -- verification against the chain (pure) --------------------------------------------------


@dataclass(frozen=True)
class ChainFinding:
    size: int
    message: str


def compare_with_chain(checkpoints: Sequence[tuple[int, bytes]], anchored: Mapping[int, bytes]) -> list[ChainFinding]:
    """Checkpoints (size, root) whose root differs from the root anchored on chain at that size,
    and anchored sizes missing from the checkpoints."""
    findings: list[ChainFinding] = []
    sizes = {size for size, _ in checkpoints}
    for size, root in checkpoints:
        on_chain = anchored.get(size)
        if on_chain is not None and on_chain != root:
            findings.append(ChainFinding(size, f"checkpoint at size {size}: root {root.hex()} differs from the "
                                               f"root anchored on chain {on_chain.hex()}"))
    for size in sorted(set(anchored) - sizes):
        findings.append(ChainFinding(size, f"size {size} is anchored on chain (root {anchored[size].hex()}) "
                                           "but has no checkpoint in the log"))
    return sorted(findings, key=lambda f: f.size)


def anchored_roots(w3: Any, contract: str) -> dict[int, bytes]:
    """Every (tree size -> root) the AuditAnchor contract holds, from its ``Anchored`` events,
    each checked against the contract's storage (``rootAt``)."""
    from processors.ledger.artifacts import artifact

    c = w3.eth.contract(address=w3.to_checksum_address(contract), abi=artifact("AuditAnchor").abi)
    out: dict[int, bytes] = {}
    for event in c.events.Anchored().get_logs(from_block=0):
        size = int(event["args"]["treeSize"])
        out[size] = bytes(c.functions.rootAt(size).call())
    return out
