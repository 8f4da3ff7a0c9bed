"""Evaluator: values, processes, laziness, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.csp.language.errors import CspmEvalError, CspmUnsupported
from processors.csp.semantics import procs as P
from processors.csp.semantics.frontend import load_file, load_source
from processors.csp.semantics.values import FALSE, TRUE, VSet, render

SRC = """
channel a, b : {0..2}
channel c : {0..1}.Bool
channel done
datatype Colour = Red | Green | Mix.{0..1}
nametype Small = {0..2}
fact(0) = 1
fact(n) = n * fact(n-1)
len(<>) = 0
len(<_>^xs) = 1 + len(xs)
P = a?x -> b!x -> P
Q(n) = n < 2 & c.n?v -> Q(n+1)
R = [] i : Small @ a.i -> STOP
S = done -> SKIP ; S
Loop(n) = Loop(n+1)
T = (a.0 -> STOP) [| {| a |} |] (a?x -> STOP)
"""


@pytest.fixture(scope="module")
def mod():  # type: ignore[no-untyped-def]
    return load_source(SRC, "t.csp")


def test_arithmetic_and_recursion(mod) -> None:  # type: ignore[no-untyped-def]
    assert mod.eval_value("fact(5)") == 120
    assert mod.eval_value("len(<1,2,3>)") == 3
    assert mod.eval_value("-7 / 2") == -4  # floor division, as Haskell div
    assert mod.eval_value("-7 % 2") == 1
    assert mod.eval_value("7 % 3") == 1


def test_booleans_are_not_ints(mod) -> None:  # type: ignore[no-untyped-def]
    assert mod.eval_value("1 == 1") is TRUE
    v = mod.eval_value("{true, false}")
    assert isinstance(v, VSet) and len(v.items) == 2
    assert mod.eval_value("{1, 2}") != v
    assert TRUE != 1 and hash(TRUE) != hash(1) or TRUE != 1


def test_sets_and_sequences(mod) -> None:  # type: ignore[no-untyped-def]
    assert render(mod.eval_value("{x*2 | x <- {0..3}, x != 1}")) == "{0,4,6}"
    assert render(mod.eval_value("<1,2>^<3>")) == "<1,2,3>"
    assert mod.eval_value("card(union({1,2},{2,3}))") == 3
    assert mod.eval_value("member(Mix.1, Colour)") is TRUE
    assert mod.eval_value("member(Mix.1, {Red})") is FALSE


def test_events_rendering(mod) -> None:  # type: ignore[no-untyped-def]
    evs = mod.all_events()
    assert "c.1.true" in evs and "done" in evs and "a.2" in evs
    assert len(evs) == 3 + 3 + 4 + 1
    assert render(mod.eval_value("{| c.0 |}")) == "{c.0.false,c.0.true}"
    assert mod.event_values("c.1.true") == ("c", (1, TRUE))
    with pytest.raises(CspmEvalError):
        mod.event_values("c.7")


def test_prefix_input_and_continuation(mod) -> None:  # type: ignore[no-untyped-def]
    p = mod.process("P")
    assert isinstance(p, P.Call)
    pre = p.body()
    assert isinstance(pre, P.Prefix) and pre.events == ("a.0", "a.1", "a.2")
    nxt = pre.cont("a.1")
    assert isinstance(nxt, P.Prefix) and nxt.events == ("b.1",)
    again = nxt.cont("b.1")
    assert again == p  # same Call key: a finite state space


def test_guard_is_lazy_and_false_guard_is_stop(mod) -> None:  # type: ignore[no-untyped-def]
    q = mod.eval_process("Q(2)")
    assert isinstance(q, P.Call) and isinstance(q.body(), P.Stop)
    q0 = mod.eval_process("Q(0)").body()
    assert isinstance(q0, P.Prefix) and q0.events == ("c.0.false", "c.0.true")


def test_replicated_and_parallel(mod) -> None:  # type: ignore[no-untyped-def]
    r = mod.process("R").body()
    assert isinstance(r, P.ExtChoice) and len(r.procs) == 3
    t = mod.process("T").body()
    assert isinstance(t, P.GenParallel) and t.sync == frozenset({"a.0", "a.1", "a.2"})


def test_seq_comp_right_side_is_lazy(mod) -> None:  # type: ignore[no-untyped-def]
    s = mod.process("S").body()
    assert isinstance(s, P.SeqComp) and isinstance(s.right, P.Call)


def test_runaway_recursion_is_clear_error(mod) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CspmEvalError) as ei:
        mod.eval_value("Loop(0)")
    assert "recursion too deep" in str(ei.value)


def test_runtime_errors(mod) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CspmEvalError):
        mod.eval_value("1/0")
    with pytest.raises(CspmEvalError):
        mod.eval_value("head(<>)")
    with pytest.raises(CspmUnsupported):
        mod.eval_value("card({0..})")


def test_rename_and_link_pairs() -> None:
    m = load_source("channel a, b : {0,1}\nP = a?x -> P\nQ = P [[ a <- b ]]\nL = P [a <-> b] (b?x -> STOP)\n")
    q = m.process("Q").body()
    assert isinstance(q, P.Rename) and q.pairs == frozenset({("a.0", "b.0"), ("a.1", "b.1")})
    lk = m.process("L").body()
    assert isinstance(lk, P.LinkedParallel) and ("a.1", "b.1") in lk.links


def test_datatype_pattern_matching() -> None:
    m = load_source(
        "datatype T = Leaf.{0..3} | Pair.{0..3}.{0..3}\n"
        "sumT(Leaf.x) = x\nsumT(Pair.x.y) = x + y\n"
        "test1 = sumT(Pair.1.2) == 3\ntest2 = sumT(Leaf.3) == 3\n"
    )
    assert m.eval_value("test1") is TRUE and m.eval_value("test2") is TRUE


def test_libcspm_dot_semantics() -> None:
    m = load_source(
        "datatype A = B.A.{0,1}.A | C | D.{0,1,2}\n"
        "func3(B.x.y) = (x,y)\nfunc4(B.x.y.z) = (x,y,z)\n"
        "t1 = func4(B.(D.0).1.(D.2)) == (D.0, 1, D.2)\n"
        "t2 = func3(B.C.0.C) == (C, 0.C)\n"
    )
    assert m.eval_value("t1") is TRUE and m.eval_value("t2") is TRUE


MODELS = sorted((Path(__file__).parent / "models").glob("*.csp"))


def _walk(p: P.Proc, budget: int = 3000) -> int:
    """Unfold process terms syntactically (calls, prefixes, operands); returns terms seen."""
    return P.unfold(p, budget)


@pytest.mark.parametrize("path", MODELS, ids=[m.name for m in MODELS])
def test_realistic_models_load_and_unfold(path: Path) -> None:
    m = load_file(path)
    assert m.assertions
    for a in m.assertions:
        assert _walk(m.eval_process(a.left)) > 1
        if a.right is not None:
            assert _walk(m.eval_process(a.right)) >= 1
    for name in ("test1", "test2"):
        if m.has_name(name):
            assert m.eval_value(name) is TRUE


def test_phils_state_is_finite_and_recursion_closes() -> None:
    m = load_file(Path(__file__).parent / "models" / "phils.csp")
    # PHIL(i) returns to itself after its 8-event cycle: the walk closes well under the budget
    assert _walk(m.eval_process("PHIL(0)")) < 40


def test_deep_recursion_in_lazy_continuation_is_clear_error() -> None:
    m = load_source("channel a\nf(n) = if n == 0 then 0 else 1 + f(n-1)\nP(n) = a -> P(f(n))\n", "r.csp")
    assert m.eval_value("f(50)") == 50
    pre = m.eval_process("P(100000)").body()
    assert isinstance(pre, P.Prefix)
    with pytest.raises(CspmEvalError) as ei:
        pre.cont("a")
    assert "recursion too deep evaluating f" in str(ei.value)


def test_large_and_infinite_channel_types_are_not_enumerated_needlessly() -> None:
    m = load_source("channel c : {0..999}.{0..999}\nchannel i : Int\nP = c!1!2 -> c.3?x -> i!x -> P\n")
    p = m.process("P").body()
    assert isinstance(p, P.Prefix) and p.events == ("c.1.2",)
    q = p.cont("c.1.2")
    assert isinstance(q, P.Prefix) and len(q.events) == 1000 and q.events[:2] == ("c.3.0", "c.3.1")
    r = q.cont("c.3.7")
    assert isinstance(r, P.Prefix) and r.events == ("i.7",)
    with pytest.raises(CspmUnsupported):
        m.all_events()  # Int is infinite


def test_datatype_channels_enumerate_structurally() -> None:
    m = load_source(
        "datatype M = A.{0..999}.{0..999} | B\nchannel c : M\nP = c!A.1.2 -> c?A.3.x -> c.B -> STOP\n"
        "t1 = card({| c.A.3 |}) == 1000\n"
    )
    p = m.process("P").body()
    assert isinstance(p, P.Prefix) and p.events == ("c.A.1.2",)
    q = p.cont("c.A.1.2")
    assert isinstance(q, P.Prefix) and len(q.events) == 1000 and "c.A.3.999" in q.events
    assert m.eval_value("t1") is TRUE
    with pytest.raises(CspmEvalError):
        m.eval_value("c.A.1.1000")


def test_restricted_input_over_infinite_type() -> None:
    m = load_source("channel c : Int\nchannel d : Int.Bool\nP = c?x:{0..3} -> d!x?b -> P\n")
    p = m.process("P").body()
    assert isinstance(p, P.Prefix) and p.events == ("c.0", "c.1", "c.2", "c.3")
    q = p.cont("c.2")
    assert isinstance(q, P.Prefix) and q.events == ("d.2.false", "d.2.true")
    with pytest.raises(CspmUnsupported):
        load_source("channel c : Int\nP = c?x -> P\n").process("P").body()


def test_event_values_without_enumerating_events() -> None:
    m = load_source(
        "nametype Pr = {(x,y) | x <- {0..1}, y <- {0..1}}\ndatatype D = A.{0..2} | B\n"
        "channel c : Int.Bool\nchannel d : D.Pr\nchannel e\n"
    )
    assert m.event_values("c.-3.true") == ("c", (-3, TRUE))
    ch, (f1, f2) = m.event_values("d.A.1.(0,1)")
    assert ch == "d" and render(f1) == "A.1" and render(f2) == "(0,1)"
    assert m.event_values("e") == ("e", ())
    for bad in ("c.1", "d.C", "x", "d.A.7.(0,1)"):
        with pytest.raises(CspmEvalError):
            m.event_values(bad)


def test_loop_builtin_unfolds_to_sequential_composition() -> None:
    m = load_source("channel a\nexternal loop\nQ = loop(a -> SKIP)\n")
    q = m.process("Q")
    assert isinstance(q, P.Call)
    body = q.body()
    assert isinstance(body, P.SeqComp) and isinstance(body.left, P.Prefix) and body.right == q


def _buffer_lts(src: str, name: str) -> dict[P.Proc, list[tuple[str, P.Proc]]]:
    from processors.csp.semantics.operational import transitions

    m = load_source(src, "b.csp")
    start = m.process(name)
    seen: dict[P.Proc, list[tuple[str, P.Proc]]] = {}
    todo = [start]
    while todo:
        q = todo.pop()
        if q in seen:
            continue
        seen[q] = list(transitions(q))
        todo.extend(t for _, t in seen[q])
    return seen


def test_buffer_is_a_fifo_of_the_given_capacity() -> None:
    src = "channel c, d : {0..2}\nB = BUFFER(2, {(c.x, d.x) | x <- {0..2}})\n"
    lts = _buffer_lts(src, "B")
    # one state per content: sequences of length 0..2 over 3 values
    assert len([q for q in lts if isinstance(q, P.Prefix)]) == 1 + 3 + 9
    m = load_source(src, "b.csp")
    from processors.csp.semantics.operational import transitions

    s = m.process("B")
    for e in ("c.2", "c.0"):
        s = dict(transitions(s))[e]
    offered = sorted(e for e, _ in transitions(s))
    assert offered == ["d.2"]  # full: no input; oldest item first
    s = dict(transitions(s))["d.2"]
    assert sorted(e for e, _ in transitions(s)) == ["c.0", "c.1", "c.2", "d.0"]


@pytest.mark.parametrize(
    ("body", "msg"),
    [
        ("BUFFER(0, {(c.x, d.x) | x <- Bool})", "capacity must be at least 1"),
        ("BUFFER(2, {(c.x, d.true) | x <- Bool})", "occurs more than once"),
    ],
)
def test_buffer_rejects_bad_arguments(body: str, msg: str) -> None:
    m = load_source(f"channel c, d : Bool\nB = {body}\n", "b.csp")
    with pytest.raises(CspmEvalError) as ei:
        m.process("B")
    assert msg in str(ei.value)


def test_compression_of_itself_evaluates_lazily_and_is_unguarded_recursion() -> None:
    m = load_source("transparent normal\nchannel a\nP = normal(P)\nQ = a -> normal(Q)\n", "n.csp")
    from processors.csp.semantics.operational import UnguardedRecursion, transitions

    with pytest.raises(UnguardedRecursion):
        transitions(m.process("P"))
    assert [e for e, _ in transitions(m.process("Q"))] == ["a"]
