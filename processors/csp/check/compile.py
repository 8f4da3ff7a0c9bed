"""Compilation of process terms to explicit LTSs (the form the checker and the Kafka runtime use).

* :func:`explore_terms` — breadth-first exploration of a term with the firing
  rules of :mod:`processors.csp.semantics.operational`; state ``i`` is the ``i``-th state
  discovered (the initial state is 0), and the term of every state is kept
  (for counterexample source spans and ``csp explore``).
* :func:`to_network` — FDR's supercombinator view: the top-level parallel /
  hiding / renaming structure is kept as a :mod:`processors.csp.semantics.network` tree
  whose leaves are the components compiled by :func:`explore_terms`.
* :class:`LazyLTS` — the same states explored on demand (numbered in discovery order;
  breadth-first requests give exactly the numbering of :func:`explore_terms`).
* :func:`compile_process` — the stable entry point: a network explored by
  ``processors.csp.check.explore.explore_network`` when that module is present and
  the term has network structure, the plain breadth-first search otherwise.

Every exploration stops with :class:`StateSpaceLimit` past ``max_states``.
By default there is no state limit (:data:`DEFAULT_MAX_STATES` is
:data:`NO_LIMIT`): the bound is memory, and a search stops with
:class:`~processors.csp.check.budget.MemoryExhausted` (naming the states reached)
before the machine runs out. Pure apart from reading ``/proc/meminfo``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from processors.csp.check.budget import MemoryBudget
from processors.csp.language.errors import CspmError
from processors.csp.semantics import network as N
from processors.csp.semantics import procs as P
from processors.csp.semantics.lts import LTS, TAU, TAU_NAME, TICK, TICK_NAME, from_edges
from processors.csp.semantics.operational import Memo, describe, fire, normalise

NO_LIMIT = 1 << 62
DEFAULT_MAX_STATES = NO_LIMIT  # the default bound is memory (processors.csp.check.budget)
BUDGET_EVERY = 1 << 16  # term-level searches look at the memory budget this often (states)
# A component of a network is compiled on its own; one that is infinite alone
# (e.g. a counter bounded only by its context) is given up on quickly.
LEAF_MAX_STATES = 50_000
# Below this many states the term-level BFS is used directly (no network set-up).
SMALL_STATES = 5_000


class StateSpaceLimit(Exception):
    """The state space has more states than the configured limit."""

    def __init__(self, limit: int, what: str = "process") -> None:
        self.limit = limit
        super().__init__(
            f"state space of {what} exceeds the limit of {limit} states "
            f"(raise it with --max-states, or make the process finite-state)"
        )


@dataclass(frozen=True)
class Explored:
    """An explicit LTS together with the term of each state."""

    lts: LTS
    terms: tuple[P.Proc, ...]


def explore_terms(proc: P.Proc, max_states: int = DEFAULT_MAX_STATES, names: bool = True) -> Explored:
    """Breadth-first exploration of ``proc``; raises :class:`StateSpaceLimit`."""
    if max_states < 1:
        raise ValueError("max_states must be at least 1")
    start = normalise(proc)
    index: dict[P.Proc, int] = {start: 0}
    terms: list[P.Proc] = [start]
    events: list[str] = [TAU_NAME, TICK_NAME]
    event_ids: dict[str, int] = {TAU_NAME: TAU, TICK_NAME: TICK}
    edges: list[tuple[int, int, int]] = []
    queue: deque[int] = deque([0])
    memo = Memo()
    budget = MemoryBudget.default()
    while queue:
        s = queue.popleft()
        seen: set[tuple[int, int]] = set()
        for ev, q in fire(terms[s], memo):
            t = index.get(q)
            if t is None:
                if len(terms) >= max_states:
                    raise StateSpaceLimit(max_states)
                t = len(terms)
                if t % BUDGET_EVERY == 0:
                    budget.check(t)
                index[q] = t
                terms.append(q)
                queue.append(t)
            e = event_ids.get(ev)
            if e is None:
                e = event_ids[ev] = len(events)
                events.append(ev)
            if (e, t) not in seen:
                seen.add((e, t))
                edges.append((s, e, t))
    state_names = tuple(describe(t) for t in terms) if names else ()
    lts = from_edges(tuple(events), 0, len(terms), edges, state_names)
    return Explored(lts, tuple(terms))


class LazyLTS:
    """An LTS explored on demand: states get integer ids as they are discovered.

    ``successors(s)`` fires the term of state ``s`` (once; the result is kept)
    and numbers new targets. For processes too large (or infinite) to compile
    up front, e.g. to animate or execute them step by step. Each instance owns
    its tables; nothing is shared.
    """

    def __init__(self, proc: P.Proc, max_states: int = DEFAULT_MAX_STATES) -> None:
        self.max_states = max_states
        start = normalise(proc)
        self._index: dict[P.Proc, int] = {start: 0}
        self._terms: list[P.Proc] = [start]
        self._succ: dict[int, list[tuple[str, int]]] = {}
        self._memo = Memo()

    initial = 0

    @property
    def num_states(self) -> int:
        """States discovered so far."""
        return len(self._terms)

    def term(self, s: int) -> P.Proc:
        return self._terms[s]

    def describe(self, s: int) -> str:
        return describe(self._terms[s])

    def successors(self, s: int) -> list[tuple[str, int]]:
        """(event, target) pairs of state ``s``; events are CSPm strings, ``τ`` or ``✓``."""
        got = self._succ.get(s)
        if got is not None:
            return got
        out: list[tuple[str, int]] = []
        seen: set[tuple[str, int]] = set()
        for ev, q in fire(self._terms[s], self._memo):
            t = self._index.get(q)
            if t is None:
                if len(self._terms) >= self.max_states:
                    raise StateSpaceLimit(self.max_states)
                t = self._index[q] = len(self._terms)
                self._terms.append(q)
            if (ev, t) not in seen:
                seen.add((ev, t))
                out.append((ev, t))
        self._succ[s] = out
        return out


def to_network(proc: P.Proc, max_states: int = DEFAULT_MAX_STATES) -> N.Node | None:
    """The top-level operator structure of ``proc`` over finite-state leaves.

    Returns None when ``proc`` has no parallel / hiding / renaming at the top
    (a single leaf gains nothing) or when some component is not finite-state
    on its own, or fails to evaluate on its own (a component alone may reach
    states the whole process never does): the whole term must then be
    explored directly.
    """
    top = normalise(proc)
    if not isinstance(top, P.GenParallel | P.AlphaParallel | P.Hide | P.Rename):
        return None
    try:
        return _network(top, min(max_states, LEAF_MAX_STATES))
    except (StateSpaceLimit, CspmError):
        return None


def _network(p: P.Proc, leaf_limit: int) -> N.Node:
    if isinstance(p, P.GenParallel):
        nodes = [_network(q, leaf_limit) for q in p.procs]
        node = nodes[0]
        for nxt in nodes[1:]:
            node = N.Parallel(node, nxt, p.sync)
        return node
    if isinstance(p, P.AlphaParallel):
        return N.AlphaParallel(tuple((_network(q, leaf_limit), a) for q, a in p.procs))
    if isinstance(p, P.Hide):
        return N.Hide(_network(p.proc, leaf_limit), p.hidden)
    if isinstance(p, P.Rename):
        return N.Rename(_network(p.proc, leaf_limit), p.pairs)
    return N.Leaf(explore_terms(p, leaf_limit, names=False).lts)


def compile_process(
    proc: P.Proc, max_states: int = DEFAULT_MAX_STATES, use_network: bool = True, probe: bool = True
) -> LTS:
    """Compile a finite-state process to an explicit LTS (initial state 0, BFS numbering).

    Stable entry point for the Kafka runtime: instance state = LTS state id.
    Small systems are explored term by term (the states keep readable names);
    a system that outgrows :data:`SMALL_STATES` and has network structure is
    handed to the vectorised explorer (``processors.csp.check.explore``) when present.
    ``probe=False``: the caller knows the term-level search outgrows ``SMALL_STATES``.
    """
    if not use_network or max_states <= SMALL_STATES:
        return explore_terms(proc, max_states).lts
    if probe:
        small = probe_small(proc)
        if small is not None:
            return small
    node = to_network(proc, max_states)
    explore_network = _network_explorer() if node is not None else None
    if node is not None and explore_network is not None:
        return explore_network(node, max_states)
    return explore_terms(proc, max_states).lts


def probe_small(proc: P.Proc) -> LTS | None:
    """The term-level LTS of ``proc`` if it has at most ``SMALL_STATES`` states, else None."""
    try:
        return explore_terms(proc, SMALL_STATES).lts
    except StateSpaceLimit:
        return None


def _network_explorer() -> Callable[[N.Node, int], LTS] | None:
    """``explore_network`` with its state-limit error mapped to :class:`StateSpaceLimit`."""
    try:
        from processors.csp.check import explore
    except ImportError:
        return None

    def run(node: N.Node, max_states: int) -> LTS:
        try:
            return explore.explore_network(node, max_states)
        except explore.StateSpaceLimit as exc:
            raise StateSpaceLimit(max_states) from exc

    return run

