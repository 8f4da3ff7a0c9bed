"""Checks on hand-built LTSs and on hand-built terms compiled by BFS."""

from __future__ import annotations

import functools

import pytest
from hand_terms import SKIP, STOP, Defs, ext, hide, inp, intc, par, pre, seq

from processors.csp.check.checker import deadlock_free, deterministic, divergence_free, refines
from processors.csp.check.compile import StateSpaceLimit, compile_process, explore_terms, to_network
from processors.csp.semantics import network as N
from processors.csp.semantics import procs as P
from processors.csp.semantics.lts import LTS, TAU, TICK_NAME, from_edges

EV = ("τ", "✓", "a", "b")
A, B = 2, 3


def lts(n: int, edges: list[tuple[int, int, int]]) -> LTS:
    return from_edges(EV, 0, n, edges)


def compiled(p: P.Proc) -> LTS:
    return explore_terms(p).lts


# ---------------------------------------------------------------- compile


def test_bfs_numbers_states_in_discovery_order_and_counts() -> None:
    d = Defs()
    sender = d.define("S", lambda: pre("c.1", d.call("S")))
    recv = d.define("R", lambda: inp(("c.0", "c.1"), lambda _e: d.call("R"), "r"))
    system = par({"c.0", "c.1"}, sender, recv)
    ex = explore_terms(system)
    assert (ex.lts.num_states, ex.lts.num_transitions) == (1, 1)
    one_shot = par({"c.0", "c.1"}, pre("c.1", STOP), recv)
    assert (compiled(one_shot).num_states, compiled(one_shot).num_transitions) == (2, 1)


def test_state_space_limit_is_a_clear_error() -> None:
    d = Defs()

    def count(n: int) -> P.Proc:
        return P.Prefix(key=("up", n), events=("up",), cont=lambda _e: count(n + 1))

    with pytest.raises(StateSpaceLimit, match="exceeds the limit of 50 states"):
        explore_terms(count(0), max_states=50)
    del d


def test_to_network_builds_leaves_for_components() -> None:
    d = Defs()
    p = d.define("P", lambda: pre("a", d.call("P")))
    q = d.define("Q", lambda: pre("b", d.call("Q")))
    node = to_network(hide(par({"a"}, p, q), {"b"}))
    assert isinstance(node, N.Hide)
    assert isinstance(node.child, N.Parallel)
    assert isinstance(node.child.left, N.Leaf) and node.child.left.lts.num_states == 1
    assert to_network(p) is None  # no structure at the top
    assert compile_process(p, use_network=False).num_states == 1


# ---------------------------------------------------------------- deadlock


def test_deadlock_after_one_event_with_shortest_trace() -> None:
    # 0 -a-> 1 (stuck); 0 -b-> 2 -a-> 0
    res = deadlock_free(lts(3, [(0, A, 1), (0, B, 2), (2, A, 0)]))
    assert not res.passed and res.counterexample is not None
    assert res.counterexample.kind == "deadlock"
    assert res.counterexample.trace == ("a",)
    assert res.counterexample.state == 1


def test_successful_termination_is_not_deadlock() -> None:
    assert deadlock_free(compiled(seq(pre("a", SKIP), SKIP))).passed
    assert not deadlock_free(compiled(seq(pre("a", SKIP), STOP))).passed


def test_tau_loop_is_not_a_deadlock_in_F_but_fails_in_FD() -> None:
    div = lts(1, [(0, TAU, 0)])
    assert deadlock_free(div, "F").passed
    res = deadlock_free(div, "FD")
    assert not res.passed and res.counterexample is not None and res.counterexample.kind == "divergence"


# ---------------------------------------------------------------- divergence


def test_divergence_after_visible_prefix() -> None:
    d = Defs()
    loop = d.define("Loop", lambda: pre("a", d.call("Loop")))
    p = pre("b", hide(loop, {"a"}))
    res = divergence_free(compiled(p))
    assert not res.passed and res.counterexample is not None
    assert res.counterexample.trace == ("b",)
    assert res.counterexample.cycle  # the τ-loop is reported
    assert (res.states, res.transitions) == (2, 2)
    assert divergence_free(compiled(loop)).passed


