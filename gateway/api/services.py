"""The service routes' bodies: one function per route, calling into the service's SDK when present.

The ledger is wired (``Platform.ledger()``, docs/ledger.md). Agents and quantum are
detected by import: until ``processors.agents`` / ``processors.quantum`` expose what a
route needs, the route answers 501 naming what is missing. Wiring one is a change here only.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from gateway.api.problems import Problem
from gateway.sdk import Platform


def _service(module: str, needs: Sequence[str], what: str) -> ModuleType:
    """``module`` when it imports and has every name of ``needs``; a 501 Problem otherwise."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise Problem(501, "Not Implemented", f"{what}: the service is not installed ({module} is not importable)",
                      kind="service-not-installed", extra={"service": module}) from None  # fmt: skip
    missing = [n for n in needs if not hasattr(mod, n)]
    if missing:
        raise Problem(501, "Not Implemented",
                      f"{what}: the service is not installed ({module} does not expose {', '.join(missing)})",
                      kind="service-not-installed", extra={"service": module})  # fmt: skip
    return mod


def installed(module: str, needs: Sequence[str]) -> bool:
    try:
        _service(module, needs, module)
    except Problem:
        return False
    return True


AGENTS = ("processors.agents", ("list_agents", "collaborate"))
QUANTUM = ("processors.quantum", ("entanglement", "teleportation"))
LEDGER = ("processors.ledger.client", ("LedgerClient",))


def status() -> dict[str, str]:
    return {name.split(".")[1]: "installed" if installed(name, needs) else "not installed"
            for name, needs in (AGENTS, QUANTUM, LEDGER)}  # fmt: skip


# -- agents ------------------------------------------------------------------------------


def agents_list(platform: Platform) -> Any:
    mod = _service(*AGENTS, what="GET /api/ai/agents")
    return mod.list_agents(platform)


def agents_collaborate(platform: Platform, body: Mapping[str, Any]) -> Any:
    mod = _service(*AGENTS, what="POST /api/ai/collaborate")
    return mod.collaborate(platform, dict(body))


# -- quantum -----------------------------------------------------------------------------


def quantum_entanglement(platform: Platform, body: Mapping[str, Any]) -> Any:
    mod = _service(*QUANTUM, what="POST /api/quantum/entanglement")
    return mod.entanglement(platform, dict(body))


def quantum_teleportation(platform: Platform, body: Mapping[str, Any]) -> Any:
    mod = _service(*QUANTUM, what="POST /api/quantum/teleportation")
    return mod.teleportation(platform, dict(body))


# -- ledger ------------------------------------------------------------------------------


def _ledger_submit(platform: Platform, kind: str, agent: str, wait_s: float, **kwargs: Any) -> tuple[int, Any]:
    from processors.ledger.keys import KeyError_
    from processors.ledger.requests import RequestError

    _service(*LEDGER, what="the ledger")
    client = platform.ledger()
    try:
        tx_id = client.send(client.build(kind, agent, **kwargs))
    except (RequestError, KeyError_, ValueError) as exc:
        raise Problem(422, "Invalid Request", str(exc), kind="ledger-request") from None
    if wait_s <= 0:
        return 202, {"tx_id": tx_id, "status": "PENDING"}
    receipt = client.receipt(tx_id, timeout_s=wait_s)
    if receipt is None:
        return 202, {"tx_id": tx_id, "status": "PENDING",
                     "detail": f"no receipt within {wait_s:g}s: is a ledger worker running (csp ledger worker)? "
                               "The request stays on ledger.transactions."}  # fmt: skip
    from gateway.api.backend import jsonable

    return 200, jsonable(receipt)


def ledger_deploy(platform: Platform, contract: str, args: Sequence[Any], agent: str, wait_s: float) -> tuple[int, Any]:
    from processors.ledger.artifacts import UnknownContractError, artifact

    try:
        artifact(contract)
    except UnknownContractError as exc:
        raise Problem(422, "Invalid Request", str(exc), kind="unknown-contract") from None
    return _ledger_submit(platform, "deploy", agent, wait_s, contract=contract, args=list(args))


def ledger_execute(
    platform: Platform, contract_id: str, function: str, args: Sequence[Any], agent: str, wait_s: float
) -> tuple[int, Any]:
    name, sep, address = contract_id.partition("@")
    if not sep or not address:
        raise Problem(422, "Invalid Request", f"contract {contract_id!r}: use NAME@ADDRESS, e.g. Agreement@0x5FbD...",
                      kind="ledger-request")  # fmt: skip
    return _ledger_submit(platform, "call", agent, wait_s, contract=name, address=address, function=function,
                          args=list(args))  # fmt: skip


def ledger_contracts() -> list[str]:
    from processors.ledger.artifacts import contract_names

    return contract_names()
