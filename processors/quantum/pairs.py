"""The entangled pairs the processor holds: a fold over ``quantum.results``.

An OK ``entangle`` result of two agents records a pair (``pair_id``) and its state (the result's
density matrix); a ``teleport`` result that names a ``pair_id`` consumed it. The fold uses sets, so it does not depend on the order in which
partitions are read. Every answered ``request_id`` is remembered (requests are idempotent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def pair_id_for(request_id: str) -> str:
    return f"pair:{request_id}"


@dataclass
class PairRegistry:
    created: dict[str, tuple[str, str]] = field(default_factory=dict)  # pair id -> agents
    # pair id -> (the agent holding qubit 0, its 4x4 density matrix in Aer's little-endian order)
    states: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    consumed: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)  # every agent ever entangled
    answered: set[str] = field(default_factory=set)

    def apply(self, result: Mapping[str, Any]) -> None:
        """Fold one ``QuantumResult``."""
        self.answered.add(result["request_id"])
        op = result.get("operation")
        pid = result.get("pair_id")
        if op == "entangle" and result.get("status") == "OK":
            agents = list(result.get("agents") or ())
            self.agents.update(agents)
            if pid and len(agents) == 2:
                self.add(pid, (agents[0], agents[1]), _density(result))
        elif op == "teleport" and pid:
            self.consumed.add(pid)

    def fold(self, results: Iterable[Mapping[str, Any]]) -> PairRegistry:
        for r in results:
            self.apply(r)
        return self

    def available(self, a: str, b: str) -> list[str]:
        key = pair_key(a, b)
        return sorted(p for p, k in self.created.items() if k == key and p not in self.consumed)

    def take(self, a: str, b: str) -> tuple[str, np.ndarray | None] | None:
        """Consume the smallest-id available pair between a and b: (its id, its state), or None."""
        free = self.available(a, b)
        if not free:
            return None
        pid = free[0]
        self.consumed.add(pid)
        held = self.states.get(pid)
        if held is None:
            return pid, None
        first, rho = held
        if first != a:  # the sender holds qubit 0 of the pair: swap the halves
            rho = _SWAP @ rho @ _SWAP
        return pid, rho

    def add(self, pid: str, agents: tuple[str, ...], state: np.ndarray | None = None) -> None:
        self.agents.update(agents)
        if len(agents) == 2:
            self.created[pid] = pair_key(agents[0], agents[1])
            if state is not None:
                self.states[pid] = (agents[0], state)


_SWAP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=complex)


def _density(result: Mapping[str, Any]) -> np.ndarray | None:
    """The 4x4 density matrix an entangle result carries (row-major re/im), if any."""
    re, im = result.get("density_matrix_re") or [], result.get("density_matrix_im") or []
    if len(re) != 16 or len(im) != 16:
        return None
    return (np.asarray(re, dtype=float) + 1j * np.asarray(im, dtype=float)).reshape(4, 4)