def test_divergence_needs_a_reachable_cycle_not_just_tau() -> None:
    assert divergence_free(lts(3, [(0, TAU, 1), (1, TAU, 2), (0, TAU, 2)])).passed
    assert not divergence_free(lts(3, [(0, A, 1), (1, TAU, 2), (2, TAU, 1)])).passed


# ---------------------------------------------------------------- determinism


def test_internal_choice_between_same_event_is_nondeterministic_after_a() -> None:
    p = intc(pre("a", STOP), pre("a", pre("b", STOP)))
    res = deterministic(compiled(p))
    assert not res.passed and res.counterexample is not None
    assert res.counterexample.kind == "nondeterminism"
    assert res.counterexample.trace == ("a",)
    assert res.counterexample.refusal == frozenset({"b"})
    assert (res.states, res.transitions) == (5, 5)


def test_deterministic_processes_pass() -> None:
    d = Defs()
    p = d.define("P", lambda: ext(pre("a", d.call("P")), pre("b", STOP)))
    assert deterministic(compiled(p)).passed
    assert deterministic(compiled(intc(pre("a", STOP), pre("a", STOP)))).passed


def test_determinism_divergence_matters_only_in_fd() -> None:
    div = lts(2, [(0, A, 1), (1, TAU, 1)])
    assert deterministic(div, "F").passed
    res = deterministic(div, "FD")
    assert not res.passed and res.counterexample is not None and res.counterexample.trace == ("a",)


# ---------------------------------------------------------------- refinement


def test_traces_refinement() -> None:
    spec = compiled(ext(pre("a", STOP), pre("b", STOP)))
    assert refines(spec, compiled(pre("a", STOP)), "T").passed
    res = refines(compiled(pre("a", STOP)), spec, "T")
    assert not res.passed and res.counterexample is not None
    assert res.counterexample.kind == "trace" and res.counterexample.trace == ("b",)


def test_failures_refinement_detects_refusal() -> None:
    spec = compiled(ext(pre("a", STOP), pre("b", STOP)))
    impl = compiled(pre("a", STOP))
    assert refines(spec, impl, "T").passed
    res = refines(spec, impl, "F")
    assert not res.passed and res.counterexample is not None
    assert res.counterexample.kind == "refusal"
    assert res.counterexample.trace == ()
    assert res.counterexample.refusal == frozenset({"b"})
    # internal choice is refined by either branch
    nd = compiled(intc(pre("a", STOP), pre("b", STOP)))
    assert refines(nd, impl, "F").passed
    assert not refines(impl, nd, "F").passed


def test_fd_refinement_and_divergence() -> None:
    d = Defs()
    loop = d.define("I", lambda: pre("a", d.call("I")))
    impl = compiled(hide(loop, {"a"}))
    assert refines(compiled(STOP), impl, "F").passed  # divergence is invisible in F
    res = refines(compiled(STOP), impl, "FD")
    assert not res.passed and res.counterexample is not None
    assert res.counterexample.kind == "divergence_mismatch" and res.counterexample.trace == ()
    # a divergent specification allows anything afterwards
    chaos_spec = compiled(P.Div())
    assert refines(chaos_spec, impl, "FD").passed


def test_refinement_counterexample_is_shortest() -> None:
    # spec: a -> a -> STOP [] b -> STOP ; impl offers b then c, and a a b.
    spec = compiled(ext(pre("a", pre("a", STOP)), pre("b", STOP)))
    impl = compiled(ext(pre("a", pre("a", pre("b", STOP))), pre("b", pre("c", STOP))))
    res = refines(spec, impl, "T")
    assert res.counterexample is not None and res.counterexample.trace == ("b", "c")


def test_tick_is_checked_like_an_event() -> None:
    assert refines(compiled(SKIP), compiled(SKIP), "FD").passed
    res = refines(compiled(STOP), compiled(SKIP), "T")
    assert res.counterexample is not None and res.counterexample.trace == (TICK_NAME,)


