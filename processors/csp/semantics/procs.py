"""Process terms: the values of CSPm process expressions.

Contract between the evaluator (which builds these terms from CSPm) and the
operational semantics (``processors.csp.semantics.operational``, which fires them).

Design:
* Events are canonical CSPm event strings (``"c.1.true"``); event sets are
  ``frozenset[str]``. The evaluator renders values canonically, so equal
  events are equal strings.
* Terms are immutable and hashable; two terms that denote the same state must
  compare equal. Recursion is cut by :class:`Call` nodes whose identity is the
  process name and its argument values (``key``), and whose body is evaluated
  lazily by ``body()``.
* Prefixes carry their continuation as a callable, evaluated lazily when the
  event fires (FDR is lazy here). Their identity is ``key``: the evaluator
  passes a tuple (syntax node id, captured environment values) so the same
  syntactic prefix in the same environment is the same state.
* Replicated operators are evaluated to the n-ary forms below.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field

Events = frozenset[str]


@dataclass(frozen=True)
class Span:
    """Source span of the syntax that produced a term (for counterexamples)."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class Proc:
    """Base class of process terms."""

    __slots__ = ()


@dataclass(frozen=True)
class Stop(Proc):
    pass


@dataclass(frozen=True)
class Skip(Proc):
    pass


@dataclass(frozen=True)
class Omega(Proc):
    """The terminated process Ω (after ✓)."""


@dataclass(frozen=True)
class Div(Proc):
    pass


@dataclass(frozen=True)
class Chaos(Proc):
    events: Events


@dataclass(frozen=True)
class Run(Proc):
    events: Events


@dataclass(frozen=True, eq=False)
class Prefix(Proc):
    """``e -> P`` or ``c?x:S!v -> P(x)``: offers each event of ``events``;
    ``cont(e)`` is the process after event ``e``."""

    key: Hashable
    events: tuple[str, ...]
    cont: Callable[[str], Proc]
    span: Span | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prefix) and self.key == other.key

    def __hash__(self) -> int:
        return hash(("Prefix", self.key))


@dataclass(frozen=True, eq=False)
class Call(Proc):
    """A named process applied to arguments; ``body()`` unfolds it (τ-free)."""

    key: Hashable
    name: str
    body: Callable[[], Proc]
    span: Span | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Call) and self.key == other.key

    def __hash__(self) -> int:
        return hash(("Call", self.key))


@dataclass(frozen=True)
class ExtChoice(Proc):
    """``P1 [] P2 [] ...`` (n-ary; also the replicated form)."""

    procs: tuple[Proc, ...]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class IntChoice(Proc):
    """``P1 |~| P2 |~| ...`` (n-ary, non-empty)."""

    procs: tuple[Proc, ...]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SlidingChoice(Proc):
    """``P [> Q``."""

    left: Proc
    right: Proc
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Interrupt(Proc):
    """``P /\\ Q``."""

    left: Proc
    right: Proc
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ExceptionOp(Proc):
    """``P [| A |> Q``: ``P`` until it performs an event of ``A``, then ``Q``."""

    left: Proc
    right: Proc
    events: Events
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SyncExtChoice(Proc):
    """``P1 [+ A +] P2 [+ A +] ...``: external choice whose events in ``A`` are
    performed by every operand together without resolving the choice."""

    procs: tuple[Proc, ...]
    sync: Events
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SyncInterrupt(Proc):
    """``P /+ A +\\ Q``: ``P /\\ Q`` whose events in ``A`` are performed by both
    sides together without triggering the interrupt."""

    left: Proc
    right: Proc
    sync: Events
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SeqComp(Proc):
    """``P ; Q`` (the evaluator may wrap Q in a :class:`Call` to keep it lazy)."""

    left: Proc
    right: Proc
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class GenParallel(Proc):
    """``P1 [| A |] P2 [| A |] ...``; ``|||`` is ``sync=frozenset()``."""

    procs: tuple[Proc, ...]
    sync: Events
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class AlphaParallel(Proc):
    """``P [A || B] Q`` and ``|| x:S @ [A(x)] P(x)``: (process, alphabet) pairs."""

    procs: tuple[tuple[Proc, Events], ...]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LinkedParallel(Proc):
    """``P [c <-> d, ...] Q``: ``links`` maps left events to right events;
    linked events synchronise and are hidden."""

    left: Proc
    right: Proc
    links: frozenset[tuple[str, str]]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Hide(Proc):
    proc: Proc
    hidden: Events
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Rename(Proc):
    """``P [[ a <- b ]]``: relational renaming, pairs (old, new)."""

    proc: Proc
    pairs: frozenset[tuple[str, str]]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Prioritise(Proc):
    """FDR's ``prioritise(P, <A1, ..., An>)`` (``levels``; τ and ✓ share the
    priority of ``A1``) or ``prioritisepo(P, E, O, M)`` (``order``: transitively
    closed (higher, lower) pairs, τ and ✓ above every event outside ``M``). An
    event is enabled only when no event of higher priority is."""

    proc: Proc
    levels: tuple[Events, ...] = ()
    order: frozenset[tuple[str, str]] = frozenset()
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Chase(Proc):
    """FDR's ``chase(P)``: a state with a τ is replaced by (one of) its τ successors."""

    proc: Proc
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Determinise(Proc):
    """FDR's ``deter(P)`` (``watchdog`` None): the deterministic process with the
    traces of ``P``, a state per set of ``P``'s states after a trace.

    ``trace_watchdog(P, A, bark)`` (``watchdog = (A, bark)``): the same, and an
    event of ``A`` that ``P`` cannot perform is followed by ``bark -> STOP``, so
    ``P [T= Q`` iff ``(trace_watchdog(P, A, bark) [| A |] Q) \\ A`` never barks."""

    states: frozenset[Proc]
    watchdog: tuple[Events, str] | None = None
    span: Span | None = field(default=None, compare=False)


def operands(p: Proc) -> Iterator[Proc]:
    """The terms ``p`` is built from, syntactically: a call's body, a prefix's
    continuations, an operator's operands (evaluating lazy parts)."""
    if isinstance(p, Call):
        yield p.body()
    elif isinstance(p, Prefix):
        for e in p.events:
            yield p.cont(e)
    elif isinstance(p, ExtChoice | IntChoice | GenParallel | SyncExtChoice):
        yield from p.procs
    elif isinstance(p, AlphaParallel):
        for q, _ in p.procs:
            yield q
    elif isinstance(p, SlidingChoice | Interrupt | SeqComp | LinkedParallel | ExceptionOp | SyncInterrupt):
        yield p.left
        yield p.right
    elif isinstance(p, Hide | Rename | Prioritise | Chase):
        yield p.proc
    elif isinstance(p, Determinise):
        yield from p.states


def unfold(p: Proc, budget: int) -> int:
    """Evaluate up to ``budget`` distinct terms reachable through :func:`operands`; returns how many."""
    seen: set[Proc] = set()
    todo = [p]
    while todo and len(seen) < budget:
        q = todo.pop()
        if q in seen:
            continue
        seen.add(q)
        todo.extend(operands(q))
    return len(seen)
