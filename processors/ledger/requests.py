"""The ledger request format: what an agent signs, and how the processor checks it (pure).

An agent signs the canonical bytes of its request (sorted-key JSON of the fields below)
with EIP-191 (``personal_sign``). The processor recovers the signer and compares it with
the agent's address before it submits anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

KINDS = ("deploy", "call", "transfer")
SIGNED_FIELDS = (
    "tx_id", "chain_id", "agent", "kind", "contract", "address", "function", "args_json", "value_wei", "gas",
)


class RequestError(ValueError):
    """A request that cannot be submitted, with the reason."""


def canonical_bytes(request: Mapping[str, Any]) -> bytes:
    body = {name: request.get(name) for name in SIGNED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign_request(account: LocalAccount, request: Mapping[str, Any]) -> str:
    signed = account.sign_message(encode_defunct(canonical_bytes(request)))
    return "0x" + bytes(signed.signature).hex()


def recover_signer(request: Mapping[str, Any]) -> str:
    signature = request.get("signature")
    if not signature:
        raise RequestError("unsigned request: the agent's signature is missing")
    try:
        address: str = Account.recover_message(encode_defunct(canonical_bytes(request)), signature=signature)
    except Exception as exc:  # malformed signature bytes
        raise RequestError(f"malformed signature: {exc}") from None
    return address


def verify_signature(request: Mapping[str, Any], expected_address: str) -> None:
    signer = recover_signer(request)
    if signer.lower() != expected_address.lower():
        raise RequestError(
            f"signature does not match agent {request.get('agent')!r}: signed by {signer}, "
            f"the agent's address is {expected_address}"
        )


def parse_args(request: Mapping[str, Any]) -> list[Any]:
    try:
        args = json.loads(request.get("args_json") or "[]")
    except json.JSONDecodeError as exc:
        raise RequestError(f"args_json is not JSON: {exc}") from None
    if not isinstance(args, list):
        raise RequestError("args_json must be a JSON array")
    return args


def validate(request: Mapping[str, Any]) -> None:
    """Shape checks that need no chain; raises RequestError naming what is wrong."""
    kind = request.get("kind")
    if kind not in KINDS:
        raise RequestError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    if not request.get("agent"):
        raise RequestError("request has no agent")
    if kind == "deploy" and not request.get("contract"):
        raise RequestError("deploy needs a contract name")
    if kind == "call" and not (request.get("contract") and request.get("address") and request.get("function")):
        raise RequestError("call needs contract, address and function")
    if kind == "transfer" and not request.get("address"):
        raise RequestError("transfer needs an address")
    try:
        value = int(request.get("value_wei") or "0")
    except ValueError:
        raise RequestError(f"value_wei {request.get('value_wei')!r} is not an integer") from None
    if value < 0:
        raise RequestError("value_wei must be >= 0")
    parse_args(request)
