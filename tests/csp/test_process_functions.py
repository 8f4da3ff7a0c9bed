"""FDR's process functions: prioritise, prioritise_nocache, prioritisepo, chase, deter,
trace_watchdog, and a compression applied to the process being defined."""

from __future__ import annotations

import pytest
from test_sync_operators import traces

from processors.csp.language.errors import CspmError, CspmTypeError
from processors.csp.semantics import procs as P
from processors.csp.semantics.frontend import load_source
from processors.csp.semantics.operational import TAU, UnguardedRecursion, normalise, transitions

HEAD = "channel a, b, c, d, bark\nexternal prioritise, prioritise_nocache, prioritisepo, deter, trace_watchdog\n"


def proc(body: str, name: str = "P") -> P.Proc:
    return load_source(HEAD + body).process(name)


def initials(p: P.Proc) -> list[str]:
    return sorted(ev for ev, _ in transitions(p))


def test_prioritise_drops_lower_priority_events() -> None:
    p = proc("P = prioritise(a -> STOP [] b -> STOP [] c -> STOP, <{a}, {b}>)")
    assert initials(p) == ["a", "c"]  # c is in no set: never blocked
    q = proc("P = prioritise_nocache(b -> STOP [] c -> STOP, <{a}, {b}, {c}>)")
    assert initials(q) == ["b"]


def test_tau_has_the_priority_of_the_first_set() -> None:
    # τ is possible initially, so b (second set) is blocked; a (first set) is not
    p = proc("P = prioritise((a -> STOP [] b -> STOP) [] (STOP |~| STOP), <{a}, {b}>)")
    assert initials(p) == sorted([TAU, "a"])


def test_prioritise_applies_in_every_state() -> None:
    p = proc("P = prioritise(d -> (a -> STOP [] b -> STOP), <{b}, {a}>)")
    [(ev, nxt)] = transitions(p)
    assert ev == "d" and initials(nxt) == ["b"]


def test_prioritisepo() -> None:
    src = "P = prioritisepo(a -> STOP [] b -> STOP [] c -> STOP, {a, b, c}, {(a, b), (b, c)}, {a})"
    assert initials(proc(src)) == ["a"]
    # an event outside the order is only below τ / ✓
    q = proc("P = prioritisepo(b -> STOP [] c -> STOP, {a, b, c}, {(a, b)}, {a})")
    assert initials(q) == ["b", "c"]


@pytest.mark.parametrize(
    "bad",
    [
        "P = prioritisepo(STOP, {a}, {(a, b)}, {a})",  # b not in the prioritised set
        "P = prioritisepo(STOP, {a, b}, {(a, b), (b, a)}, {})",  # a cycle
        "P = prioritisepo(STOP, {a, b}, {(a, b)}, {b})",  # b maximal but below a
        "P = prioritise(STOP, <>)",
    ],
)
def test_prioritise_arguments_are_checked(bad: str) -> None:
    with pytest.raises(CspmError):
        P.unfold(proc(bad), 10)
        transitions(proc(bad))


def test_prioritise_must_be_declared_external() -> None:
    with pytest.raises(CspmTypeError, match="not in scope"):
        load_source("P = prioritise(STOP, <{}>)")


def test_chase_follows_taus_eagerly() -> None:
    p = proc("P = chase((a -> STOP) [> (b -> STOP))")
    # the τ of [> is taken, dropping a
    assert traces(p, 2) == {(), ("b",)}
    # no τ: unchanged
    assert traces(proc("P = chase(a -> b -> STOP)"), 3) == {(), ("a",), ("a", "b")}
    # a τ-loop diverges
    assert initials(proc("P = chase(DIV)")) == [TAU]


def test_deter_is_deterministic_with_the_same_traces() -> None:
    p = proc("P = deter((a -> b -> STOP) |~| (a -> c -> STOP))")
    [(ev, nxt)] = transitions(p)
    assert ev == "a" and initials(nxt) == ["b", "c"]
    assert traces(p, 3) == {(), ("a",), ("a", "b"), ("a", "c")}


def test_trace_watchdog_barks_on_an_event_the_spec_cannot_do() -> None:
    w = proc("P = trace_watchdog(a -> b -> STOP, {a, b}, bark)")
    t = traces(w, 3)
    assert ("a", "b") in t and ("b", "bark") in t and ("a", "a", "bark") in t
    # composed with an implementation and hidden, barking means "not a trace refinement"
    ok = proc("Q = a -> b -> STOP\nP = (trace_watchdog(a -> b -> STOP, {a, b}, bark) [| {a, b} |] Q) \\ {a, b}")
    bad = proc("Q = a -> a -> STOP\nP = (trace_watchdog(a -> b -> STOP, {a, b}, bark) [| {a, b} |] Q) \\ {a, b}")
    assert traces(ok, 2) == {()}
    assert traces(bad, 2) == {(), ("bark",)}


def test_compression_of_the_process_being_defined_is_unguarded_recursion() -> None:
    p = load_source("transparent normal\nP = normal(P)\n").process("P")
    assert P.unfold(p, 10) >= 1
    with pytest.raises(UnguardedRecursion):
        normalise(p)
