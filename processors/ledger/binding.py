"""The ledger service's side of a CSP channel binding (processors/services/api.py).

A channel bound to ``ledger`` turns each event into one signed transaction request:

* ``<channel>.<function>.<arg>...`` when the binding names the agent (option ``agent``);
* ``<channel>.<agent>.<function>.<arg>...`` otherwise (the event says who acts).

Options: ``contract`` (artifact name, default ``Agreement``) and ``address`` (a deployed
contract; default: the one this instance deployed). Each argument is JSON when it parses,
else a string. Three functions are special:

* ``deploy`` deploys ``contract`` (request id ``<instance>:deploy``). An Agreement gets the
  option ``parties`` (agents, comma-separated, default ``alice,bob``) and the hash of the
  option ``terms``;
* ``sign`` calls ``accept`` with the agent's EIP-191 signature of that terms hash;
* ``execute`` calls ``execute(<option action, default "execute">, 0x)``.

The receipt comes back as ``<reply_channel>.ok``, ``.reverted`` or ``.refused``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from eth_account.messages import encode_defunct
from web3 import Web3

from processors.ledger.keys import Keystore
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

    def __init__(self) -> None:
        # keystores by (data dir, configured keys): an event on the bridge's path reads no key
        # file and loads no schema registry
        self._keystores: dict[tuple[str, str], Keystore] = {}

    def _keys(self) -> Keystore:
        from infra.settings import Settings
        from processors.ledger.keys import keystore_for

        settings = Settings()
        cache_key = (str(settings.resolved_data_dir()), json.dumps(settings.ledger_keys, sort_keys=True))
        keys = self._keystores.get(cache_key)
        if keys is None:
            keys = self._keystores[cache_key] = keystore_for(settings.resolved_data_dir(), settings.ledger_keys)
        return keys

    def request(self, bound: BoundEvent) -> tuple[str, dict[str, Any]]:
        from processors.ledger.client import DEFAULT_CHAIN, LedgerClient

        options = bound.binding.options
        values = list(bound.values)
        agent = options.get("agent") or (values.pop(0) if values else "")
        if not values:
            raise ValueError(f"event {bound.event!r} names no function for the ledger binding")
        function, args = values[0], [_arg(v) for v in values[1:]]
        keys = self._keys()
        client = LedgerClient("", None, keys, chain_id=options.get("chain", DEFAULT_CHAIN))  # builds only
        contract = options.get("contract", "Agreement")
        deploy_id = f"{bound.instance_id}:deploy"
        terms_hash = bytes(Web3.keccak(text=options.get("terms", "")))
        tx_id = bound.request_id
        if function == "deploy":
            tx_id = deploy_id
            if contract == "Agreement" and not args:
                parties = [keys.create(p.strip()).address for p in options.get("parties", "alice,bob").split(",")]
                args = [parties, "0x" + terms_hash.hex()]
            request = client.build("deploy", agent, contract=contract, args=args, tx_id=tx_id,
                                   instance_id=bound.instance_id, command_id=reply_command_id(tx_id))
            return str(request["chain_id"]), request
        if function == "sign":
            signed = keys.require(agent).sign_message(encode_defunct(primitive=terms_hash))
            function, args = "accept", ["0x" + bytes(signed.signature).hex()]
        elif function == "execute" and not args:
            args = [options.get("action", "execute"), "0x"]
        request = client.build(
            "call", agent, contract=contract, address=options.get("address") or f"tx:{deploy_id}",
            function=function, args=args, tx_id=tx_id, instance_id=bound.instance_id,
            command_id=reply_command_id(tx_id),
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
