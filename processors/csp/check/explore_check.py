"""On-the-fly refinement checking, vectorised (FDR's algorithm).

``spec [M= impl`` for M in T, F, FD: the specification is normalised first
(:class:`NormalSpec`: a deterministic table ``node × event -> node`` with
each node's minimal acceptances and divergence), then the product of normal
nodes and implementation states is explored breadth first, one BFS level at
a time, a batch of states at a time, with numpy:

* a product state is one int64 code ``(node << impl_bits) | impl_code``;
* the implementation's successors come from a :class:`Successors` source:
  the supercombinator rules of a compiled network (:mod:`processors.csp.check.explore_succ`,
  no transitions stored) or the CSR arrays of an explicit LTS;
* every state of a batch is checked (trace, divergence, refusal) before its
  successors are inserted into the visited set (:mod:`processors.csp.check.explore_hash`);
  the search stops at the first level holding a violation.

The counterexample is FDR's: BFS counts every transition (τ included), the
violating state is the first of its level, and its path is rebuilt backwards
through the kept per-level codes. The state store is the hash set plus the
per-level codes (about 20–30 bytes per state). Pure: no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from processors.csp.check import checker
from processors.csp.check.explore_hash import (
    CodeSet,
    Scratch,
    UintArray,
    distinct_sorted,
    mix,
    unique_sorted,
    unmix,
)
from processors.csp.check.explore_succ import Compiled, successors, terminated
from processors.csp.semantics.lts import LTS, TAU, TICK, TICK_NAME, IntArray

BoolArray = npt.NDArray[np.bool_]
Model = Literal["T", "F", "FD"]
CHUNK = 1 << 16  # frontier states per batch (its candidates and scratch table stay near the cache)
CODE_BITS = 62


class TooWide(Exception):
    """The product code does not fit one machine word: use the explicit checker."""


class Limit(Exception):
    """More product states than ``max_states``."""

    def __init__(self, states: int) -> None:
        self.states = states
        super().__init__(f"state space exceeds {states} states")


# --------------------------------------------------------------------------
# implementation successor sources
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Edges:
    src: IntArray  # position in the batch
    label: IntArray  # index into ``events``
    tgt: IntArray  # implementation code


@dataclass(frozen=True)
class Group:
    """Transitions of a batch with one label (``label`` an int) or several (an array)."""

    src: IntArray
    label: int | IntArray
    tgt: IntArray


class Successors(Protocol):
    events: tuple[str, ...]
    bits: int
    initial: int
    has_tau: bool

    def expand(self, codes: IntArray) -> Edges: ...

    def groups(self, codes: IntArray) -> list[Group]: ...

    def divergent(self, codes: IntArray) -> BoolArray | None: ...

    def terminated(self, codes: IntArray) -> BoolArray: ...


class NetworkSuccessors:
    """Successors of a compiled network (single-word codes only), with its divergent states if given."""

    def __init__(self, comp: Compiled, divergent: IntArray | None = None) -> None:
        """``divergent``: the sorted codes of the divergent states (``explore.divergent_codes``),
        or None when divergence is not asked about."""
        if comp.encoding.num_words != 1:
            raise TooWide("network code needs several words")
        self.comp = comp
        self._div = divergent
        self.events = comp.events
        self.bits = comp.encoding.bits
        self.initial = int(comp.encoding.encode(comp.initial)[0][0])
        self.has_tau = any(r.label == TAU for r in comp.rules)
        self._labels = np.array([r.label for r in comp.rules], dtype=np.int64)

    def groups(self, codes: IntArray) -> list[Group]:
        return [Group(c.src, self.comp.rules[c.rule].label, c.succ[0]) for c in successors(self.comp, (codes,))]

    def expand(self, codes: IntArray) -> Edges:
        chunks = successors(self.comp, (codes,))
        if not chunks:
            empty = np.zeros(0, dtype=np.int64)
            return Edges(empty, empty, empty)
        src = np.concatenate([c.src for c in chunks])
        lab = np.repeat(self._labels[[c.rule for c in chunks]], [len(c.src) for c in chunks])
        tgt = np.concatenate([c.succ[0] for c in chunks])
        return Edges(src, lab, tgt)

    def divergent(self, codes: IntArray) -> BoolArray | None:
        if self._div is None or not len(self._div):
            return None
        at = np.minimum(np.searchsorted(self._div, codes), len(self._div) - 1)
        out: BoolArray = self._div[at] == codes
        return out

    def terminated(self, codes: IntArray) -> BoolArray:
        return terminated(self.comp, (codes,))


class LtsSuccessors:
    """Successors of an explicit LTS (codes are state numbers), with its divergent states."""

    def __init__(self, lts: LTS, need_divergence: bool) -> None:
        self.lts = lts
        self.events = lts.events
        self.bits = max(1, (lts.num_states - 1).bit_length())
        self.initial = lts.initial
        self.offsets = lts.offsets.astype(np.int64)
        self.labels = lts.labels.astype(np.int64)
        self.targets = lts.targets.astype(np.int64)
        self.has_tau = bool((self.labels == TAU).any())
        self._div: BoolArray | None = None
        if need_divergence and self.has_tau:
            n = lts.num_states
            src = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.offsets))
            tau = self.labels == TAU
            self._div = checker._divergent_states(n, src[tau], self.targets[tau])
        fin = np.zeros(lts.num_states, dtype=np.bool_)
        fin[self.targets[self.labels == TICK]] = True
        self._final = fin

    def expand(self, codes: IntArray) -> Edges:
        lo = self.offsets[codes]
        deg = self.offsets[codes + 1] - lo
        total = int(deg.sum())
        src = np.repeat(np.arange(len(codes), dtype=np.int64), deg)
        first = np.cumsum(deg) - deg
        off = np.repeat(lo - first, deg) + np.arange(total, dtype=np.int64)
        return Edges(src, self.labels[off], self.targets[off])

    def groups(self, codes: IntArray) -> list[Group]:
        e = self.expand(codes)
        return [Group(e.src, e.label, e.tgt)] if len(e.src) else []

    def divergent(self, codes: IntArray) -> BoolArray | None:
        return None if self._div is None else self._div[codes]

    def terminated(self, codes: IntArray) -> BoolArray:
        return self._final[codes]

    def cycle_from(self, s: int) -> tuple[int, ...]:
        """A τ-cycle through divergent states reachable from divergent ``s``."""
        assert self._div is not None
        seen: dict[int, int] = {}
        path: list[int] = []
        cur = s
        while cur not in seen:
            seen[cur] = len(path)
            path.append(cur)
            lo, hi = int(self.offsets[cur]), int(self.offsets[cur + 1])
            cur = next(
                int(t) for lab, t in zip(self.labels[lo:hi], self.targets[lo:hi], strict=True)
                if lab == TAU and self._div[t]
            )  # fmt: skip
        return tuple(path[seen[cur] :])


# --------------------------------------------------------------------------
# normalised specification
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class NormalSpec:
    """The normal form of a specification over an implementation's event table."""

    next: IntArray  # (nodes, events): successor node, -1 if the event is not allowed
    divergent: BoolArray  # per node
    acc: UintArray  # (nodes, k, words): minimal acceptances as bit masks (padded by repetition)
    has_acc: BoolArray  # per node: has a (usable) minimal acceptance
    refuses_all: bool  # every node may refuse everything: refusals never fail
    nodes: tuple[checker._NormalNode, ...]
    words: int
    spec_events: frozenset[str]
    initial: int = 0
    need_any: BoolArray | None = None  # per node: a stable state must accept something (deadlock freedom)


