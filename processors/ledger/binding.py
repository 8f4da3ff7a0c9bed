"""The ledger service's side of a CSP channel binding (processors/services/api.py).

A channel bound to ``ledger`` turns each event into one signed transaction request:

* ``<channel>.<function>.<arg>...`` when the binding names the agent (option ``agent``);
* ``<channel>.<agent>.<function>.<arg>...`` otherwise (the event says who acts).

Options: ``contract`` (artifact name) and ``address`` (the deployed contract); each
argument is JSON when it parses, else a string. The function ``deploy`` deploys
``contract`` instead of calling it. The receipt comes back as
``<reply_channel>.ok``, ``<reply_channel>.reverted`` or ``<reply_channel>.refused``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from processors.services.api import BoundEvent, ServiceBinding, ServiceReply, reply_command_id, reply_event

REPLY_STATUS = {"SUCCESS": "ok", "REVERTED": "reverted", "REFUSED": "refused", "ERROR": "refused"}


def _arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class LedgerAdapter:
    name = "ledger"
    request_topic = "ledger.transactions"
    result_topic = "ledger.receipts"
    request_schema = "LedgerTransaction"
    result_schema = "LedgerReceipt"

    def request(self, bound: BoundEvent) -> tuple[str, dict[str, Any]]:
        from infra.settings import Settings
        from processors.ledger.client import DEFAULT_CHAIN, LedgerClient
        from processors.ledger.keys import keystore_for
        from schemas.codec import codec_from_settings

        options = bound.binding.options
        values = list(bound.values)
        agent = options.get("agent") or (values.pop(0) if values else "")
        if not values:
            raise ValueError(f"event {bound.event!r} names no function for the ledger binding")
        function, args = values[0], [_arg(v) for v in values[1:]]
        settings = Settings()
        keys = keystore_for(settings.resolved_data_dir(), settings.ledger_keys)
        client = LedgerClient("", codec_from_settings(settings), keys, chain_id=options.get("chain", DEFAULT_CHAIN))
        kind = "deploy" if function == "deploy" else "call"
        request = client.build(
            kind, agent, contract=options.get("contract"),
            address=None if kind == "deploy" else options.get("address"),
            function=None if kind == "deploy" else function, args=args,
            tx_id=bound.request_id, instance_id=bound.instance_id,
            command_id=reply_command_id(bound.request_id),
        )
        return str(request["chain_id"]), request

    def reply(self, binding: ServiceBinding, result: Mapping[str, Any]) -> ServiceReply | None:
        instance = result.get("instance_id")
        if not instance or not binding.reply_channel:
            return None
        status = REPLY_STATUS.get(str(result.get("status")), "refused")
        return ServiceReply(
            instance_id=str(instance),
            event=reply_event(binding.reply_channel, [status]),
            command_id=reply_command_id(str(result["tx_id"])),
        )


ADAPTER = LedgerAdapter()
