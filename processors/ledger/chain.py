"""The EVM chain through web3: in-process eth-tester (py-evm) or any JSON-RPC node.

``CSP_WEB3_PROVIDER_URL`` unset: an in-process ``EthereumTesterProvider`` chain, which
lives as long as the process (its ``key`` is new each time, so a journal written against
an earlier in-process chain is not mistaken for this one). Set it to ``http://...`` for a
node (anvil, geth, a testnet endpoint); its key is ``<chain id>:<genesis hash>``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_typing import ChecksumAddress
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound
from web3.logs import DISCARD
from web3.types import Wei

from processors.ledger.artifacts import artifact
from processors.ledger.requests import RequestError, parse_args

TRANSFER_GAS = 21_000
DEV_FUNDING_WEI = 10**20  # 100 ETH for an agent on a development chain
DEV_MIN_BALANCE_WEI = 10**18


class RevertedError(RuntimeError):
    """A transaction would revert (found while estimating gas), with the reason."""


@dataclass(frozen=True)
class ReceiptInfo:
    status: str  # SUCCESS | REVERTED
    tx_hash: str
    block_number: int
    gas_used: int
    contract_address: str | None
    logs: list[dict[str, Any]]
    reason: str | None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _is_revert(exc: BaseException) -> bool:
    """A revert, as web3 reports it from a node (ContractLogicError) or eth-tester."""
    return isinstance(exc, ContractLogicError) or type(exc).__name__ == "TransactionFailed"


def _revert_message(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return str(message).removeprefix("execution reverted: ")


class Chain:
    def __init__(self, w3: Web3, key: str, dev: bool) -> None:
        self.w3 = w3
        self.key = key
        self.dev = dev  # funded unlocked accounts available: fund agents on demand
        self.chain_id = int(w3.eth.chain_id)
        self.gas_price = int(w3.eth.gas_price)
        self._funded: set[str] = set()

    @classmethod
    def connect(cls, provider_url: str | None = None, timeout_s: float = 30.0) -> Chain:
        if not provider_url:
            from web3 import EthereumTesterProvider

            w3 = Web3(EthereumTesterProvider())
            return cls(w3, f"eth-tester:{uuid.uuid4().hex}", dev=True)
        w3 = Web3(Web3.HTTPProvider(provider_url, request_kwargs={"timeout": timeout_s}))
        if not w3.is_connected():
            raise ConnectionError(f"no EVM JSON-RPC node answers at {provider_url}")
        genesis = w3.eth.get_block(0)["hash"]
        dev = bool(w3.eth.accounts)
        return cls(w3, f"{int(w3.eth.chain_id)}:{bytes(genesis).hex()}", dev=dev)

    # -- accounts -------------------------------------------------------------------------

    def pending_nonce(self, address: str) -> int:
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(address), "pending"))

    def ensure_funded(self, address: str) -> None:
        """On a development chain, top up an agent's account from an unlocked account."""
        if not self.dev:
            return
        address = Web3.to_checksum_address(address)
        if address in self._funded:
            return
        if self.w3.eth.get_balance(address) >= DEV_MIN_BALANCE_WEI:
            self._funded.add(address)
            return
        funder = self.w3.eth.accounts[0]
        tx_hash = self.w3.eth.send_transaction({"from": funder, "to": address, "value": Wei(DEV_FUNDING_WEI)})
        self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        self._funded.add(address)

    # -- transactions ---------------------------------------------------------------------

    def build(self, request: Mapping[str, Any], sender: str, nonce: int) -> dict[str, Any]:
        """The unsigned transaction of ``request`` (estimating gas; RevertedError if it would revert)."""
        kind = request["kind"]
        value = int(request.get("value_wei") or "0")
        base: dict[str, Any] = {
            "from": Web3.to_checksum_address(sender),
            "nonce": nonce,
            "gasPrice": self.gas_price,
            "chainId": self.chain_id,
            "value": value,
        }
        if kind == "transfer":
            return {**base, "to": self._address(request["address"]), "gas": int(request.get("gas") or TRANSFER_GAS)}
        args = parse_args(request)
        art = artifact(str(request["contract"]))
        try:
            if kind == "deploy":
                fn: Any = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(*args)
            else:
                contract = self.w3.eth.contract(address=self._address(request["address"]), abi=art.abi)
                name = str(request["function"])
                if not any(item.get("name") == name and item.get("type") == "function" for item in art.abi):
                    raise RequestError(f"contract {art.name} has no function {name!r}")
                fn = contract.functions[name](*args)
            gas = request.get("gas")
            if gas is None:
                gas = int(fn.estimate_gas({"from": base["from"], "value": value}) * 1.2) + 10_000
            tx: dict[str, Any] = fn.build_transaction({**base, "gas": int(gas)})
        except RequestError:
            raise
        except Exception as exc:
            if _is_revert(exc):
                raise RevertedError(_revert_message(exc)) from None
            if isinstance(exc, TypeError | ValueError):  # web3's argument validation
                raise RequestError(f"arguments do not fit the ABI: {exc}") from None
            raise
        return tx

    def _address(self, value: Any) -> ChecksumAddress:
        try:
            return Web3.to_checksum_address(str(value))
        except ValueError:
            raise RequestError(f"{value!r} is not an address") from None

    def send_raw(self, raw_tx: bytes, tx_hash: str) -> None:
        """Send a signed transaction; resending one the chain already has is not an error."""
        try:
            self.w3.eth.send_raw_transaction(raw_tx)
        except Exception:
            if self.receipt(tx_hash) is None and not self._known(tx_hash):
                raise

    def _known(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return True

    def receipt(self, tx_hash: str) -> Any | None:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def wait_receipt(self, tx_hash: str, timeout_s: float = 60.0) -> Any:
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s, poll_latency=0.05)  # type: ignore[arg-type]

    def describe(self, receipt: Any, request: Mapping[str, Any]) -> ReceiptInfo:
        status = "SUCCESS" if int(receipt["status"]) == 1 else "REVERTED"
        reason = None if status == "SUCCESS" else self._mined_revert_reason(receipt)
        logs: list[dict[str, Any]] = []
        contract_name = request.get("contract")
        if contract_name:
            art = artifact(str(contract_name))
            contract = self.w3.eth.contract(abi=art.abi)
            for item in art.abi:
                if item.get("type") != "event":
                    continue
                for event in contract.events[item["name"]]().process_receipt(receipt, errors=DISCARD):
                    logs.append({"event": event["event"], "address": event["address"],
                                 "args": _jsonable(dict(event["args"]))})
        address = receipt.get("contractAddress")
        return ReceiptInfo(
            status=status,
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            contract_address=str(address) if address else None,
            logs=logs,
            reason=reason,
        )

    def _mined_revert_reason(self, receipt: Any) -> str:
        """Replay a reverted transaction as a call at its block to read the reason."""
        tx = self.w3.eth.get_transaction(receipt["transactionHash"])
        call = {"from": tx["from"], "to": tx.get("to"), "data": tx["input"], "value": tx["value"], "gas": tx["gas"]}
        try:
            self.w3.eth.call(call, block_identifier=int(receipt["blockNumber"]) - 1)  # type: ignore[arg-type]
        except Exception as exc:
            return _revert_message(exc) if _is_revert(exc) else f"reverted ({exc})"
        return "reverted (no reason given)"


def logs_json(info: ReceiptInfo) -> str:
    return json.dumps(info.logs, sort_keys=True)