def _mask_words(n_events: int) -> int:
    return max(1, (n_events + 63) // 64)


def normalise(spec: LTS, events: tuple[str, ...], model: Model, max_nodes: int = 1 << 20) -> NormalSpec:
    """Normalise ``spec`` (all nodes reachable from its initial τ-closure) over ``events``."""
    norm = checker._Normaliser(checker._Graph(spec))
    index = {e: i for i, e in enumerate(events)}
    start = norm.closure([spec.initial])
    ids: dict[frozenset[int], int] = {start: 0}
    order: list[frozenset[int]] = [start]
    queue = deque([start])
    while queue:
        states = queue.popleft()
        nd = norm.node(states)
        if model == "FD" and nd.divergent:
            continue
        for ev, nxt in nd.initials.items():
            if ev in index and nxt not in ids:
                ids[nxt] = len(order)
                order.append(nxt)
                queue.append(nxt)
                if len(order) > max_nodes:
                    raise TooWide("specification normal form too large")
    nodes = tuple(norm.node(s) for s in order)
    n, m = len(nodes), len(events)
    nxt_t = np.full((n, m), -1, dtype=np.int64)
    words = _mask_words(m)
    masks: list[list[list[int]]] = []
    for i, nd in enumerate(nodes):
        for ev, succ in nd.initials.items():
            j = index.get(ev)
            if j is not None:
                nxt_t[i, j] = ids[succ]
        mine: list[list[int]] = []
        for a in nd.min_acceptances:
            if all(e in index for e in a):
                w = [0] * words
                for e in a:
                    j = index[e]
                    w[j >> 6] |= 1 << (j & 63)
                mine.append(w)
        masks.append(mine)
    k = max(1, max(len(x) for x in masks))
    acc = np.zeros((n, k, words), dtype=np.uint64)
    has = np.zeros(n, dtype=np.bool_)
    for i, mine in enumerate(masks):
        if mine:
            has[i] = True
            for j in range(k):
                acc[i, j] = mine[j % len(mine)]
    div = np.array([nd.divergent for nd in nodes], dtype=np.bool_)
    refuses_all = bool(has.all() and (acc == 0).all(axis=2).any(axis=1).all())
    return NormalSpec(nxt_t, div, acc, has, refuses_all, nodes, words, frozenset(spec.events[2:]))


def chaos(events: tuple[str, ...]) -> NormalSpec:
    """The normal form of ``CHAOS(Σ)`` with ✓ allowed: every trace, every refusal, no divergence.

    ``CHAOS [FD= P`` holds iff ``P`` is divergence free.
    """
    nxt = np.zeros((1, len(events)), dtype=np.int64)
    words = _mask_words(len(events))
    acc = np.zeros((1, 1, words), dtype=np.uint64)
    node = checker._NormalNode(frozenset(), {}, (frozenset(),), False, ())
    return NormalSpec(nxt, np.zeros(1, dtype=np.bool_), acc, np.ones(1, dtype=np.bool_), True, (node,), words, frozenset())


def deadlock_free(events: tuple[str, ...]) -> NormalSpec:
    """The normal form of ``DF`` (FDR's deadlock-freedom specification) over ``events``:
    every event allowed, a stable state must accept something, ✓ leads to a node that
    accepts nothing (terminated). ``DF [FD= P`` holds iff ``P`` is deadlock and divergence free."""
    n = len(events)
    nxt = np.zeros((2, n), dtype=np.int64)
    nxt[0, TICK] = 1
    nxt[1, :] = -1
    words = _mask_words(n)
    acc = np.zeros((2, 1, words), dtype=np.uint64)
    running = checker._NormalNode(frozenset(), {}, (), False, ())
    done = checker._NormalNode(frozenset(), {}, (frozenset(),), False, ())
    return NormalSpec(
        nxt, np.zeros(2, dtype=np.bool_), acc, np.ones(2, dtype=np.bool_), False, (running, done), words,
        frozenset(), 0, np.array([True, False]),
    )  # fmt: skip


# --------------------------------------------------------------------------
# the search
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    passed: bool
    counterexample: checker.Counterexample | None
    states: int  # product states visited
    transitions: int  # product transitions generated
    levels: int
    store_bytes: int  # hash set + per-level codes


@dataclass(frozen=True)
class _Violation:
    pos: int  # position in the level
    kind: checker.Kind
    label: int  # trace: the offending event


class _Checker:
    def __init__(self, spec: NormalSpec, impl: Successors, model: Model) -> None:
        self.spec = spec
        self.impl = impl
        self.model = model
        sbits = max(1, (len(spec.nodes) - 1).bit_length())
        if impl.bits + sbits > CODE_BITS:
            raise TooWide("product code wider than one word")
        self.ib = impl.bits
        self.imask = (1 << impl.bits) - 1
        self.check_refusals = model != "T" and not spec.refuses_all
        self.fd = model == "FD"

    def successors(self, codes: IntArray, want_edges: bool) -> tuple[list[Group], _Violation | None]:
        """Product transitions of ``codes`` as groups (product target codes) and the first violation."""
        spec = self.spec
        single = len(spec.nodes) == 1
        node = codes >> self.ib if not single else None
        impl = codes & self.imask if not single else codes
        groups = self.impl.groups(impl)
        live: BoolArray | None = None
        if self.fd and spec.divergent.any():
            live = ~spec.divergent[node] if node is not None else np.zeros(len(codes), dtype=np.bool_)
        n = len(codes)
        first = n
        trace_label = -1
        out: list[Group] = []
        for g in groups:
            src, tgt = g.src, g.tgt
            if live is not None:
                ok = live[src]
                if not ok.all():
                    src, tgt = src[ok], tgt[ok]
                    lab_arr = g.label if isinstance(g.label, int) else g.label[ok]
                else:
                    lab_arr = g.label
            else:
                lab_arr = g.label
            if not len(src):
                continue
            if isinstance(lab_arr, int):
                if node is None:
                    nx_s = int(spec.next[0, lab_arr]) if lab_arr != TAU else 0
                    if nx_s < 0:
                        p = int(src.min())
                        if p < first or (p == first and lab_arr < trace_label):
                            first, trace_label = p, lab_arr
                        continue
                    out.append(Group(src, lab_arr, tgt if nx_s == 0 else tgt | (nx_s << self.ib)))
                    continue
                sn = node[src]
                nx = sn if lab_arr == TAU else spec.next[sn, lab_arr]
            else:
                sn = node[src] if node is not None else np.zeros(len(src), dtype=np.int64)
                nx = spec.next[sn, lab_arr]
                tau = lab_arr == TAU
                nx[tau] = sn[tau]
            bad = nx < 0
            if bad.any():
                bsrc = src[bad]
                p = int(bsrc.min())
                lab_p = lab_arr if isinstance(lab_arr, int) else int(lab_arr[bad][bsrc == p].min())
                if p < first or (p == first and lab_p < trace_label):
                    first, trace_label = p, lab_p
                keep = ~bad
                src, tgt, nx = src[keep], tgt[keep], nx[keep]
                lab_arr = lab_arr if isinstance(lab_arr, int) else lab_arr[keep]
            out.append(Group(src, lab_arr, (nx << self.ib) | tgt))
        viol = _Violation(first, "trace", trace_label) if first < n else None
        if self.fd:
            div = self.impl.divergent(impl)
            if div is not None:
                if live is not None:
                    div = div & live
                hit = np.flatnonzero(div[:first])
                if hit.size:
                    first = int(hit[0])
                    viol = _Violation(first, "divergence_mismatch", -1)
        if self.check_refusals and first > 0:
            node_arr = node if node is not None else np.zeros(n, dtype=np.int64)
            r = self._refusal_violations(n, first, node_arr, groups, live)
            if r >= 0:
                viol = _Violation(r, "refusal", -1)
        return out, viol

    def _refusal_violations(
        self, n: int, first: int, node: IntArray, groups: list[Group], live: BoolArray | None
    ) -> int:
        """Position (< ``first``) of the first stable state refusing what the spec must accept, or -1."""
        spec = self.spec
        tau = np.zeros(n, dtype=np.bool_)
        tick = np.zeros(n, dtype=np.bool_)
        acc = np.zeros((spec.words, n), dtype=np.uint64)
        for g in groups:
            if isinstance(g.label, int):
                if g.label == TAU:
                    tau[g.src] = True
                    continue
                if g.label == TICK:
                    tick[g.src] = True
                acc[g.label >> 6][g.src] |= np.uint64(1 << (g.label & 63))
                continue
            lab = g.label
            tau[g.src[lab == TAU]] = True
            tick[g.src[lab == TICK]] = True
            vis = lab != TAU
            bits = np.left_shift(np.uint64(1), (lab[vis] & 63).astype(np.uint64))
            word = lab[vis] >> 6
            for w in range(spec.words):
                sel = word == w
                np.bitwise_or.at(acc[w], g.src[vis][sel], bits[sel])
        checked = ~tau | tick
        checked[first:] = False
        if live is not None:
            checked &= live
        if not checked.any():
            return -1
        acc[:, tick] = 0
        acc[TICK >> 6, tick] = np.uint64(1 << (TICK & 63))
        a = spec.acc[node]  # (n, k, words)
        ok = ((a & ~acc.T[:, None, :]) == 0).all(axis=2).any(axis=1) & spec.has_acc[node]
        if spec.need_any is not None:
            ok &= ~spec.need_any[node] | (acc != 0).any(axis=0)
        bad = np.flatnonzero(checked & ~ok)
        return int(bad[0]) if bad.size else -1


def refine(
    spec: NormalSpec,
    impl: Successors,
    model: Model,
    max_states: int | None = None,
    on_level: Callable[[int, int], None] | None = None,
    chunk: int = CHUNK,
    handoff: Handoff | None = None,
    handoff_at: int = 1 << 14,
) -> Result:
    """Check ``spec [model= impl`` breadth first; stop at the first level with a violation.

    ``handoff`` (see :mod:`processors.csp.check.explore_parallel`) takes over the search once a
    level holds ``handoff_at`` states. It returns the result of a search without
    violation, or None when it met one: the search is then re-run here, without
    handoff, for the counterexample (the same one a sequential search finds).
    """
    ck = _Checker(spec, impl, model)
    start = np.array([(spec.initial << ck.ib) | impl.initial], dtype=np.int64)
    visited = CodeSet()
    visited.insert(mix(start.copy()))
    frontier = start
    levels: list[IntArray] = [start]
    states, transitions = 1, 0
    scratch = Scratch()
    while len(frontier):
        runs: list[UintArray] = []  # each chunk's distinct candidates, sorted
        for lo in range(0, len(frontier), chunk):
            part = frontier[lo : lo + chunk]
            groups, viol = ck.successors(part, want_edges=False)
            count = sum(len(g.src) for g in groups)
            if viol is not None:
                store = visited.nbytes + sum(lv.nbytes for lv in levels)
                cex = _counterexample(ck, levels, len(levels) - 1, lo + viol.pos, viol, chunk)
                return Result(False, cex, states, transitions + count, len(levels), store)
            transitions += count
            if count:
                tgt = np.concatenate([g.tgt for g in groups]) if len(groups) > 1 else groups[0].tgt.copy()
                runs.append(distinct_sorted(mix(tgt, in_place=True), scratch))
        frontier = insert_level(visited, runs, on_level, states)
        states += len(frontier)
        if max_states is not None and states > max_states:
            raise Limit(max_states)
        if len(frontier):
            levels.append(frontier)
            if on_level is not None:
                on_level(states, 0)
            if handoff is not None and len(frontier) >= handoff_at:
                got = handoff(ck, visited, frontier, Progress(states, transitions, len(levels), levels))
                if got is not None:
                    return got
                return refine(spec, impl, model, max_states, on_level, chunk)
    store = visited.nbytes + sum(lv.nbytes for lv in levels)
    return Result(True, None, states, transitions, len(levels), store)


def insert_level(
    visited: CodeSet,
    runs: list[UintArray],
    on_level: Callable[[int, int], None] | None = None,
    states: int = 0,
) -> IntArray:
    """Insert a level's candidates in one sweep of the table: ``runs`` (each sorted and without
    duplicates, e.g. one per chunk from :func:`distinct_sorted`) are merged without duplicates
    first. Returns the new states (the next frontier); ``runs`` is emptied."""
    runs[:] = [r for r in runs if len(r)]
    if not runs:
        return parts_empty()
    if len(runs) == 1:
        batch = runs[0]  # already sorted, without duplicates
    else:
        batch = np.concatenate(runs)
        batch.sort(kind="stable")  # sorted runs: a merge
        batch = unique_sorted(batch)
    runs.clear()
    if on_level is not None and (grow := visited.growth_bytes(len(batch))):
        on_level(states, grow)
    is_new, _ = visited.insert(batch)
    return unmix(batch[is_new])


@dataclass(frozen=True)
class Progress:
    """Where a sequential search hands over: counts so far and the levels kept."""

    states: int
    transitions: int
    levels: int
    kept: list[IntArray]


Handoff = Callable[["_Checker", CodeSet, IntArray, Progress], "Result | None"]


def parts_empty() -> IntArray:
    return np.zeros(0, dtype=np.int64)


def _path(ck: _Checker, levels: list[IntArray], level: int, pos: int, chunk: int) -> list[int]:
    """Labels of a shortest path (τ counted) from the initial state to ``levels[level][pos]``."""
    target = int(levels[level][pos])
    labels: list[int] = []
    for j in range(level, 0, -1):
        prev = levels[j - 1]
        found: tuple[int, int] | None = None
        for lo in range(0, len(prev), chunk):
            groups, _ = ck.successors(prev[lo : lo + chunk], want_edges=True)
            for g in groups:
                hit = np.flatnonzero(g.tgt == target)
                if hit.size:
                    lab = g.label if isinstance(g.label, int) else int(g.label[hit[0]])
                    found = (lo + int(g.src[hit[0]]), lab)
                    break
            if found is not None:
                break
        if found is None:  # pragma: no cover - BFS levels guarantee a predecessor
            raise AssertionError("no predecessor in the previous BFS level")
        labels.append(found[1])
        target = int(prev[found[0]])
    labels.reverse()
    return labels


def _counterexample(
    ck: _Checker, levels: list[IntArray], level: int, pos: int, viol: _Violation, chunk: int
) -> checker.Counterexample:
    ev = ck.impl.events
    path = _path(ck, levels, level, pos, chunk)
    trace = tuple(ev[x] for x in path if x != TAU)
    code = int(levels[level][pos])
    node, impl = code >> ck.ib, code & ck.imask
    e = ck.impl.expand(np.array([impl], dtype=np.int64))
    accepted = frozenset(ev[x] for x in e.label.tolist() if x != TAU)
    state = impl if isinstance(ck.impl, LtsSuccessors) else -1
    if viol.kind == "trace":
        name = ev[viol.label]
        return checker.Counterexample("trace", (*trace, name), state, event=name, accepted=accepted)
    if viol.kind == "divergence_mismatch":
        cycle = ck.impl.cycle_from(impl) if isinstance(ck.impl, LtsSuccessors) else ()
        return checker.Counterexample("divergence_mismatch", trace, state, accepted=accepted, cycle=cycle)
    nd = ck.spec.nodes[node]
    can_tick = TICK in e.label.tolist()
    acc = frozenset({TICK_NAME}) if can_tick else accepted
    must = frozenset().union(*nd.min_acceptances) - acc if nd.min_acceptances else frozenset()
    everything = frozenset(ev[2:]) | ck.spec.spec_events | {TICK_NAME}
    refused = must or (everything - acc)
    return checker.Counterexample(
        "refusal", trace, state,
        event=min(refused) if refused else None, refusal=refused, accepted=acc,
        spec_acceptances=nd.min_acceptances,
    )  # fmt: skip
