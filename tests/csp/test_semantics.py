"""Firing rules (Roscoe) over hand-built process terms."""

from __future__ import annotations

import pytest
from hand_terms import SKIP, STOP, Defs, ext, hide, intc, par, pre, seq

from processors.csp.semantics import procs as P
from processors.csp.semantics.operational import (
    TAU,
    TICK,
    UnguardedRecursion,
    describe,
    normalise,
    spans,
    transitions,
)


def labels(p: P.Proc) -> list[str]:
    return sorted(ev for ev, _ in transitions(p))


def test_stop_skip_omega_div() -> None:
    assert transitions(STOP) == []
    assert transitions(SKIP) == [(TICK, P.Omega())]
    assert transitions(P.Omega()) == []
    assert transitions(P.Div()) == [(TAU, P.Div())]


def test_prefix_fires_its_event() -> None:
    assert transitions(pre("a", STOP)) == [("a", STOP)]


def test_recursion_is_unfolded_silently_and_closes_the_loop() -> None:
    d = Defs()
    p = d.define("P", lambda: pre("a", d.call("P")))
    [(ev, nxt)] = transitions(p)
    assert ev == "a"
    assert nxt == normalise(p)  # one state, no τ for the unfolding


def test_unguarded_recursion_is_a_clear_error() -> None:
    d = Defs()
    p = d.define("P", lambda: ext(d.call("P"), pre("a", STOP)))
    with pytest.raises(UnguardedRecursion, match="unguarded recursion: P -> P"):
        transitions(p)


def test_external_choice_resolves_on_visible_but_not_tau() -> None:
    p = ext(pre("a", STOP), intc(pre("b", STOP), pre("c", STOP)))
    moves = transitions(p)
    assert sorted(ev for ev, _ in moves) == sorted([TAU, TAU, "a"])
    for ev, q in moves:
        if ev == TAU:
            assert isinstance(q, P.ExtChoice)  # τ does not resolve []
            assert "a" in labels(q)


def test_internal_choice_is_tau_to_each_branch() -> None:
    assert transitions(intc(pre("a", STOP), pre("b", STOP))) == [(TAU, pre("a", STOP)), (TAU, pre("b", STOP))]


def test_sequential_composition_turns_tick_into_tau() -> None:
    moves = transitions(seq(SKIP, pre("b", STOP)))
    assert moves == [(TAU, pre("b", STOP))]
    assert labels(seq(pre("a", SKIP), STOP)) == ["a"]


def test_hiding_turns_events_into_tau_and_keeps_tick() -> None:
    assert labels(hide(pre("a", pre("b", STOP)), {"a"})) == [TAU]
    assert transitions(hide(SKIP, {"a"})) == [(TICK, P.Omega())]


def test_generalised_parallel_synchronises_and_interleaves() -> None:
    p = par({"s"}, pre("s", STOP), ext(pre("s", STOP), pre("x", STOP)))
    assert labels(p) == ["s", "x"]
    blocked = par({"s"}, pre("s", STOP), pre("t", STOP))
    assert labels(blocked) == ["t"]


def test_distributed_termination() -> None:
    p = par(set(), SKIP, SKIP)
    moves = transitions(p)
    assert [ev for ev, _ in moves] == [TAU, TAU]  # each ✓ becomes τ to Ω
    q = moves[0][1]
    r = transitions(q)[0][1]
    assert transitions(r) == [(TICK, P.Omega())]  # all Ω: the parallel terminates


def test_alphabetised_parallel_needs_every_owner() -> None:
    p = P.AlphaParallel(((pre("a", STOP), frozenset({"a", "b"})), (ext(pre("a", STOP), pre("b", STOP)), frozenset({"a", "b"}))))
    assert labels(p) == ["a"]
    # events outside every alphabet cannot happen
    q = P.AlphaParallel(((pre("z", STOP), frozenset({"a"})),))
    assert labels(q) == []


def test_sliding_choice_and_interrupt() -> None:
    sl = P.SlidingChoice(pre("a", STOP), pre("b", STOP))
    assert labels(sl) == sorted([TAU, "a"])
    it = P.Interrupt(pre("a", STOP), pre("i", STOP))
    moves = dict(transitions(it))
    assert moves["i"] == STOP
    assert isinstance(moves["a"], P.Interrupt)  # P's events keep the interrupt available


def test_chaos_and_run() -> None:
    c = P.Chaos(frozenset({"a", "b"}))
    assert sorted(transitions(c), key=str) == sorted([(TAU, STOP), ("a", c), ("b", c)], key=str)
    r = P.Run(frozenset({"a"}))
    assert transitions(r) == [("a", r)]


def test_renaming_and_linked_parallel() -> None:
    ren = P.Rename(pre("a", STOP), frozenset({("a", "b"), ("a", "c")}))
    assert labels(ren) == ["b", "c"]
    linked = P.LinkedParallel(pre("out", pre("x", STOP)), pre("in", STOP), frozenset({("out", "in")}))
    assert labels(linked) == [TAU]


def test_describe_and_spans() -> None:
    span = P.Span("m.cspm", 3, 1, 3, 10)
    p = P.Prefix(key="k", events=("a",), cont=lambda _e: STOP, span=span)
    assert "a" in describe(p)
    assert spans(par(set(), p, STOP)) == [span]
