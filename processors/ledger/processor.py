"""The ledger processor: ``ledger.transactions`` → the chain → ``ledger.receipts``.

For each batch of requests, on the transactional engine:

1. Each request is checked: its shape, the agent's key, and the agent's EIP-191
   signature over the canonical request. A failing request gets a REFUSED receipt naming
   the reason, and nothing is submitted.
2. The transaction is built (gas estimated: a call that would revert gets a REVERTED
   receipt with the reason, and no nonce is used), given the account's next nonce and
   signed with the agent's key.
3. **Write-ahead journal.** Every signed transaction of the batch is produced to
   ``ledger.journal`` and flushed *before* any is sent.
4. The transactions are sent in nonce order, their receipts awaited, and one receipt
   record per request goes out in the engine's transaction with the input offsets.

A request whose ``tx_id`` is already in the journal is never signed again: its journaled
bytes are re-sent (a chain that already has them ignores them) and its receipt is read
from the chain. A processor killed anywhere in the batch therefore never submits a
request twice, and a request sent twice (the same ``tx_id``) gets the same receipt.
Nonces come from the chain's pending count and the journal, whichever is higher.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from confluent_kafka import Producer

from processors.ledger.chain import Chain, RevertedError, logs_json
from processors.ledger.keys import KeyError_, Keystore
from processors.ledger.requests import RequestError, validate, verify_signature
from schemas.records import LEDGER_INTENT, LEDGER_RECEIPT
from streams.clients import producer_config
from streams.engine import AssignContext, BatchContext, Codec, PartitionRef, ProcessorBase
from streams.reader import read_records
from streams.records import InRecord, OutRecord

REQUESTS_TOPIC = "ledger.transactions"
RECEIPTS_TOPIC = "ledger.receipts"
JOURNAL_TOPIC = "ledger.journal"


@dataclass(frozen=True)
class Intent:
    tx_id: str
    sender: str
    nonce: int
    tx_hash: str
    raw_tx: str
    chain: str


class LedgerProcessor(ProcessorBase):
    name = "ledger"
    decode_inputs = True

    def __init__(
        self,
        bootstrap: str,
        codec: Codec,
        chain: Chain,
        keys: Keystore,
        *,
        requests_topic: str = REQUESTS_TOPIC,
        receipts_topic: str = RECEIPTS_TOPIC,
        journal_topic: str = JOURNAL_TOPIC,
        crash_after_send: int = 0,
    ) -> None:
        self.bootstrap = bootstrap
        self.codec = codec
        self.chain = chain
        self.keys = keys
        self.inputs = (requests_topic,)
        self.receipts_topic = receipts_topic
        self.journal_topic = journal_topic
        self.journal: dict[str, Intent] = {}
        self.next_nonce: dict[str, int] = {}
        self._journal_producer: Producer | None = None
        self.log = structlog.get_logger("ledger")
        self.submitted = 0  # transactions sent for the first time by this process
        # Fault injection for the crash tests (CSP_LEDGER_CRASH_AFTER_SEND=N): the process
        # dies (SIGKILL) right after its N-th batch was sent, before its receipts commit.
        self.crash_after_send = crash_after_send
        self._batches_sent = 0

    # -- state ----------------------------------------------------------------------------

    def on_assign(self, partitions: Sequence[PartitionRef], ctx: AssignContext) -> None:
        self.journal.clear()
        self.next_nonce.clear()
        for _offset, rec in read_records(self.bootstrap, self.journal_topic, 0, self.codec.decode, LEDGER_INTENT):
            if rec["chain"] != self.chain.key:
                continue  # a journal of another chain (an earlier in-process chain)
            self.journal[rec["tx_id"]] = Intent(
                rec["tx_id"], rec["sender"], int(rec["nonce"]), rec["tx_hash"], rec["raw_tx"], rec["chain"]
            )
        self.log.info("ledger.journal_loaded", intents=len(self.journal), chain=self.chain.key)

    def on_revoke(self, partitions: Sequence[PartitionRef]) -> None:
        self.journal.clear()
        self.next_nonce.clear()

    def _nonce_for(self, sender: str) -> int:
        if sender not in self.next_nonce:
            journaled = [i.nonce for i in self.journal.values() if i.sender == sender]
            self.next_nonce[sender] = max(self.chain.pending_nonce(sender), max(journaled, default=-1) + 1)
        return self.next_nonce[sender]

    def _producer(self) -> Producer:
        if self._journal_producer is None:
            self._journal_producer = Producer(producer_config(self.bootstrap))
        return self._journal_producer

    # -- processing -----------------------------------------------------------------------

    def process(self, batch: Sequence[InRecord], ctx: BatchContext) -> Iterable[OutRecord]:
        outs: dict[int, OutRecord] = {}
        to_send: list[tuple[int, Mapping[str, Any], Intent, bool]] = []  # (index, request, intent, new)
        new_intents: list[Intent] = []
        in_batch: dict[str, Intent] = {}
        for index, record in enumerate(batch):
            request: Mapping[str, Any] = record.value
            tx_id = str(request["tx_id"])
            try:
                validate(request)
                account = self.keys.require(str(request["agent"]))
                verify_signature(request, account.address)
            except (RequestError, KeyError_, ValueError) as exc:
                outs[index] = self._receipt(request, "REFUSED", reason=str(exc))
                continue
            intent = self.journal.get(tx_id) or in_batch.get(tx_id)
            if intent is not None:
                to_send.append((index, request, intent, False))
                continue
            try:
                request = self._resolve_address(request)
            except RequestError as exc:
                outs[index] = self._receipt(request, "REFUSED", reason=str(exc), sender=account.address)
                continue
            self.chain.ensure_funded(account.address)
            nonce = self._nonce_for(account.address)
            try:
                tx = self.chain.build(request, account.address, nonce)
            except RevertedError as exc:
                outs[index] = self._receipt(request, "REVERTED", reason=str(exc), sender=account.address)
                continue
            except RequestError as exc:
                outs[index] = self._receipt(request, "REFUSED", reason=str(exc), sender=account.address)
                continue
            signed = account.sign_transaction(tx)
            intent = Intent(
                tx_id=tx_id,
                sender=account.address,
                nonce=nonce,
                tx_hash="0x" + bytes(signed.hash).hex(),
                raw_tx="0x" + bytes(signed.raw_transaction).hex(),
                chain=self.chain.key,
            )
            self.next_nonce[account.address] = nonce + 1
            in_batch[tx_id] = intent
            new_intents.append(intent)
            to_send.append((index, request, intent, True))
        self._write_journal(new_intents, batch)
        for intent in new_intents:
            self.journal[intent.tx_id] = intent
        sent: set[str] = set()
        for _index, _request, intent, new in sorted(to_send, key=lambda item: (item[2].sender, item[2].nonce)):
            if intent.tx_hash in sent:
                continue
            self.chain.send_raw(bytes.fromhex(intent.raw_tx[2:]), intent.tx_hash)
            sent.add(intent.tx_hash)
            if new:
                self.submitted += 1
        if sent:
            self._batches_sent += 1
            if self.crash_after_send and self._batches_sent >= self.crash_after_send:
                import os
                import signal

                os.kill(os.getpid(), signal.SIGKILL)
        for index, request, intent, _new in to_send:
            receipt = self.chain.wait_receipt(intent.tx_hash)
            info = self.chain.describe(receipt, request)
            outs[index] = self._receipt(
                request, info.status, reason=info.reason, sender=intent.sender, nonce=intent.nonce,
                tx_hash=info.tx_hash, block_number=info.block_number, gas_used=info.gas_used,
                contract_address=info.contract_address, logs=logs_json(info),
            )
        return [outs[i] for i in sorted(outs)]

    def _resolve_address(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        """``address = "tx:<tx_id>"``: the contract that the journaled request ``tx_id`` deployed."""
        address = str(request.get("address") or "")
        if not address.startswith("tx:"):
            return request
        ref = address[3:]
        intent = self.journal.get(ref)
        receipt = self.chain.receipt(intent.tx_hash) if intent is not None else None
        deployed = receipt.get("contractAddress") if receipt is not None else None
        if not deployed:
            raise RequestError(f"address {address!r}: request {ref!r} deployed no contract (yet)")
        return {**request, "address": str(deployed)}

    def _write_journal(self, intents: Sequence[Intent], batch: Sequence[InRecord]) -> None:
        if not intents:
            return
        producer = self._producer()
        now = batch[-1].timestamp if batch else int(time.time() * 1000)
        for intent in intents:
            value = self.codec.encode(LEDGER_INTENT, {
                "tx_id": intent.tx_id, "sender": intent.sender, "nonce": intent.nonce,
                "tx_hash": intent.tx_hash, "raw_tx": intent.raw_tx, "chain": intent.chain, "timestamp": now,
            })
            producer.produce(self.journal_topic, key=intent.tx_id.encode(), value=value, partition=0)
        if producer.flush(30):
            raise RuntimeError("ledger journal: could not flush the write-ahead records within 30s")

    def _receipt(self, request: Mapping[str, Any], status: str, **fields: Any) -> OutRecord:
        value: dict[str, Any] = {
            "tx_id": request["tx_id"],
            "chain_id": request.get("chain_id") or "",
            "agent": request.get("agent") or "",
            "status": status,
            "reason": fields.get("reason"),
            "tx_hash": fields.get("tx_hash"),
            "block_number": fields.get("block_number"),
            "gas_used": fields.get("gas_used"),
            "nonce": fields.get("nonce"),
            "sender": fields.get("sender"),
            "contract_address": fields.get("contract_address"),
            "logs_json": fields.get("logs", "[]"),
            "instance_id": request.get("instance_id"),
            "command_id": request.get("command_id"),
            "timestamp": request["timestamp"],
        }
        return OutRecord(topic=self.receipts_topic, key=str(request["tx_id"]).encode(), schema=LEDGER_RECEIPT, value=value)

    def close(self) -> None:
        if self._journal_producer is not None:
            self._journal_producer.flush(10)
