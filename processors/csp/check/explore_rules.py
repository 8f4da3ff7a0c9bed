"""Flatten a process network into FDR-style supercombinator rules.

A network tree (:mod:`processors.csp.semantics.network`) is turned into a list of
leaves (explicit LTSes) and a list of *rules*. A rule names, for each leaf
that moves, the leaf-local label it performs; leaves not named stay put. The
rule's result is the event the whole network performs (``τ``, ``✓`` or a
visible CSPm event). Firing rules (Roscoe / FDR):

* ``Parallel(l, r, A)``: events of ``A`` synchronise, other visible events and
  τ interleave, ✓ synchronises (distributed termination).
* ``AlphaParallel``: a visible event needs every component whose alphabet
  contains it; components cannot perform visible events outside their
  alphabet; τ interleaves; ✓ synchronises all components.
* ``Hide``: hidden events become τ.
* ``Rename``: relational renaming; unrenamed events keep their name.

Pure functions, no I/O.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from processors.csp.semantics import network
from processors.csp.semantics.lts import LTS, TAU, TAU_NAME, TICK, TICK_NAME, from_edges

Participants = tuple[tuple[int, int], ...]
"""Sorted ``(leaf index, leaf-local label index)`` pairs."""


@dataclass(frozen=True)
class Rule:
    participants: Participants
    label: str


@dataclass(frozen=True)
class Flat:
    leaves: tuple[LTS, ...]
    rules: tuple[Rule, ...]


def flatten(node: network.Node) -> Flat:
    """Leaves (in left-to-right tree order) and the combined rule list."""
    leaves: list[LTS] = []
    rules = _rules(node, leaves, False)
    unique = tuple(dict.fromkeys(rules))
    return Flat(tuple(leaves), unique)


def _rules(node: network.Node, leaves: list[LTS], in_parallel: bool) -> list[Rule]:
    if isinstance(node, network.Leaf):
        return _leaf_rules(_delay_tick(node.lts) if in_parallel else node.lts, len(leaves), leaves)
    if isinstance(node, network.Parallel):
        left = _rules(node.left, leaves, True)
        right = _rules(node.right, leaves, True)
        return _parallel(left, right, node.sync)
    if isinstance(node, network.AlphaParallel):
        comps = [(_rules(child, leaves, True), alpha) for child, alpha in node.components]
        return _alpha_parallel(comps)
    if isinstance(node, network.Hide):
        return [
            Rule(r.participants, TAU_NAME) if r.label in node.hidden and r.label != TICK_NAME else r
            for r in _rules(node.child, leaves, in_parallel)
        ]
    if isinstance(node, network.Rename):
        return _rename(_rules(node.child, leaves, in_parallel), node.pairs)
    raise TypeError(f"unknown network node {type(node).__name__}")


def _delay_tick(lts: LTS) -> LTS:
    """Distributed termination: inside a parallel a component's ✓ is a τ to a state
    (Ω̂) that waits to perform the common ✓ (Roscoe: ``P -✓-> P'`` gives
    ``P [|A|] Q -τ-> Ω [|A|] Q``). Ω̂ is a new last state; without it a
    component's choice between ✓ and other events would stay open until
    every component could terminate."""
    tick = lts.labels == TICK
    if not tick.any():
        return lts
    n = lts.num_states
    src = np.repeat(np.arange(n, dtype=np.int64), np.diff(lts.offsets))
    labels = np.where(tick, TAU, lts.labels)
    targets = np.where(tick, n, lts.targets)
    ends = np.unique(lts.targets[tick])
    edges = list(zip(src.tolist(), labels.tolist(), targets.tolist(), strict=True))
    edges += [(n, TICK, int(t)) for t in ends]
    return from_edges(lts.events, lts.initial, n + 1, edges)


def _leaf_rules(lts: LTS, index: int, leaves: list[LTS]) -> list[Rule]:
    leaves.append(lts)
    used = sorted({int(a) for a in lts.labels})
    return [Rule(((index, a),), lts.events[a]) for a in used]


def _by_label(rules: list[Rule]) -> dict[str, list[Rule]]:
    out: dict[str, list[Rule]] = defaultdict(list)
    for r in rules:
        out[r.label].append(r)
    return out


def _combine(groups: list[list[Rule]], label: str) -> list[Rule]:
    """Cross product: one rule per choice of one rule from each group."""
    out = []
    for combo in itertools.product(*groups):
        parts = tuple(sorted(p for r in combo for p in r.participants))
        out.append(Rule(parts, label))
    return out


def _parallel(left: list[Rule], right: list[Rule], sync: frozenset[str]) -> list[Rule]:
    out = [r for r in left + right if r.label != TICK_NAME and r.label not in sync]
    lby, rby = _by_label(left), _by_label(right)
    for label in sorted((set(sync) | {TICK_NAME}) - {TAU_NAME}):
        if label in lby and label in rby:
            out.extend(_combine([lby[label], rby[label]], label))
    return out


def _alpha_parallel(comps: list[tuple[list[Rule], frozenset[str]]]) -> list[Rule]:
    out = [r for rules, _ in comps for r in rules if r.label == TAU_NAME]
    by = [_by_label(rules) for rules, _ in comps]
    ticks = [b.get(TICK_NAME, []) for b in by]
    if all(ticks):
        out.extend(_combine(ticks, TICK_NAME))
    events = sorted(set().union(*(alpha for _, alpha in comps)) - {TAU_NAME, TICK_NAME})
    for e in events:
        groups = [b.get(e, []) for b, (_, alpha) in zip(by, comps, strict=True) if e in alpha]
        if all(groups):
            out.extend(_combine(groups, e))
    return out


def _rename(rules: list[Rule], pairs: frozenset[tuple[str, str]]) -> list[Rule]:
    images: dict[str, list[str]] = defaultdict(list)
    for old, new in sorted(pairs):
        if old not in (TAU_NAME, TICK_NAME):
            images[old].append(new)
    out: list[Rule] = []
    for r in rules:
        if r.label in images:
            out.extend(Rule(r.participants, new) for new in images[r.label])
        else:
            out.append(r)
    return out
