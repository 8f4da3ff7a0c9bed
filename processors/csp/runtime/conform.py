"""Conformance of recorded traces to a specification (traces refinement on the recorded traces), pure.

A recorded trace conforms to ``SPEC`` when it is a trace of ``SPEC``: the
visible events (τ removed, ✓ kept) can be followed in the specification's
LTS, whose internal choices are explored together (subset simulation over
τ-closures). The first event the specification cannot perform is the
violation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from processors.csp.semantics.lts import LTS, TAU, TICK_NAME


@dataclass(frozen=True)
class Violation:
    instance_id: str
    trace: tuple[str, ...]  # the recorded visible trace
    index: int  # position of the first event SPEC cannot perform
    allowed: tuple[str, ...]  # what SPEC could do there

    def __str__(self) -> str:
        ok = ", ".join(self.trace[: self.index])
        bad = self.trace[self.index]
        allowed = ", ".join(self.allowed) or "nothing"
        return f"{self.instance_id}: <{ok}{', ' if ok else ''}{bad} ...>: after <{ok}> the spec allows {{{allowed}}}, not {bad}"


class SpecAutomaton:
    """Subset simulation of an LTS on visible events."""

    def __init__(self, lts: LTS) -> None:
        self.lts = lts
        self.index = lts.event_index()
        self._closure: dict[frozenset[int], frozenset[int]] = {}

    def closure(self, states: frozenset[int]) -> frozenset[int]:
        got = self._closure.get(states)
        if got is not None:
            return got
        seen = set(states)
        stack = list(states)
        while stack:
            s = stack.pop()
            for lab, t in self.lts.successors(s):
                if lab == TAU and t not in seen:
                    seen.add(t)
                    stack.append(t)
        got = self._closure[states] = frozenset(seen)
        return got

    def initial(self) -> frozenset[int]:
        return self.closure(frozenset({self.lts.initial}))

    def step(self, states: frozenset[int], event: str) -> frozenset[int]:
        lab = self.index.get(event)
        if lab is None:
            return frozenset()
        nxt = {t for s in states for (l2, t) in self.lts.successors(s) if l2 == lab}
        return self.closure(frozenset(nxt)) if nxt else frozenset()

    def allowed(self, states: frozenset[int]) -> tuple[str, ...]:
        names = {self.lts.events[lab] for s in states for (lab, _t) in self.lts.successors(s) if lab != TAU}
        return tuple(sorted(names))

    def check(self, instance_id: str, trace: Sequence[str]) -> Violation | None:
        cur = self.initial()
        for i, ev in enumerate(trace):
            nxt = self.step(cur, ev)
            if not nxt:
                return Violation(instance_id, tuple(trace), i, self.allowed(cur))
            cur = nxt
        return None


def visible_trace(events: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The visible trace of an instance's (deduplicated, ordered) events: τ removed, ✓ kept."""
    out: list[str] = []
    for ev in events:
        kind = ev["kind"]
        if kind == "TAU":
            continue
        out.append(TICK_NAME if kind == "TICK" else ev["event"])
    return tuple(out)


def conform(spec: LTS, traces: Mapping[str, Sequence[str]]) -> list[Violation]:
    """Every instance whose recorded trace is not a trace of ``spec``, by instance id."""
    auto = SpecAutomaton(spec)
    out = []
    for iid in sorted(traces):
        v = auto.check(iid, traces[iid])
        if v is not None:
            out.append(v)
    return out
