"""FDR-style state-space exploration of process networks.

The network is flattened into leaves and supercombinator rules
(:mod:`processors.csp.check.explore_rules`), product states are integer coded
(:mod:`processors.csp.check.explore_encoding`), successors of a whole BFS level are
generated with numpy table lookups (:mod:`processors.csp.check.explore_succ`), and
each batch of candidates is hashed (a bijective multiply), sorted, made
unique and inserted into a vectorised hash set (:mod:`processors.csp.check.explore_hash`).

* :func:`explore_network` builds the full product LTS (CSR), states numbered
  in BFS order (level by level; within a level by hashed code), state 0 initial.
* :func:`find_deadlock` is the fast path: it keeps only the visited set and
  the codes of each level (no transitions), and reconstructs a shortest
  trace to a deadlock by re-firing rules backwards level by level.

Pure functions: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from processors.csp.check.budget import MemoryBudget
from processors.csp.check.explore_encoding import Encoding, Words, make_encoding
from processors.csp.check.explore_hash import CodeSet, Scratch, StateTable, distinct_sorted, mix, unmix
from processors.csp.check.explore_rules import flatten
from processors.csp.check.explore_succ import Chunk, Compiled, compile_rules, successors, terminated
from processors.csp.semantics import network
from processors.csp.semantics.lts import LTS, TAU_NAME, IntArray

CHUNK = 1 << 20  # frontier states expanded per batch (bounds the temporaries)


class StateSpaceLimit(Exception):
    """The state space has more states than the ``max_states`` limit."""


@dataclass(frozen=True)
class DeadlockResult:
    states: int
    transitions: int
    trace: list[str] | None  # visible events to a deadlock (τ omitted); None if deadlock-free
    path: list[str] | None  # every event (τ included) along the shortest path
    levels: int  # BFS depth + 1
    store_bytes: int  # bytes held by the state store (hash table + per-level codes)

    @property
    def deadlock(self) -> bool:
        return self.trace is not None


def compile_network(node: network.Node) -> Compiled:
    """Flatten the network and build its rule tables (part of state-space work)."""
    flat = flatten(node)
    enc = make_encoding(tuple(lts.num_states for lts in flat.leaves))
    return compile_rules(flat, enc)


def _limit(max_states: int) -> StateSpaceLimit:
    return StateSpaceLimit(f"state space exceeds max_states={max_states}")


@dataclass(frozen=True)
class _Batch:
    new: Words  # codes of the states not seen before (a new BFS level)
    is_new: npt.NDArray[np.bool_]  # per distinct candidate
    slot: IntArray  # per distinct candidate: its slot in the visited set
    inverse: IntArray | None  # candidate -> distinct candidate


class _Visited:
    """The visited set: mixed single-word codes (fast path) or K-word keys."""

    def __init__(self, enc: Encoding, with_values: bool = False) -> None:
        self.words = enc.num_words
        self.scratch = Scratch()
        self.table: CodeSet | StateTable = (
            CodeSet(with_values) if self.words == 1 else StateTable(self.words, with_values)
        )

    @property
    def values(self) -> IntArray:
        return self.table.values

    @property
    def nbytes(self) -> int:
        return self.table.nbytes

    def add(self, cand: Words, want_inverse: bool = False, owned: bool = False) -> _Batch:
        """Insert candidate codes; ``owned``: ``cand`` may be overwritten."""
        inverse: IntArray | None = None
        if isinstance(self.table, CodeSet):
            m = mix(cand[0], in_place=owned)
            if want_inverse:
                u, inverse = np.unique(m, return_inverse=True)
            else:
                u = distinct_sorted(m, self.scratch)
            is_new, slot = self.table.insert(u)
            return _Batch((unmix(u[is_new]),), is_new, slot, inverse)
        rows = np.stack(cand, axis=1)
        if want_inverse:
            urows, inverse = np.unique(rows, axis=0, return_inverse=True)
        else:
            urows = np.unique(rows, axis=0)
        uniq = tuple(np.ascontiguousarray(urows[:, w]) for w in range(self.words))
        is_new, slot = self.table.insert(uniq)
        return _Batch(tuple(x[is_new] for x in uniq), is_new, slot, inverse)


def _candidates(words: int, chunks: list[Chunk]) -> Words:
    return tuple(np.concatenate([c.succ[w] for c in chunks]) for w in range(words))


def _may_duplicate(comp: Compiled) -> bool:
    labels = [r.label for r in comp.rules]
    return len(set(labels)) != len(labels)


def _count_transitions(comp: Compiled, chunks: list[Chunk], exact: bool) -> int:
    if not exact or not chunks:
        return sum(len(c.src) for c in chunks)
    cols = [np.concatenate([c.src for c in chunks])]
    cols.append(
        np.concatenate([np.full(len(c.src), comp.rules[c.rule].label, dtype=np.int64) for c in chunks])
    )
    cols.extend(np.concatenate([c.succ[w] for c in chunks]) for w in range(comp.encoding.num_words))
    return len(np.unique(np.stack(cols, axis=1), axis=0))


def find_deadlock(
    node: network.Node, max_states: int = 10_000_000, stop_at_first: bool = False
) -> DeadlockResult:
    """Explore breadth first; report the state/transition counts and a shortest
    trace to a deadlock (a state with no transitions that has not terminated).

    With ``stop_at_first`` the search stops at the first BFS level containing a
    deadlock (counts are then partial)."""
    comp = compile_network(node)
    return find_deadlock_compiled(comp, max_states, stop_at_first)


def find_deadlock_compiled(
    comp: Compiled, max_states: int = 10_000_000, stop_at_first: bool = False, chunk: int = CHUNK
) -> DeadlockResult:
    """:func:`find_deadlock` on a compiled network. Each BFS level is expanded
    ``chunk`` states at a time, so temporaries stay small and are recycled by
    the allocator (duplicates across chunks are caught by the visited set)."""
    enc = comp.encoding
    exact = _may_duplicate(comp)
    visited = _Visited(enc)
    frontier = enc.encode(comp.initial)
    visited.add(frontier)
    levels: list[Words] = [frontier]
    states, transitions, depth = 1, 0, 1
    dead: tuple[int, int] | None = None
    if states > max_states:
        raise _limit(max_states)
    budget = MemoryBudget.default()
    while len(frontier[0]) and not (stop_at_first and dead is not None):
        budget.check(states)
        parts: list[Words] = []
        for lo in range(0, len(frontier[0]), chunk):
            part = tuple(w[lo : lo + chunk] for w in frontier)
            chunks = successors(comp, part)
            transitions += _count_transitions(comp, chunks, exact)
            if dead is None:
                stuck = _stuck(comp, part, chunks)
                if stuck >= 0:
                    dead = (depth - 1, lo + stuck)
            if chunks:
                if isinstance(visited.table, CodeSet) and (grow := visited.table.growth_bytes(sum(len(c.src) for c in chunks))):
                    budget.check(states, grow)
                new = visited.add(_candidates(enc.num_words, chunks), owned=True).new
                states += len(new[0])
                if states > max_states:
                    raise _limit(max_states)
                parts.append(new)
        frontier = _concat(enc.num_words, parts)
        if len(frontier[0]):
            depth += 1
            if dead is None:
                levels.append(frontier)
    store = visited.nbytes + sum(w.nbytes for lv in levels for w in lv)
    if dead is None:
        return DeadlockResult(states, transitions, None, None, depth, store)
    path = _shortest_path(comp, levels, *dead, chunk=chunk)
    trace = [e for e in path if e != TAU_NAME]
    return DeadlockResult(states, transitions, trace, path, depth, store)


def _stuck(comp: Compiled, part: Words, chunks: list[Chunk]) -> int:
    """Position in ``part`` of a deadlocked state, or -1."""
    has = np.zeros(len(part[0]), dtype=np.bool_)
    for c in chunks:
        has[c.src] = True
    stuck = np.flatnonzero(~has)
    if stuck.size:
        stuck = stuck[~terminated(comp, tuple(w[stuck] for w in part))]
    return int(stuck[0]) if stuck.size else -1


def _concat(words: int, parts: list[Words]) -> Words:
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return tuple(np.zeros(0, dtype=np.int64) for _ in range(words))
    return tuple(np.concatenate([p[w] for p in parts]) for w in range(words))


def _shortest_path(
    comp: Compiled, levels: list[Words], level: int, pos: int, chunk: int = CHUNK
) -> list[str]:
    """Events of a path from the initial state to ``levels[level][pos]``."""
    target = tuple(int(w[pos]) for w in levels[level])
    labels: list[str] = []
    for j in range(level, 0, -1):
        prev = levels[j - 1]
        found = _predecessor(comp, prev, target, chunk)
        if found is None:  # pragma: no cover - BFS levels guarantee a predecessor
            raise AssertionError("no predecessor in previous BFS level")
        src, label = found
        labels.append(comp.events[label])
        target = tuple(int(w[src]) for w in prev)
    labels.reverse()
    return labels


def _predecessor(comp: Compiled, prev: Words, target: tuple[int, ...], chunk: int) -> tuple[int, int] | None:
    """(position in ``prev``, event label) of a transition into ``target``."""
    for lo in range(0, len(prev[0]), chunk):
        part = tuple(w[lo : lo + chunk] for w in prev)
        for c in successors(comp, part):
            hit = np.ones(len(c.src), dtype=np.bool_)
            for w, t in zip(c.succ, target, strict=True):
                hit &= w == t
            found = np.flatnonzero(hit)
            if found.size:
                return lo + int(c.src[found[0]]), comp.rules[c.rule].label
    return None


def divergent_codes(comp: Compiled, max_states: int = 10_000_000, chunk: int = CHUNK) -> IntArray:
    """The sorted codes of the network's divergent states (an infinite τ path from them).

    One breadth-first pass over the reachable states (single-word codes only) that
    keeps just the τ transitions; the τ graph is then peeled (states all of whose
    τ moves lead to non-divergent states are not divergent) with numpy. No product
    LTS is built.
    """
    if comp.encoding.num_words != 1:
        raise ValueError("divergent_codes needs single-word codes")
    from processors.csp.check.checker import _divergent_states

    tau_rules = {i for i, r in enumerate(comp.rules) if r.label == 0}
    visited = _Visited(comp.encoding)
    frontier = comp.encoding.encode(comp.initial)
    visited.add(frontier)
    states = 1
    srcs: list[IntArray] = []
    tgts: list[IntArray] = []
    budget = MemoryBudget.default()
    while len(frontier[0]):
        budget.check(states)
        parts: list[Words] = []
        for lo in range(0, len(frontier[0]), chunk):
            part = tuple(w[lo : lo + chunk] for w in frontier)
            chunks = successors(comp, part)
            for c in chunks:
                if c.rule in tau_rules:
                    srcs.append(part[0][c.src])
                    tgts.append(c.succ[0].copy())
            if chunks:
                new = visited.add(_candidates(1, chunks), owned=True).new
                states += len(new[0])
                if states > max_states:
                    raise _limit(max_states)
                parts.append(new)
        frontier = _concat(1, parts)
    if not srcs:
        return np.zeros(0, dtype=np.int64)
    src, tgt = np.concatenate(srcs), np.concatenate(tgts)
    del srcs, tgts
    # a τ-cycle lies among states with an outgoing τ move: drop edges into the others first
    has_out = np.sort(src)
    has_out = has_out[np.concatenate(([True], has_out[1:] != has_out[:-1]))]
    at = np.minimum(np.searchsorted(has_out, tgt), len(has_out) - 1)
    keep = has_out[at] == tgt
    src, tgt = src[keep], tgt[keep]
    if not len(src):
        return np.zeros(0, dtype=np.int64)
    nodes = has_out
    div = _divergent_states(len(nodes), np.searchsorted(nodes, src), np.searchsorted(nodes, tgt))
    out: IntArray = nodes[div]
    return out


def explore_network(node: network.Node, max_states: int = 10_000_000) -> LTS:
    """The full product LTS of the network (CSR), states in BFS order."""
    return explore_network_compiled(compile_network(node), max_states)


def has_tau(comp: Compiled) -> bool:
    """Whether some rule of the compiled network is a τ (hiding, internal moves of a leaf)."""
    return any(comp.events[r.label] == TAU_NAME for r in comp.rules)


def explore_network_compiled(comp: Compiled, max_states: int = 10_000_000) -> LTS:
    """:func:`explore_network` on a compiled network."""
    enc = comp.encoding
    visited = _Visited(enc, with_values=True)
    frontier = enc.encode(comp.initial)
    visited.values[visited.add(frontier).slot] = 0
    base, count = 0, 1
    if count > max_states:
        raise _limit(max_states)
    srcs: list[IntArray] = []
    labs: list[IntArray] = []
    tgts: list[IntArray] = []
    budget = MemoryBudget.default()
    while len(frontier[0]):
        budget.check(count)
        chunks = successors(comp, frontier)
        if not chunks:
            break
        batch = visited.add(_candidates(enc.num_words, chunks), want_inverse=True)
        assert batch.inverse is not None
        fresh = len(batch.new[0])
        if count + fresh > max_states:
            raise _limit(max_states)
        visited.values[batch.slot[batch.is_new]] = np.arange(count, count + fresh, dtype=np.int64)
        tgts.append(visited.values[batch.slot][batch.inverse.ravel()])
        srcs.append(np.concatenate([c.src for c in chunks]) + base)
        labs.append(
            np.concatenate([np.full(len(c.src), comp.rules[c.rule].label, dtype=np.int64) for c in chunks])
        )
        frontier = batch.new
        base, count = count, count + fresh
    return _csr(comp.events, count, srcs, labs, tgts)


def _csr(
    events: tuple[str, ...], n: int, srcs: list[IntArray], labs: list[IntArray], tgts: list[IntArray]
) -> LTS:
    """Transitions sorted by (source, label, target), duplicates removed."""
    empty = np.zeros(0, dtype=np.int64)
    state_bits = max(1, (n - 1).bit_length())
    label_bits = max(1, (len(events) - 1).bit_length())
    if 2 * state_bits + label_bits <= 63:
        # one packed int64 key per transition: a plain sort, much faster than lexsort
        keys = [
            (s << (label_bits + state_bits)) | (a << state_bits) | t
            for s, a, t in zip(srcs, labs, tgts, strict=True)
        ]
        key = np.concatenate(keys) if keys else empty
        key.sort()
        if len(key):
            keep = np.ones(len(key), dtype=np.bool_)
            np.not_equal(key[1:], key[:-1], out=keep[1:])
            key = key[keep]
        src = key >> (label_bits + state_bits)
        lab = (key >> state_bits) & ((1 << label_bits) - 1)
        tgt = key & ((1 << state_bits) - 1)
    else:
        src = np.concatenate(srcs) if srcs else empty
        lab = np.concatenate(labs) if labs else empty
        tgt = np.concatenate(tgts) if tgts else empty
        order = np.lexsort((tgt, lab, src))
        src, lab, tgt = src[order], lab[order], tgt[order]
        if len(src):
            keep = np.ones(len(src), dtype=np.bool_)
            keep[1:] = (src[1:] != src[:-1]) | (lab[1:] != lab[:-1]) | (tgt[1:] != tgt[:-1])
            src, lab, tgt = src[keep], lab[keep], tgt[keep]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=offsets[1:])
    return LTS(events, 0, offsets, lab, tgt)