def test_divergence_detection_with_long_tau_chains() -> None:
    # a τ-chain of 300 states to a stable state, and from 0 a visible step into a chain ending in a τ-loop
    n = 302 + 300
    edges = [(i, TAU, i + 1) for i in range(300)]  # 0 ... 300 stable
    edges.append((0, A, 301))
    edges += [(301 + i, TAU, 302 + i) for i in range(299)]  # 301 ... 600
    edges.append((600, TAU, 590))  # a τ-cycle at the end
    g = lts(n + 1, edges)
    res = divergence_free(g)
    assert not res.passed and res.counterexample is not None
    assert res.counterexample.trace == ("a",)
    assert set(res.counterexample.cycle) == set(range(590, 601))
    assert divergence_free(lts(301, edges[:300])).passed


def test_tick_is_a_signal_so_a_terminating_state_may_refuse_other_events() -> None:
    # Roscoe: SKIP [] a -> STOP can refuse a (✓ behaves like τ to a terminated state)
    term_or_a = compiled(ext(SKIP, pre("a", STOP)))
    assert refines(term_or_a, compiled(SKIP), "F").passed
    res = deterministic(term_or_a)
    assert not res.passed and res.counterexample is not None
    assert res.counterexample.refusal == frozenset({"a"})
    # but the specification SKIP cannot do a
    assert not refines(compiled(SKIP), term_or_a, "T").passed


def _fork(d: Defs, n: int, i: int) -> P.Proc:
    me, left = f"{i}.{i}", f"{(i - 1) % n}.{i}"
    return ext(
        pre(f"up.{me}", pre(f"down.{me}", d.call(f"F{i}"))),
        pre(f"up.{left}", pre(f"down.{left}", d.call(f"F{i}"))),
    )


def _phil(d: Defs, n: int, i: int) -> P.Proc:
    mine, right = f"{i}.{i}", f"{i}.{(i + 1) % n}"
    return pre(f"up.{mine}", pre(f"up.{right}", pre(f"down.{right}", pre(f"down.{mine}", d.call(f"P{i}")))))


def test_network_exploration_agrees_with_term_exploration() -> None:
    explore = pytest.importorskip("processors.csp.check.explore")
    d = Defs()
    n = 3
    for i in range(n):
        d.define(f"F{i}", functools.partial(_fork, d, n, i))
        d.define(f"P{i}", functools.partial(_phil, d, n, i))
    alpha_p = [
        frozenset({f"up.{i}.{i}", f"up.{i}.{(i + 1) % n}", f"down.{i}.{i}", f"down.{i}.{(i + 1) % n}"})
        for i in range(n)
    ]
    alpha_f = [
        frozenset({f"up.{i}.{i}", f"down.{i}.{i}", f"up.{(i - 1) % n}.{i}", f"down.{(i - 1) % n}.{i}"})
        for i in range(n)
    ]
    system = P.AlphaParallel(
        tuple((d.call(f"P{i}"), alpha_p[i]) for i in range(n))
        + tuple((d.call(f"F{i}"), alpha_f[i]) for i in range(n))
    )
    terms = explore_terms(system).lts
    node = to_network(system)
    assert node is not None
    net = explore.explore_network(node, 10_000)
    assert (terms.num_states, terms.num_transitions) == (net.num_states, net.num_transitions)
    assert refines(terms, net, "FD").passed and refines(net, terms, "FD").passed
    a, b = deadlock_free(terms), deadlock_free(net)
    assert not a.passed and not b.passed
    assert a.counterexample is not None and b.counterexample is not None
    assert len(a.counterexample.trace) == len(b.counterexample.trace) == n


def test_state_limit_on_the_network_path() -> None:
    pytest.importorskip("processors.csp.check.explore")
    d = Defs()
    comps = [
        d.define(f"T{i}", functools.partial(lambda i: pre(f"t.{i}", pre(f"u.{i}", d.call(f"T{i}"))), i))
        for i in range(14)
    ]
    system = par(set(), *comps)  # 2^14 = 16384 states
    assert to_network(system) is not None
    with pytest.raises(StateSpaceLimit, match="exceeds the limit of 10000 states"):
        compile_process(system, max_states=10_000)
    assert compile_process(system, max_states=20_000).num_states == 2**14


def test_determinism_fast_path_agrees_with_the_search() -> None:
    import random

    from processors.csp.check import checker

    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(1, 6)
        edges = [
            (rng.randrange(n), rng.choice([1, 2, 3]), rng.randrange(n)) for _ in range(rng.randint(0, 9))
        ]
        g = lts(n, edges)
        fast = deterministic(g).passed
        slow = checker._deterministic_search(g, "FD").passed
        assert fast == slow, edges


