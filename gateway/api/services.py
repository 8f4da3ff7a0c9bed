"""The service routes' bodies: one function per route, calling into the service's SDK when present.

Each service is reached through its SDK: the ledger (``Platform.ledger()``), agents
(``Platform.agents``), quantum (``Platform.quantum``). A service whose SDK is not importable
(a slimmed-down deployment) answers 501 naming what is missing.
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


AGENTS = ("gateway.agents", ("Agents", "CollabAgent"))
QUANTUM = ("gateway.quantum_sdk", ("QuantumClient",))
LEDGER = ("processors.ledger.client", ("LedgerClient",))
_NAMES = {AGENTS[0]: "agents", QUANTUM[0]: "quantum", LEDGER[0]: "ledger"}


def status() -> dict[str, str]:
    return {_NAMES[name]: "installed" if installed(name, needs) else "not installed"
            for name, needs in (AGENTS, QUANTUM, LEDGER)}  # fmt: skip


def _bad(what: str, detail: str) -> Problem:
    return Problem(422, "Unprocessable Content", f"{what}: {detail}", kind="bad-request")


# -- agents (gateway/agents.py: the registry on agents.registry, collaboration) ------------


def agents_list(platform: Platform) -> Any:
    _service(*AGENTS, what="GET /api/ai/agents")
    return [{"name": a.name, "model": a.model, "role": a.role, "prompt": a.prompt} for a in platform.agents.all()]


def agents_collaborate(platform: Platform, body: Mapping[str, Any]) -> Any:
    """``{"task": ..., "agents": [{"name", "model", "role"}], "method": consensus|leader|round_robin|debate,
    "rounds": 2}``: generate the protocol, check it, deploy and run it; the result and the full trace."""
    mod = _service(*AGENTS, what="POST /api/ai/collaborate")
    what = "POST /api/ai/collaborate"
    task, agents, method = body.get("task"), body.get("agents"), body.get("method", "consensus")
    if not isinstance(task, str) or not task:
        raise _bad(what, "task must be a non-empty string")
    if not isinstance(agents, list) or not agents or not all(isinstance(a, Mapping) and a.get("name") for a in agents):
        raise _bad(what, "agents must be a list of {name, model, role}")
    team = [mod.CollabAgent(str(a["name"]), str(a.get("model") or "default"), str(a.get("role") or ""))
            for a in agents]  # fmt: skip
    try:
        result = platform.agents.collaborate(task, team, str(method), rounds=int(body.get("rounds", 2)),
                                             timeout_s=float(body.get("timeout_s", 300)))  # fmt: skip
    except (ValueError, RuntimeError) as exc:  # unknown method, a protocol failing its checks, a refusal
        raise _bad(what, str(exc)) from None
    return result.as_dict()


# -- quantum (gateway/quantum_sdk.py) ------------------------------------------------------


def quantum_entanglement(platform: Platform, body: Mapping[str, Any]) -> Any:
    """``{"agents": ["alice", "bob"], "noise": {"depolarizing": 0.01}, "shots": 1024}``."""
    _service(*QUANTUM, what="POST /api/quantum/entanglement")
    agents = body.get("agents") or [a for a in (body.get("agent_a"), body.get("agent_b")) if a]
    if not isinstance(agents, list) or len(agents) < 2:
        raise _bad("POST /api/quantum/entanglement", "agents must name at least two agents")
    return platform.quantum.entangle(*[str(a) for a in agents], noise=body.get("noise"),
                                     shots=int(body.get("shots", 1024)), timeout_s=60.0)  # fmt: skip


def quantum_teleportation(platform: Platform, body: Mapping[str, Any]) -> Any:
    """``{"sender": "alice", "receiver": "bob", "state": {"amplitudes": [...], "phases": [...]}}``."""
    _service(*QUANTUM, what="POST /api/quantum/teleportation")
    sender, receiver, state = body.get("sender"), body.get("receiver"), body.get("state")
    if not sender or not receiver or not isinstance(state, Mapping):
        raise _bad("POST /api/quantum/teleportation", "needs sender, receiver and state {amplitudes, phases}")
    return platform.quantum.teleport(str(sender), str(receiver), state, noise=body.get("noise"),
                                     shots=int(body.get("shots", 1024)), timeout_s=60.0)  # fmt: skip


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
