"""Client side of the ledger service: signed requests in, receipts out (over Kafka only).

Used by the SDK (``gateway.sdk.Platform.ledger``) and ``csp ledger``. A request is signed
here with the agent's key (EIP-191 over its canonical bytes) and produced to
``ledger.transactions``; the receipt is read back from ``ledger.receipts``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from processors.ledger.keys import Keystore
from processors.ledger.processor import RECEIPTS_TOPIC, REQUESTS_TOPIC
from processors.ledger.requests import sign_request, validate
from schemas.codec import Codec
from schemas.records import LEDGER_TRANSACTION
from streams.clients import consume_available, consumer_config, producer_config

DEFAULT_CHAIN = "evm"


class LedgerClient:
    def __init__(self, bootstrap: str, codec: Codec | None, keys: Keystore, chain_id: str = DEFAULT_CHAIN) -> None:
        """``codec`` None: a client that only builds and signs requests (no Kafka)."""
        self.bootstrap = bootstrap
        self.codec = codec
        self.keys = keys
        self.chain_id = chain_id
        self._producer: Producer | None = None

    def build(
        self,
        kind: str,
        agent: str,
        *,
        contract: str | None = None,
        address: str | None = None,
        function: str | None = None,
        args: Sequence[Any] = (),
        value_wei: int = 0,
        gas: int | None = None,
        tx_id: str | None = None,
        sign: bool = True,
        instance_id: str | None = None,
        command_id: str | None = None,
    ) -> dict[str, Any]:
        """A request record, signed with ``agent``'s key unless ``sign`` is False."""
        request: dict[str, Any] = {
            "tx_id": tx_id or uuid.uuid4().hex,
            "chain_id": self.chain_id,
            "agent": agent,
            "kind": kind,
            "contract": contract,
            "address": address,
            "function": function,
            "args_json": json.dumps(list(args)),
            "value_wei": str(value_wei),
            "gas": gas,
            "signature": None,
            "instance_id": instance_id,
            "command_id": command_id,
            "timestamp": int(time.time() * 1000),
        }
        validate(request)
        if sign:
            request["signature"] = sign_request(self.keys.require(agent), request)
        return request

    def _codec(self) -> Codec:
        if self.codec is None:
            raise RuntimeError("this LedgerClient only builds requests (no codec): it cannot reach Kafka")
        return self.codec

    def send(self, request: dict[str, Any]) -> str:
        if self._producer is None:
            self._producer = Producer(producer_config(self.bootstrap))
        value = self._codec().encode(LEDGER_TRANSACTION, request)
        self._producer.produce(REQUESTS_TOPIC, key=str(request["chain_id"]).encode(), value=value)
        if self._producer.flush(30):
            raise TimeoutError("could not produce the ledger request within 30s")
        return str(request["tx_id"])

    def submit(self, kind: str, agent: str, **kwargs: Any) -> str:
        return self.send(self.build(kind, agent, **kwargs))

    def receipts(self, timeout_s: float = 5.0) -> Iterator[dict[str, Any]]:
        """Every receipt on the topic, from the beginning, until ``timeout_s`` of quiet."""
        return self._scan(idle_s=timeout_s, total_s=None)

    def receipt(self, tx_id: str, timeout_s: float = 60.0) -> dict[str, Any] | None:
        """The receipt of ``tx_id``, waiting up to ``timeout_s`` for it."""
        return next((r for r in self._scan(idle_s=None, total_s=timeout_s) if r["tx_id"] == tx_id), None)

    def _scan(self, *, idle_s: float | None, total_s: float | None) -> Iterator[dict[str, Any]]:
        conf = consumer_config(self.bootstrap, f"csp-ledger-{uuid.uuid4().hex}", **{"enable.partition.eof": False})
        consumer = Consumer(conf)
        try:
            consumer.assign([TopicPartition(RECEIPTS_TOPIC, 0, 0)])
            deadline = time.monotonic() + (total_s if total_s is not None else float("inf"))
            quiet_until = time.monotonic() + (idle_s if idle_s is not None else float("inf"))
            while time.monotonic() < min(deadline, quiet_until):
                for msg in consume_available(consumer, 1000, 0.2):
                    raw = msg.value()
                    if msg.error() is not None or raw is None:
                        continue
                    _name, record = self._codec().decode(raw)
                    if idle_s is not None:
                        quiet_until = time.monotonic() + idle_s
                    yield record
        finally:
            consumer.close()
