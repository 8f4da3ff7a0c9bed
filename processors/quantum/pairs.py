"""The entangled pairs the processor holds: a fold over ``quantum.results``.

An OK ``entangle`` result of two agents records a pair (``pair_id``); a ``teleport`` result that
names a ``pair_id`` consumed it. The fold uses sets, so it does not depend on the order in which
partitions are read. Every answered ``request_id`` is remembered (requests are idempotent).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def pair_id_for(request_id: str) -> str:
    return f"pair:{request_id}"


@dataclass
class PairRegistry:
    created: dict[str, tuple[str, str]] = field(default_factory=dict)  # pair id -> agents
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
                self.created[pid] = pair_key(agents[0], agents[1])
        elif op == "teleport" and pid and result.get("status") == "OK":
            self.consumed.add(pid)

    def fold(self, results: Iterable[Mapping[str, Any]]) -> PairRegistry:
        for r in results:
            self.apply(r)
        return self

    def available(self, a: str, b: str) -> list[str]:
        key = pair_key(a, b)
        return sorted(p for p, k in self.created.items() if k == key and p not in self.consumed)

    def take(self, a: str, b: str) -> str | None:
        """Consume the oldest-named available pair between a and b (None: no pair)."""
        free = self.available(a, b)
        if not free:
            return None
        self.consumed.add(free[0])
        return free[0]

    def add(self, pid: str, agents: tuple[str, ...]) -> None:
        self.agents.update(agents)
        if len(agents) == 2:
            self.created[pid] = pair_key(agents[0], agents[1])
