"""Operational semantics of process terms: Roscoe's firing rules.

Pure functions over :mod:`processors.csp.semantics.procs` terms. ``transitions(p)``
gives the labelled successors of a term; labels are visible CSPm event
strings, :data:`TAU` (``"τ"``) or :data:`TICK` (``"✓"``).

States are *normalised* terms (:func:`normalise`): every :class:`~procs.Call`
in an active position (a position whose initial behaviour determines the
behaviour of the whole term) is unfolded, silently (no τ), as FDR does. Two
terms for the same state therefore compare equal, which keeps the explored
state space small (``P = a -> P`` has one state). Unfolding a call that is
already being unfolded means unguarded recursion (``P = P [] a -> P``), which
raises :class:`UnguardedRecursion` instead of looping.

Firing rules (Roscoe, *Understanding Concurrent Systems*, ch. 9):

* ``SKIP -✓-> Ω``; after ✓ every operator is Ω.
* ``P ; Q``: ✓ of ``P`` becomes τ to ``Q``.
* parallel: a component's ✓ becomes τ to Ω in that position; when every
  component is Ω the parallel does ✓ (distributed termination).
* ``P \\ X``: events in ``X`` become τ.
* ``P [> Q``: ``P``'s visible events and ✓ resolve; its τ keep the operator;
  a τ goes to ``Q``.
* ``P /\\ Q``: ``P``'s events keep the operator; ``Q``'s visible events and
  ✓ resolve; τ of either side keeps the operator.
* ``P [| A |> Q``: ``P``'s events outside ``A`` and τ keep the operator; an
  event of ``A`` goes to ``Q``; ✓ resolves.
* ``P [+ A +] Q``: τ of either side keeps the operator; events outside ``A``
  (and ✓) resolve the choice; events of ``A`` are performed by both sides
  together and keep it.
* ``P /+ A +\\ Q``: like ``P /\\ Q``, except that events of ``A`` are performed
  by both sides together and keep the operator.
* ``prioritise``: an event of ``P`` is enabled unless an event of higher
  priority is; ``chase(P)`` follows τs eagerly (one of them), dropping the
  visible events of states with a τ; ``deter(P)`` and ``trace_watchdog`` are
  the subset construction over ``P``'s τ-closed states.
* ``CHAOS(A) -τ-> STOP``, ``CHAOS(A) -a-> CHAOS(A)``; ``RUN(A) -a-> RUN(A)``;
  ``DIV -τ-> DIV``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from processors.csp.language.errors import CspmEvalError
from processors.csp.semantics import procs as P
from processors.csp.semantics.lts import TAU_NAME, TICK_NAME

TAU = TAU_NAME
TICK = TICK_NAME

Transition = tuple[str, P.Proc]


class Memo:
    """Per-exploration caches (see :func:`fire`): prefix firings and alphabet owners."""

    def __init__(self) -> None:
        self.prefixes: dict[P.Proc, list[Transition]] = {}
        self.owners: dict[tuple[frozenset[str], ...], dict[str, tuple[int, ...]]] = {}


_OMEGA = P.Omega()
_STOP = P.Stop()


class UnguardedRecursion(CspmEvalError):
    """A process name unfolds to itself without an event in between."""


# --------------------------------------------------------------------------
# normalisation (silent unfolding of calls in active positions)
# --------------------------------------------------------------------------


def normalise(p: P.Proc) -> P.Proc:
    """Unfold every call in an active position; raise on unguarded recursion."""
    return _norm(p, ())


def _norm(p: P.Proc, stack: tuple[P.Call, ...]) -> P.Proc:
    if isinstance(p, P.Call):
        if p in stack:
            chain = " -> ".join(c.name for c in (*stack[stack.index(p) :], p))
            span = p.span or next((c.span for c in stack if c.span is not None), None)
            if span is not None:
                raise UnguardedRecursion(f"unguarded recursion: {chain}", span.file, span.line, span.col)
            raise UnguardedRecursion(f"unguarded recursion: {chain}")
        return _norm(p.body(), (*stack, p))
    if isinstance(p, P.ExtChoice):
        kids = _dedupe(_norm(q, stack) for q in p.procs)
        if not kids:
            return _STOP
        if len(kids) == 1:
            return kids[0]
        return P.ExtChoice(tuple(kids), p.span)
    if isinstance(p, P.IntChoice):
        if len(p.procs) == 1:
            return _norm(p.procs[0], stack)
        if not p.procs:
            raise CspmEvalError("internal choice over an empty set")
        return p
    if isinstance(p, P.SlidingChoice):
        return P.SlidingChoice(_norm(p.left, stack), p.right, p.span)
    if isinstance(p, P.Interrupt):
        return P.Interrupt(_norm(p.left, stack), _norm(p.right, stack), p.span)
    if isinstance(p, P.SeqComp):
        return P.SeqComp(_norm(p.left, stack), p.right, p.span)
    if isinstance(p, P.ExceptionOp):
        return P.ExceptionOp(_norm(p.left, stack), p.right, p.events, p.span)
    if isinstance(p, P.SyncInterrupt):
        return P.SyncInterrupt(_norm(p.left, stack), _norm(p.right, stack), p.sync, p.span)
    if isinstance(p, P.SyncExtChoice):
        if not p.procs:
            return _STOP
        if len(p.procs) == 1:
            return _norm(p.procs[0], stack)
        return P.SyncExtChoice(tuple(_norm(q, stack) for q in p.procs), p.sync, p.span)
    if isinstance(p, P.GenParallel):
        if len(p.procs) == 1:
            return _norm(p.procs[0], stack)
        if not p.procs:
            return P.Skip()
        return P.GenParallel(tuple(_norm(q, stack) for q in p.procs), p.sync, p.span)
    if isinstance(p, P.AlphaParallel):
        if not p.procs:
            return P.Skip()
        return P.AlphaParallel(tuple((_norm(q, stack), a) for q, a in p.procs), p.span)
    if isinstance(p, P.LinkedParallel):
        return P.LinkedParallel(_norm(p.left, stack), _norm(p.right, stack), p.links, p.span)
    if isinstance(p, P.Hide):
        inner = _norm(p.proc, stack)
        if not p.hidden:
            return inner
        if isinstance(inner, P.Hide):  # (P \ A) \ B  ==  P \ (A ∪ B)
            return P.Hide(inner.proc, inner.hidden | p.hidden, p.span)
        return P.Hide(inner, p.hidden, p.span)
    if isinstance(p, P.Rename):
        return P.Rename(_norm(p.proc, stack), p.pairs, p.span)
    if isinstance(p, P.Prioritise):
        return P.Prioritise(_norm(p.proc, stack), p.levels, p.order, p.span)
    if isinstance(p, P.Chase):
        return P.Chase(_norm(p.proc, stack), p.span)
    if isinstance(p, P.Determinise):
        return P.Determinise(frozenset(_norm(q, stack) for q in p.states), p.watchdog, p.span)
    return p


def _dedupe(items: Iterable[P.Proc]) -> list[P.Proc]:
    seen: set[P.Proc] = set()
    out: list[P.Proc] = []
    for q in items:
        if q not in seen:
            seen.add(q)
            out.append(q)
    return out


# --------------------------------------------------------------------------
# firing rules
# --------------------------------------------------------------------------


def transitions(p: P.Proc) -> list[Transition]:
    """Labelled successors of ``p`` (normalised), without duplicates, in a stable order."""
    seen: set[Transition] = set()
    out: list[Transition] = []
    for t in fire(normalise(p)):
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def fire(p: P.Proc, memo: Memo | None = None) -> list[Transition]:
    """Successors of an already normalised term; the targets are normalised.

    Terms that appear fresh (a prefix's continuation, a branch of ``|~|``,
    the right of ``;`` and ``[>``) are normalised where they appear; every
    other successor is rebuilt from normalised parts, so it is normalised too.
    The list may repeat a transition (callers that care deduplicate; hashing
    terms at every level would cost more). ``memo`` (owned by the caller,
    e.g. one exploration) caches the firing of prefixes, whose continuations
    are the expensive part (CSPm evaluation). The result must not be mutated.
    """
    return _fire(p, memo)


def _fire(p: P.Proc, memo: Memo | None) -> list[Transition]:
    if isinstance(p, P.Prefix):
        if memo is None:
            return [(e, normalise(p.cont(e))) for e in p.events]
        got = memo.prefixes.get(p)
        if got is None:
            got = memo.prefixes[p] = [(e, normalise(p.cont(e))) for e in p.events]
        return got
    if isinstance(p, P.Stop | P.Omega):
        return []
    if isinstance(p, P.Skip):
        return [(TICK, _OMEGA)]
    if isinstance(p, P.Div):
        return [(TAU, p)]
    if isinstance(p, P.Run):
        return [(e, p) for e in sorted(p.events)]
    if isinstance(p, P.Chaos):
        return [(TAU, _STOP), *((e, p) for e in sorted(p.events))]
    if isinstance(p, P.Call):  # only reached through fire() on an unnormalised term
        return _fire(normalise(p), memo)
    if isinstance(p, P.ExtChoice):
        return _fire_ext(p, memo)
    if isinstance(p, P.IntChoice):
        return [(TAU, normalise(q)) for q in p.procs]
    if isinstance(p, P.SlidingChoice):
        out: list[Transition] = []
        for ev, q in fire(p.left, memo):
            out.append((ev, P.SlidingChoice(q, p.right, p.span) if ev == TAU else _after(ev, q)))
        out.append((TAU, normalise(p.right)))
        return out
    if isinstance(p, P.Interrupt):
        return _fire_interrupt(p, memo)
    if isinstance(p, P.SeqComp):
        out = []
        for ev, q in fire(p.left, memo):
            if ev == TICK:
                out.append((TAU, normalise(p.right)))
            else:
                out.append((ev, P.SeqComp(q, p.right, p.span)))
        return out
    if isinstance(p, P.GenParallel):
        return _fire_genpar(p, memo)
    if isinstance(p, P.AlphaParallel):
        return _fire_alphapar(p, memo)
    if isinstance(p, P.LinkedParallel):
        return _fire_linked(p, memo)
    if isinstance(p, P.Hide):
        out = []
        for ev, q in fire(p.proc, memo):
            if ev == TICK:
                out.append((TICK, _OMEGA))
            else:
                nxt = P.Hide(q.proc, q.hidden | p.hidden, p.span) if isinstance(q, P.Hide) else P.Hide(q, p.hidden, p.span)
                out.append((TAU if ev in p.hidden else ev, nxt))
        return out
    if isinstance(p, P.Rename):
        return _fire_rename(p, memo)
    if isinstance(p, P.ExceptionOp):
        out = []
        for ev, q in fire(p.left, memo):
            if ev == TICK:
                out.append((TICK, _OMEGA))
            elif ev in p.events:
                out.append((ev, normalise(p.right)))
            else:
                out.append((ev, P.ExceptionOp(q, p.right, p.events, p.span)))
        return out
    if isinstance(p, P.SyncExtChoice):
        return _fire_sync_ext(p, memo)
    if isinstance(p, P.Prioritise):
        return _fire_prioritise(p, memo)
    if isinstance(p, P.Chase):
        return _fire_chase(p, memo)
    if isinstance(p, P.Determinise):
        return _fire_determinise(p, memo)
    if isinstance(p, P.SyncInterrupt):
        return _fire_sync_interrupt(p, memo)
    raise CspmEvalError(f"no firing rule for process term {type(p).__name__}")


def _after(ev: str, q: P.Proc) -> P.Proc:
    return _OMEGA if ev == TICK else q


def _fire_ext(p: P.ExtChoice, memo: Memo | None) -> list[Transition]:
    out: list[Transition] = []
    for i, kid in enumerate(p.procs):
        for ev, q in fire(kid, memo):
            if ev == TAU:
                kids = _dedupe((*p.procs[:i], q, *p.procs[i + 1 :]))
                out.append((TAU, P.ExtChoice(tuple(kids), p.span) if len(kids) > 1 else kids[0]))
            else:
                out.append((ev, _after(ev, q)))
    return out


def _fire_interrupt(p: P.Interrupt, memo: Memo | None) -> list[Transition]:
    out: list[Transition] = []
    for ev, q in fire(p.left, memo):
        out.append((ev, _OMEGA if ev == TICK else P.Interrupt(q, p.right, p.span)))
    for ev, q in fire(p.right, memo):
        out.append((ev, P.Interrupt(p.left, q, p.span) if ev == TAU else _after(ev, q)))
    return out


def _fire_sync_ext(p: P.SyncExtChoice, memo: Memo | None) -> list[Transition]:
    out: list[Transition] = []
    synced: dict[str, list[list[P.Proc]]] = {}
    for i, kid in enumerate(p.procs):
        for ev, q in fire(kid, memo):
            if ev == TAU:
                out.append((TAU, P.SyncExtChoice((*p.procs[:i], q, *p.procs[i + 1 :]), p.sync, p.span)))
            elif ev in p.sync:
                synced.setdefault(ev, [[] for _ in p.procs])[i].append(q)
            else:
                out.append((ev, _after(ev, q)))
    for ev, targets in synced.items():
        if any(not t for t in targets):
            continue
        combos: list[tuple[P.Proc, ...]] = [()]
        for t in targets:
            combos = [(*c, q) for c in combos for q in t]
        out.extend((ev, P.SyncExtChoice(c, p.sync, p.span)) for c in combos)
    return out


def _fire_sync_interrupt(p: P.SyncInterrupt, memo: Memo | None) -> list[Transition]:
    out: list[Transition] = []
    right = fire(p.right, memo)
    right_synced: dict[str, list[P.Proc]] = {}
    for ev, q in right:
        if ev == TAU:
            out.append((TAU, P.SyncInterrupt(p.left, q, p.sync, p.span)))
        elif ev in p.sync:
            right_synced.setdefault(ev, []).append(q)
        else:
            out.append((ev, _after(ev, q)))
    for ev, q in fire(p.left, memo):
        if ev == TICK:
            out.append((TICK, _OMEGA))
        elif ev in p.sync:
            out.extend((ev, P.SyncInterrupt(q, r, p.sync, p.span)) for r in right_synced.get(ev, []))
        else:
            out.append((ev, P.SyncInterrupt(q, p.right, p.sync, p.span)))
    return out


def _fire_prioritise(p: P.Prioritise, memo: Memo | None) -> list[Transition]:
    moves = fire(p.proc, memo)
    offered = {ev for ev, _ in moves}

    def level(ev: str) -> int | None:
        if ev in (TAU, TICK):
            return 0
        return next((i for i, a in enumerate(p.levels) if ev in a), None)

    if p.levels:
        known = [lv for lv in (level(ev) for ev in offered) if lv is not None]
        best = min(known, default=None)

        def enabled(ev: str) -> bool:
            lv = level(ev)
            return lv is None or best is None or lv <= best

    else:

        def enabled(ev: str) -> bool:
            return not any((hi, ev) in p.order for hi in offered)

    out: list[Transition] = []
    for ev, q in moves:
        if enabled(ev):
            out.append((ev, _OMEGA if ev == TICK else P.Prioritise(q, p.levels, p.order, p.span)))
    return out


def _fire_chase(p: P.Chase, memo: Memo | None) -> list[Transition]:
    q = p.proc
    seen = {q}
    moves = fire(q, memo)
    while True:
        tau = next((r for ev, r in moves if ev == TAU), None)
        if tau is None:
            break
        if tau in seen:  # a τ-cycle: chase diverges
            return [(TAU, P.Chase(tau, p.span))]
        seen.add(tau)
        q = tau
        moves = fire(q, memo)
    return [(ev, _OMEGA if ev == TICK else P.Chase(r, p.span)) for ev, r in moves]


def _tau_closure(states: Iterable[P.Proc], memo: Memo | None) -> frozenset[P.Proc]:
    seen: set[P.Proc] = set(states)
    todo = list(seen)
    while todo:
        for ev, r in fire(todo.pop(), memo):
            if ev == TAU and r not in seen:
                seen.add(r)
                todo.append(r)
    return frozenset(seen)


def _fire_determinise(p: P.Determinise, memo: Memo | None) -> list[Transition]:
    after: dict[str, list[P.Proc]] = {}
    for st in _tau_closure(p.states, memo):
        for ev, r in fire(st, memo):
            if ev != TAU:
                after.setdefault(ev, []).append(r)
    out: list[Transition] = []
    for ev in sorted(after):
        if ev == TICK:
            out.append((TICK, _OMEGA))
        else:
            out.append((ev, P.Determinise(_tau_closure(after[ev], memo), p.watchdog, p.span)))
    if p.watchdog is not None:
        watched, bark = p.watchdog
        barking = P.Prefix(("bark", bark), (bark,), lambda _e: _STOP)
        out.extend((ev, barking) for ev in sorted(watched - after.keys()))
    return out


def _parallel_moves(
    comps: Sequence[P.Proc],
    participants: Callable[[str], tuple[int, ...] | None],
    make: Callable[[tuple[P.Proc, ...]], P.Proc],
    memo: Memo | None,
) -> list[Transition]:
    """The parallel rule shared by ``[| A |]``, ``|||`` and ``[A || B]``.

    ``participants(e)`` is None when ``e`` is not synchronised (any component
    may do it alone), else the components that must all perform it together.
    A component's ✓ becomes τ to Ω in its position; when all are Ω: ✓.
    """
    succ = [fire(c, memo) for c in comps]

    def rebuild(changes: dict[int, P.Proc]) -> P.Proc:
        return make(tuple(changes.get(i, c) for i, c in enumerate(comps)))

    out: list[Transition] = []
    sync_moves: dict[str, list[list[P.Proc]]] = {}
    for i, moves in enumerate(succ):
        for ev, q in moves:
            if ev == TAU:
                out.append((TAU, rebuild({i: q})))
            elif ev == TICK:
                out.append((TAU, rebuild({i: _OMEGA})))
            elif participants(ev) is None:
                out.append((ev, rebuild({i: q})))
            else:
                sync_moves.setdefault(ev, [[] for _ in comps])[i].append(q)
    for ev, targets in sync_moves.items():
        who = participants(ev) or ()
        if not who or any(not targets[i] for i in who):
            continue
        combos: list[dict[int, P.Proc]] = [{}]
        for i in who:
            combos = [{**c, i: q} for c in combos for q in targets[i]]
        out.extend((ev, rebuild(c)) for c in combos)
    if comps and all(isinstance(c, P.Omega) for c in comps):
        out.append((TICK, _OMEGA))
    return out


def _fire_genpar(p: P.GenParallel, memo: Memo | None) -> list[Transition]:
    everyone = tuple(range(len(p.procs)))

    def participants(ev: str) -> tuple[int, ...] | None:
        return everyone if ev in p.sync else None

    def make(comps: tuple[P.Proc, ...]) -> P.Proc:
        return P.GenParallel(comps, p.sync, p.span)

    return _parallel_moves(p.procs, participants, make, memo)


def _fire_alphapar(p: P.AlphaParallel, memo: Memo | None) -> list[Transition]:
    comps = tuple(q for q, _ in p.procs)
    alphas = tuple(a for _, a in p.procs)
    who = memo.owners.get(alphas) if memo is not None else None
    if who is None:
        who = {}
        for i, a in enumerate(alphas):
            for e in a:
                who[e] = (*who.get(e, ()), i)
        if memo is not None:
            memo.owners[alphas] = who

    def participants(ev: str) -> tuple[int, ...] | None:
        # an event outside every alphabet cannot happen: nobody may do it
        return who.get(ev, ())

    def make(new: tuple[P.Proc, ...]) -> P.Proc:
        return P.AlphaParallel(tuple(zip(new, alphas, strict=True)), p.span)

    return _parallel_moves(comps, participants, make, memo)


def _fire_linked(p: P.LinkedParallel, memo: Memo | None) -> list[Transition]:
    left_links = {a for a, _ in p.links}
    right_links = {b for _, b in p.links}
    ls, rs = fire(p.left, memo), fire(p.right, memo)
    out: list[Transition] = []

    def mk(a: P.Proc, b: P.Proc) -> P.Proc:
        return P.LinkedParallel(a, b, p.links, p.span)

    for ev, q in ls:
        if ev == TICK:
            out.append((TAU, mk(_OMEGA, p.right)))
        elif ev not in left_links:
            out.append((ev, mk(q, p.right)))
    for ev, q in rs:
        if ev == TICK:
            out.append((TAU, mk(p.left, _OMEGA)))
        elif ev not in right_links:
            out.append((ev, mk(p.left, q)))
    right_by_event: dict[str, list[P.Proc]] = {}
    for ev, q in rs:
        right_by_event.setdefault(ev, []).append(q)
    for a, b in sorted(p.links):
        for ev, q in ls:
            if ev == a:
                out.extend((TAU, mk(q, r)) for r in right_by_event.get(b, []))
    if isinstance(p.left, P.Omega) and isinstance(p.right, P.Omega):
        out.append((TICK, _OMEGA))
    return out


def _fire_rename(p: P.Rename, memo: Memo | None) -> list[Transition]:
    image: dict[str, list[str]] = {}
    for old, new in sorted(p.pairs):
        image.setdefault(old, []).append(new)
    out: list[Transition] = []
    for ev, q in fire(p.proc, memo):
        if ev == TICK:
            out.append((TICK, _OMEGA))
            continue
        nxt = P.Rename(q, p.pairs, p.span)
        if ev == TAU or ev not in image:
            out.append((ev, nxt))
        else:
            out.extend((new, nxt) for new in image[ev])
    return out


# --------------------------------------------------------------------------
# descriptions and source spans (for counterexamples and ``csp explore``)
# --------------------------------------------------------------------------


def describe(p: P.Proc, depth: int = 3) -> str:
    """A short, human-readable rendering of a state."""
    if depth <= 0:
        return "…"
    d = depth - 1
    if isinstance(p, P.Stop):
        return "STOP"
    if isinstance(p, P.Skip):
        return "SKIP"
    if isinstance(p, P.Omega):
        return "Ω"
    if isinstance(p, P.Div):
        return "DIV"
    if isinstance(p, P.Chaos):
        return f"CHAOS({_evset(p.events)})"
    if isinstance(p, P.Run):
        return f"RUN({_evset(p.events)})"
    if isinstance(p, P.Prefix):
        evs = p.events
        head = evs[0] if len(evs) == 1 else "{" + ", ".join(evs[:3]) + (", …}" if len(evs) > 3 else "}")
        where = f"@{p.span.line}:{p.span.col}" if p.span else ""
        return f"{head} -> …{where}" if evs else f"STOP{where}"
    if isinstance(p, P.Call):
        return p.name
    if isinstance(p, P.ExtChoice):
        return "(" + " [] ".join(describe(q, d) for q in p.procs) + ")"
    if isinstance(p, P.IntChoice):
        return "(" + " |~| ".join(describe(q, d) for q in p.procs) + ")"
    if isinstance(p, P.SlidingChoice):
        return f"({describe(p.left, d)} [> {describe(p.right, d)})"
    if isinstance(p, P.Interrupt):
        return f"({describe(p.left, d)} /\\ {describe(p.right, d)})"
    if isinstance(p, P.ExceptionOp):
        return f"({describe(p.left, d)} [|{_evset(p.events)}|> {describe(p.right, d)})"
    if isinstance(p, P.SyncExtChoice):
        return "(" + f" [+{_evset(p.sync)}+] ".join(describe(q, d) for q in p.procs) + ")"
    if isinstance(p, P.SyncInterrupt):
        return f"({describe(p.left, d)} /+{_evset(p.sync)}+\\ {describe(p.right, d)})"
    if isinstance(p, P.SeqComp):
        return f"({describe(p.left, d)} ; {describe(p.right, d)})"
    if isinstance(p, P.GenParallel):
        op = " ||| " if not p.sync else f" [|{_evset(p.sync)}|] "
        return "(" + op.join(describe(q, d) for q in p.procs) + ")"
    if isinstance(p, P.AlphaParallel):
        return "(" + " || ".join(describe(q, d) for q, _ in p.procs) + ")"
    if isinstance(p, P.LinkedParallel):
        return f"({describe(p.left, d)} [<->] {describe(p.right, d)})"
    if isinstance(p, P.Hide):
        return f"({describe(p.proc, d)} \\ {_evset(p.hidden)})"
    if isinstance(p, P.Rename):
        return f"{describe(p.proc, d)}[[…]]"
    if isinstance(p, P.Prioritise):
        return f"prioritise({describe(p.proc, d)}, …)"
    if isinstance(p, P.Chase):
        return f"chase({describe(p.proc, d)})"
    if isinstance(p, P.Determinise):
        name = "deter" if p.watchdog is None else "trace_watchdog"
        return f"{name}({{" + ", ".join(describe(q, d) for q in list(p.states)[:3]) + "})"
    return type(p).__name__


def _evset(events: frozenset[str]) -> str:
    items = sorted(events)
    return "{" + ", ".join(items[:4]) + (", …}" if len(items) > 4 else "}")


def spans(p: P.Proc) -> list[P.Span]:
    """Source spans of the syntax active in state ``p`` (outermost first, no duplicates)."""
    out: list[P.Span] = []
    seen: set[P.Span] = set()

    def add(s: P.Span | None) -> None:
        if s is not None and s not in seen:
            seen.add(s)
            out.append(s)

    stack: list[P.Proc] = [p]
    while stack:
        q = stack.pop(0)
        add(getattr(q, "span", None))
        stack.extend(_children(q))
    return out


def _children(p: P.Proc) -> list[P.Proc]:
    if isinstance(p, P.ExtChoice | P.IntChoice | P.GenParallel | P.SyncExtChoice):
        return list(p.procs)
    if isinstance(p, P.ExceptionOp):
        return [p.left]
    if isinstance(p, P.SyncInterrupt):
        return [p.left, p.right]
    if isinstance(p, P.AlphaParallel):
        return [q for q, _ in p.procs]
    if isinstance(p, P.SlidingChoice | P.Interrupt | P.SeqComp | P.LinkedParallel):
        return [p.left, p.right] if not isinstance(p, P.SeqComp) else [p.left]
    if isinstance(p, P.Hide | P.Rename | P.Prioritise | P.Chase):
        return [p.proc]
    if isinstance(p, P.Determinise):
        return list(p.states)
    return []
