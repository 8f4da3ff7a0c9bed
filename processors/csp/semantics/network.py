"""Process networks: finite-state leaves combined by CSP operators.

This is the FDR "supercombinator" view of a system. The front end compiles
each sequential component to an explicit :class:`~processors.csp.semantics.lts.LTS`
(a :class:`Leaf`) and keeps the operators that combine them (parallel,
hiding, renaming) as a tree. The state-space explorer in
``processors.csp.check.explore`` turns such a tree into one explicit LTS with
vectorised successor generation.

Events are CSPm event strings (``"c.1.true"``); τ and ✓ are handled by the
explorer by the usual firing rules (✓ synchronises in every parallel).
"""

from __future__ import annotations

from dataclasses import dataclass

from processors.csp.semantics.lts import LTS


@dataclass(frozen=True)
class Leaf:
    lts: LTS


@dataclass(frozen=True)
class Parallel:
    """Generalised parallel ``left [| sync |] right``.

    ``|||`` is ``sync = frozenset()``. Alphabetised parallel ``P [A || B] Q``
    is expressed with ``AlphaParallel``.
    """

    left: Node
    right: Node
    sync: frozenset[str]


@dataclass(frozen=True)
class AlphaParallel:
    """Replicated / alphabetised parallel ``|| i @ [A_i] P_i``.

    A visible event ``e`` can happen iff every component whose alphabet
    contains ``e`` performs it together; a component may not perform visible
    events outside its alphabet. ✓ synchronises all components.
    """

    components: tuple[tuple[Node, frozenset[str]], ...]


@dataclass(frozen=True)
class Hide:
    child: Node
    hidden: frozenset[str]


@dataclass(frozen=True)
class Rename:
    """Relational renaming ``child [[ a <- b, ... ]]`` (pairs old -> new)."""

    child: Node
    pairs: frozenset[tuple[str, str]]


Node = Leaf | Parallel | AlphaParallel | Hide | Rename
