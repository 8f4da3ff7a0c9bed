"""FDR-style checks on explicit LTSs. Pure: no I/O.

* :func:`deadlock_free` — no reachable stable state without transitions other
  than successful termination (Ω, reached by ✓). In FD a divergence also
  fails (``DF [FD= P``).
* :func:`divergence_free` — no reachable state with an infinite τ path.
* :func:`deterministic` — no trace ``s`` and event ``a`` with ``s^<a>`` a
  trace and ``a`` refusable after ``s``; in FD also divergence free.
* :func:`refines` — ``spec [M= impl`` for M in T, F, FD: the specification
  is normalised (subset construction over τ-closures, recording for each
  normal node its initials, minimal acceptances and whether it diverges) and
  the product with the implementation is explored breadth-first, τ moves
  costing nothing, so every counterexample has a shortest trace.

Events are compared by name, so two LTSs with different event tables can be
checked against each other. ✓ is treated as a visible event.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from processors.csp.semantics.lts import LTS, TAU, TICK_NAME, IntArray

Model = Literal["T", "F", "FD"]
Kind = Literal["deadlock", "divergence", "nondeterminism", "trace", "refusal", "divergence_mismatch", "missing_trace"]


@dataclass(frozen=True)
class Counterexample:
    """Why a check failed.

    ``trace`` is the shortest visible trace (✓ included) leading to the
    problem. ``state`` is the state of the checked (implementation) LTS where
    it shows. For ``trace`` violations ``event`` is the event the
    implementation can do but the specification cannot (it ends ``trace``).
    For ``refusal`` and ``nondeterminism`` ``refusal`` is the set of events
    refused that must not be (``event`` is one of them). For divergences
    ``cycle`` lists the states of a τ-cycle the process can enter.
    """

    kind: Kind
    trace: tuple[str, ...]
    state: int
    event: str | None = None
    refusal: frozenset[str] | None = None
    accepted: frozenset[str] | None = None
    spec_acceptances: tuple[frozenset[str], ...] = ()
    cycle: tuple[int, ...] = ()

    @property
    def divergence(self) -> bool:
        return self.kind in ("divergence", "divergence_mismatch")


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    counterexample: Counterexample | None
    states: int  # states of the checked LTS
    transitions: int
    explored: int = 0  # nodes of the search (product pairs, normal nodes)
    spec_states: int | None = field(default=None)


# --------------------------------------------------------------------------
# graph views of an LTS
# --------------------------------------------------------------------------


class _Graph:
    """Adjacency of an LTS plus derived facts (divergence, stability, termination).

    The facts are computed with numpy over the whole LTS; successor lists are
    sliced from the CSR arrays on demand (only the search touches them).
    """

    def __init__(self, lts: LTS) -> None:
        self.lts = lts
        self.events = lts.events
        n = lts.num_states
        self.n = n
        offsets = lts.offsets.astype(np.int64)
        labels = lts.labels.astype(np.int64)
        targets = lts.targets.astype(np.int64)
        src = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
        tau_edges = labels == TAU
        tick = lts.events.index(TICK_NAME)
        terminated = np.zeros(n, dtype=np.bool_)
        terminated[targets[labels == tick]] = True
        can_tick = np.zeros(n, dtype=np.bool_)
        can_tick[src[labels == tick]] = True
        self.can_tick: list[bool] = can_tick.tolist()
        self.out_degree: list[int] = np.diff(offsets).tolist()
        self.terminated: list[bool] = terminated.tolist()
        self.stable: list[bool] = (np.bincount(src[tau_edges], minlength=n) == 0).tolist()
        self.divergent: list[bool] = _divergent_states(n, src[tau_edges], targets[tau_edges]).tolist()
        self.any_divergent = any(self.divergent)
        self.any_stuck = bool(((np.diff(offsets) == 0) & ~terminated).any())
        self._np = (offsets, labels, targets)
        self.succ = _Slices(self)
        self.tau = _TauSlices(self)

    @functools.cached_property
    def _offsets(self) -> list[int]:
        got: list[int] = self._np[0].tolist()
        return got

    @functools.cached_property
    def _labels(self) -> list[int]:
        got: list[int] = self._np[1].tolist()
        return got

    @functools.cached_property
    def _targets(self) -> list[int]:
        got: list[int] = self._np[2].tolist()
        return got

    def acceptance(self, s: int) -> frozenset[str]:
        return frozenset(self.events[lab] for lab, _ in self.succ[s] if lab != TAU)

    def refusal_acceptance(self, s: int) -> frozenset[str] | None:
        """What ``s`` accepts when it refuses as much as it can, or None if it cannot refuse (unstable).

        Roscoe's convention: ✓ is a signal, like a τ to a terminated state, so a
        state that can do ✓ can refuse every other event (it accepts just ✓).
        """
        if self.can_tick[s]:
            return _TICK_ONLY
        if self.stable[s]:
            return self.acceptance(s)
        return None

    def cycle_from(self, s: int) -> tuple[int, ...]:
        """A τ-cycle reachable from divergent state ``s`` by τ moves (its states, in order)."""
        seen: dict[int, int] = {}
        path: list[int] = []
        cur = s
        while cur not in seen:
            seen[cur] = len(path)
            path.append(cur)
            cur = next(t for t in self.tau[cur] if self.divergent[t])
        return tuple(path[seen[cur] :])


_TICK_ONLY = frozenset({TICK_NAME})


class _Slices:
    def __init__(self, g: _Graph) -> None:
        self.g = g

    def __getitem__(self, s: int) -> list[tuple[int, int]]:
        g = self.g
        lo, hi = g._offsets[s], g._offsets[s + 1]
        return list(zip(g._labels[lo:hi], g._targets[lo:hi], strict=True))


class _TauSlices:
    def __init__(self, g: _Graph) -> None:
        self.g = g

    def __getitem__(self, s: int) -> list[int]:
        g = self.g
        lo, hi = g._offsets[s], g._offsets[s + 1]
        return [t for lab, t in zip(g._labels[lo:hi], g._targets[lo:hi], strict=True) if lab == TAU]


def _divergent_states(n: int, tau_src: IntArray, tau_tgt: IntArray) -> npt.NDArray[np.bool_]:
    """States with an infinite τ path: repeatedly peel off states all of whose τ moves lead to peeled states.

    Vectorised rounds (one per τ-distance from stability); a long τ chain is finished off
    by a queue-based pass over the remaining edges.
    """
    out_deg = np.bincount(tau_src, minlength=n).astype(np.int64)
    removed = np.zeros(n, dtype=np.bool_)
    alive = np.ones(len(tau_src), dtype=np.bool_)
    frontier = out_deg == 0
    rounds = 0
    while frontier.any():
        if rounds == 64:
            return _peel_rest(n, tau_src[alive], tau_tgt[alive], out_deg, removed | frontier)
        rounds += 1
        removed |= frontier
        hit = alive & frontier[tau_tgt]
        alive &= ~hit
        out_deg -= np.bincount(tau_src[hit], minlength=n)
        frontier = (out_deg == 0) & ~removed
    return ~removed


def _peel_rest(
    n: int, tau_src: IntArray, tau_tgt: IntArray, out_deg: IntArray, removed: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    preds: dict[int, list[int]] = {}
    for a, b in zip(tau_src.tolist(), tau_tgt.tolist(), strict=True):
        preds.setdefault(b, []).append(a)
    deg: list[int] = out_deg.tolist()
    gone: list[bool] = removed.tolist()
    # every remaining edge leads to a state not yet processed; the states peeled so far
    # (including the unprocessed frontier) discount their remaining incoming edges now
    queue = deque(s for s in range(n) if gone[s])
    while queue:
        s = queue.popleft()
        for p in preds.get(s, ()):
            deg[p] -= 1
            if deg[p] == 0 and not gone[p]:
                gone[p] = True
                queue.append(p)
    return ~np.asarray(gone, dtype=np.bool_)


# --------------------------------------------------------------------------
# shortest-trace search (0-1 BFS: τ costs 0, visible events cost 1)
# --------------------------------------------------------------------------

NodeT = TypeVar("NodeT", bound=Hashable)
FindingT = TypeVar("FindingT")


@dataclass(frozen=True)
class _Hit(Generic[NodeT, FindingT]):
    node: NodeT
    finding: FindingT
    trace: tuple[str, ...]


def _search(
    start: NodeT,
    expand: Callable[[NodeT], Iterable[tuple[str | None, NodeT]]],
    check: Callable[[NodeT], FindingT | None],
) -> tuple[_Hit[NodeT, FindingT] | None, int]:
    """Search nodes in order of visible-trace length; return the first bad one.

    ``expand`` yields (label, next) with label None for τ. Returns the hit
    (None when nothing is bad) and the number of nodes visited.
    """
    dist: dict[NodeT, int] = {start: 0}
    parent: dict[NodeT, tuple[NodeT, str | None]] = {}
    done: set[NodeT] = set()
    dq: deque[NodeT] = deque([start])
    while dq:
        node = dq.popleft()
        if node in done:
            continue
        done.add(node)
        finding = check(node)
        if finding is not None:
            return _Hit(node, finding, _trace(parent, node)), len(done)
        d = dist[node]
        for label, nxt in expand(node):
            nd = d if label is None else d + 1
            old = dist.get(nxt)
            if nxt in done or (old is not None and old <= nd):
                continue
            dist[nxt] = nd
            parent[nxt] = (node, label)
            if label is None:
                dq.appendleft(nxt)
            else:
                dq.append(nxt)
    return None, len(done)


def _trace(parent: dict[NodeT, tuple[NodeT, str | None]], node: NodeT) -> tuple[str, ...]:
    out: list[str] = []
    while node in parent:
        node, label = parent[node]
        if label is not None:
            out.append(label)
    return tuple(reversed(out))


def _expand_lts(g: _Graph) -> Callable[[int], Iterable[tuple[str | None, int]]]:
    def expand(s: int) -> Iterable[tuple[str | None, int]]:
        return [(None if lab == TAU else g.events[lab], t) for lab, t in g.succ[s]]

    return expand


# --------------------------------------------------------------------------
# property checks
# --------------------------------------------------------------------------


def deadlock_free(lts: LTS, model: Model = "F") -> CheckResult:
    g = _Graph(lts)
    if not g.any_stuck and not (model == "FD" and g.any_divergent):
        return CheckResult(True, None, g.n, lts.num_transitions, g.n)

    def check(s: int) -> Kind | None:
        if model == "FD" and g.divergent[s]:
            return "divergence"
        if g.out_degree[s] == 0 and not g.terminated[s]:
            return "deadlock"
        return None

    hit, seen = _search(lts.initial, _expand_lts(g), check)
    return _result(g, hit, seen)


def divergence_free(lts: LTS) -> CheckResult:
    g = _Graph(lts)
    if not g.any_divergent:
        return CheckResult(True, None, g.n, lts.num_transitions, g.n)

    def check(s: int) -> Kind | None:
        return "divergence" if g.divergent[s] else None

    hit, seen = _search(lts.initial, _expand_lts(g), check)
    return _result(g, hit, seen)


def _result(g: _Graph, hit: _Hit[int, str] | None, seen: int) -> CheckResult:
    if hit is None:
        return CheckResult(True, None, g.n, g.lts.num_transitions, seen)
    node, trace = hit.node, hit.trace
    kind: Kind = "divergence" if hit.finding == "divergence" else "deadlock"
    cex = Counterexample(
        kind=kind,
        trace=trace,
        state=node,
        accepted=g.acceptance(node),
        cycle=g.cycle_from(node) if kind == "divergence" else (),
    )
    return CheckResult(False, cex, g.n, g.lts.num_transitions, seen)


# --------------------------------------------------------------------------
# normalisation (subset construction over τ-closures)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _NormalNode:
    states: frozenset[int]
    initials: dict[str, frozenset[int]]  # event -> τ-closed successor set
    min_acceptances: tuple[frozenset[str], ...]
    divergent: bool
    stable_states: tuple[int, ...]


class _Normaliser:
    """Lazily built normal form of an LTS: deterministic over visible events."""

    def __init__(self, g: _Graph) -> None:
        self.g = g
        self.nodes: dict[frozenset[int], _NormalNode] = {}

    def closure(self, states: Iterable[int]) -> frozenset[int]:
        seen = set(states)
        stack = list(seen)
        while stack:
            s = stack.pop()
            for t in self.g.tau[s]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    def node(self, states: frozenset[int]) -> _NormalNode:
        got = self.nodes.get(states)
        if got is not None:
            return got
        g = self.g
        succ: dict[str, set[int]] = {}
        for s in states:
            for lab, t in g.succ[s]:
                if lab != TAU:
                    succ.setdefault(g.events[lab], set()).add(t)
        initials = {ev: self.closure(ts) for ev, ts in sorted(succ.items())}
        stable = tuple(sorted(s for s in states if g.refusal_acceptance(s) is not None))
        accs = {a for s in stable if (a := g.refusal_acceptance(s)) is not None}
        minimal = tuple(sorted((a for a in accs if not any(b < a for b in accs)), key=sorted))
        got = _NormalNode(states, initials, minimal, any(g.divergent[s] for s in states), stable)
        self.nodes[states] = got
        return got


# --------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------


def _obviously_deterministic(lts: LTS) -> bool:
    """No τ, no state with two transitions on one event, ✓ only where it is the sole event.

    Then every normal node is a single state whose acceptance is its initials.
    """
    labels = lts.labels
    if len(labels) == 0:
        return True
    if bool((labels == TAU).any()):
        return False
    src = np.repeat(np.arange(lts.num_states, dtype=np.int64), np.diff(lts.offsets))
    order = np.lexsort((labels, src))
    s_sorted, l_sorted = src[order], labels[order]
    if bool(((s_sorted[1:] == s_sorted[:-1]) & (l_sorted[1:] == l_sorted[:-1])).any()):
        return False
    tick = lts.events.index(TICK_NAME)
    ticking = src[labels == tick]
    return not bool((np.diff(lts.offsets)[ticking] > 1).any())


def deterministic(lts: LTS, model: Literal["F", "FD"] = "FD") -> CheckResult:
    if _obviously_deterministic(lts):
        return CheckResult(True, None, lts.num_states, lts.num_transitions, lts.num_states)
    return _deterministic_search(lts, model)


def _deterministic_search(lts: LTS, model: Literal["F", "FD"]) -> CheckResult:
    g = _Graph(lts)
    norm = _Normaliser(g)
    start = norm.closure([lts.initial])

    def expand(states: frozenset[int]) -> Iterable[tuple[str | None, frozenset[int]]]:
        return list(norm.node(states).initials.items())

    def check(states: frozenset[int]) -> Counterexample | None:
        nd = norm.node(states)
        if model == "FD" and nd.divergent:
            s = next(s for s in sorted(states) if g.divergent[s])
            return Counterexample("divergence", (), s, accepted=g.acceptance(s), cycle=g.cycle_from(s))
        offered = frozenset(nd.initials)
        for s in nd.stable_states:
            acc = g.refusal_acceptance(s)
            if acc is not None and acc != offered:
                refused = offered - acc
                return Counterexample(
                    "nondeterminism", (), s, event=min(refused), refusal=refused, accepted=acc
                )
        return None

    hit, seen = _search(start, expand, check)
    if hit is None:
        return CheckResult(True, None, g.n, lts.num_transitions, seen)
    return CheckResult(False, _with_trace(hit.finding, hit.trace), g.n, lts.num_transitions, seen)


def _with_trace(cex: Counterexample, trace: tuple[str, ...]) -> Counterexample:
    return Counterexample(
        kind=cex.kind,
        trace=trace + cex.trace,
        state=cex.state,
        event=cex.event,
        refusal=cex.refusal,
        accepted=cex.accepted,
        spec_acceptances=cex.spec_acceptances,
        cycle=cex.cycle,
    )


# --------------------------------------------------------------------------
# refinement
# --------------------------------------------------------------------------


def refines(spec: LTS, impl: LTS, model: Model) -> CheckResult:
    """Check ``spec [model= impl``; the counterexample trace is shortest."""
    if model not in ("T", "F", "FD"):
        raise ValueError(f"unknown semantic model {model!r} (expected T, F or FD)")
    sg, ig = _Graph(spec), _Graph(impl)
    norm = _Normaliser(sg)
    start = (norm.closure([spec.initial]), impl.initial)
    spec_events = frozenset(spec.events[2:]) | frozenset(impl.events[2:]) | {TICK_NAME}

    def expand(pair: tuple[frozenset[int], int]) -> Iterable[tuple[str | None, tuple[frozenset[int], int]]]:
        states, i = pair
        nd = norm.node(states)
        if model == "FD" and nd.divergent:
            return []  # the specification is chaotic from here: anything goes
        out: list[tuple[str | None, tuple[frozenset[int], int]]] = []
        for lab, t in ig.succ[i]:
            if lab == TAU:
                out.append((None, (states, t)))
            else:
                ev = ig.events[lab]
                nxt = nd.initials.get(ev)
                if nxt is not None:
                    out.append((ev, (nxt, t)))
        return out

    def check(pair: tuple[frozenset[int], int]) -> Counterexample | None:
        states, i = pair
        nd = norm.node(states)
        if model == "FD" and nd.divergent:
            return None
        for lab, _ in ig.succ[i]:
            if lab != TAU:
                ev = ig.events[lab]
                if ev not in nd.initials:
                    return Counterexample("trace", (ev,), i, event=ev, accepted=ig.acceptance(i))
        if model == "FD" and ig.divergent[i]:
            return Counterexample("divergence_mismatch", (), i, cycle=ig.cycle_from(i))
        acc_i = ig.refusal_acceptance(i) if model != "T" else None
        if acc_i is not None:
            acc = acc_i
            if not any(a <= acc for a in nd.min_acceptances):
                must = frozenset().union(*nd.min_acceptances) - acc if nd.min_acceptances else frozenset()
                refused = must or (spec_events - acc)
                return Counterexample(
                    "refusal",
                    (),
                    i,
                    event=min(refused) if refused else None,
                    refusal=refused,
                    accepted=acc,
                    spec_acceptances=nd.min_acceptances,
                )
        return None

    hit, seen = _search(start, expand, check)
    if hit is None:
        return CheckResult(True, None, ig.n, impl.num_transitions, seen, spec.num_states)
    return CheckResult(False, _with_trace(hit.finding, hit.trace), ig.n, impl.num_transitions, seen, spec.num_states)


# --------------------------------------------------------------------------
# trace membership
# --------------------------------------------------------------------------


def has_trace(lts: LTS, trace: Iterable[str]) -> CheckResult:
    """Whether ``trace`` (visible events, ✓ allowed last) is a trace of ``lts``.

    On failure the counterexample trace is the longest possible prefix and
    ``event`` the event that cannot follow it.
    """
    g = _Graph(lts)
    norm = _Normaliser(g)
    states = norm.closure([lts.initial])
    done: list[str] = []
    for ev in trace:
        nxt = norm.node(states).initials.get(ev)
        if nxt is None:
            some = min(states)
            cex = Counterexample("missing_trace", tuple(done), some, event=ev, accepted=g.acceptance(some))
            return CheckResult(False, cex, g.n, lts.num_transitions, len(norm.nodes))
        done.append(ev)
        states = nxt
    return CheckResult(True, None, g.n, lts.num_transitions, len(norm.nodes))