def _after(g: LTS, trace: tuple[str, ...]) -> set[int]:
    """States reachable by ``trace`` (τ-closed), by brute force."""

    def close(states: set[int]) -> set[int]:
        todo, seen = list(states), set(states)
        while todo:
            s = todo.pop()
            for lab, t in g.successors(s):
                if lab == TAU and t not in seen:
                    seen.add(t)
                    todo.append(t)
        return seen

    cur = close({g.initial})
    for ev in trace:
        cur = close({t for s in cur for lab, t in g.successors(s) if g.events[lab] == ev})
    return cur


def _traces(g: LTS, depth: int) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = {()}
    frontier = [()]
    for _ in range(depth):
        nxt = []
        for tr in frontier:
            for s in _after(g, tr):
                for lab, _t in g.successors(s):
                    if lab != TAU:
                        ext_tr = (*tr, g.events[lab])
                        if ext_tr not in out:
                            out.add(ext_tr)
                            nxt.append(ext_tr)
        frontier = nxt
    return out


def test_refinement_agrees_with_brute_force_on_random_lts() -> None:
    import random

    rng = random.Random(11)

    def rand_lts() -> LTS:
        n = rng.randint(1, 4)
        edges = [
            (rng.randrange(n), rng.choice([TAU, A, B]), rng.randrange(n)) for _ in range(rng.randint(0, 7))
        ]
        return lts(n, edges)

    for _ in range(250):
        spec, impl = rand_lts(), rand_lts()
        t = refines(spec, impl, "T")
        spec_tr, impl_tr = _traces(spec, 6), _traces(impl, 6)
        if t.passed:
            assert impl_tr <= spec_tr
        else:
            cex = t.counterexample
            assert cex is not None and cex.trace in impl_tr and cex.trace not in spec_tr
            # shortest: every shorter impl trace is a spec trace
            assert all(tr in spec_tr for tr in impl_tr if len(tr) < len(cex.trace))
        f = refines(spec, impl, "F")
        if not t.passed:
            assert not f.passed
        if f.passed or f.counterexample is None or f.counterexample.kind != "refusal":
            continue
        cex = f.counterexample
        acc = cex.accepted
        assert acc is not None
        stable_impl = [s for s in _after(impl, cex.trace) if all(lab != TAU for lab, _ in impl.successors(s))]
        assert any(frozenset(impl.events[lab] for lab, _ in impl.successors(s)) == acc for s in stable_impl)
        for s in _after(spec, cex.trace):
            if all(lab != TAU for lab, _ in spec.successors(s)):
                assert not frozenset(spec.events[lab] for lab, _ in spec.successors(s)) <= acc


def test_lazy_lts_numbers_states_on_demand() -> None:
    from processors.csp.check.compile import LazyLTS

    def count(n: int) -> P.Proc:
        return P.Prefix(
            key=("up", n), events=("up", "reset"), cont=lambda e: count(n + 1) if e == "up" else count(0)
        )

    lazy = LazyLTS(count(0), max_states=100)
    assert lazy.successors(lazy.initial) == [("up", 1), ("reset", 0)]
    assert lazy.num_states == 2  # only what was asked for
    assert lazy.successors(1) == [("up", 2), ("reset", 0)]
    assert "up" in lazy.describe(1)
    s = 0
    with pytest.raises(StateSpaceLimit):
        for _ in range(200):
            s = lazy.successors(s)[0][1]


def test_to_network_gives_up_on_a_component_that_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A component explored on its own may reach an error the whole process never reaches."""
    from processors.csp.check import compile as C
    from processors.csp.semantics.frontend import load_source

    monkeypatch.setattr(C, "SMALL_STATES", 1)  # past the term-level probe

    src = (
        "channel a, b, c\n"
        "P(n) = a -> P(n) [] b -> P(n + 1) [] n > 1 & c -> P(head(<>))\n"
        "SYS = P(0) [| {b} |] (b -> STOP)\n"
    )
    proc = load_source(src, "e.csp").process("SYS")
    assert to_network(proc) is None
    assert compile_process(proc, max_states=10, use_network=True).num_states == 2
