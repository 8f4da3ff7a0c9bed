"""``deadlock free`` by the network explorer (explore.find_deadlock) against the compiled LTS.

The fast path is taken for networks too large for the term-level search
(``compile.SMALL_STATES``); the tests lower that threshold so that small models
take it, and compare every field of the results of both paths.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from processors.csp.check import compile as C
from processors.csp.check import explore
from processors.csp.check.verify import AssertionResult, Compiler, check_property, run_assertion
from processors.csp.semantics import procs as P
from processors.csp.semantics.frontend import load_source
from processors.csp.semantics.lts import TAU_NAME
from processors.csp.semantics.operational import fire, normalise

ROOT = Path(__file__).resolve().parents[2]

HEADER = "channel a, b, c, d\nchannel m : {0..2}\n"

# (name, source, assertion target, expected: deadlocks?, network has τ?)
MODELS: list[tuple[str, str, bool, bool]] = [
    (
        "interleaved counters (no deadlock, no τ)",
        "C(i) = m.i -> C((i + 1) % 3)\nSYS = C(0) ||| (a -> b -> SYS2)\nSYS2 = c -> SYS2\n",
        False,
        False,
    ),
    (
        "handshake that gets stuck (deadlock, no τ)",
        "L = m?i -> a -> b -> L\nR = m?i -> a -> c -> R\nSYS = L [| {a, b, c} |] R\n",
        True,
        False,
    ),
    (
        "both sides terminate (✓ is not a deadlock)",
        "T = ||| i : {0..2} @ m.i -> SKIP\nSYS = (a -> SKIP) ||| (b -> SKIP) ||| T\n",
        False,
        True,  # a component's ✓ is a τ inside a parallel (distributed termination)
    ),
    (
        "one side terminates, the other stops (deadlock)",
        "SYS = (a -> SKIP) [| {b} |] (b -> STOP [] a -> b -> SKIP)\n",
        True,
        True,
    ),
    (
        "hidden channel, deadlock after hidden moves (τ)",
        "P = a -> c -> b -> P\nQ = c -> d -> Q\nSYS = (P [| {c, d} |] Q) \\ {c}\n",
        True,
        True,
    ),
    (
        "hidden channel, no deadlock (τ)",
        "P = a -> c -> P\nQ = c -> b -> Q\nSYS = (P [| {c} |] Q) \\ {c}\n",
        False,
        True,
    ),
    (
        "renamed components (deadlock, no τ)",
        "P = a -> b -> STOP\nSYS = (P [[a <- c]]) [| {b} |] (c -> b -> d -> STOP)\n",
        True,
        False,
    ),
    (
        "sequential composition inside a leaf (τ from ✓), no deadlock",
        "P = (a -> SKIP) ; P\nSYS = P ||| (b -> SYS')\nSYS' = c -> SYS'\n",
        False,
        True,
    ),
]


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "SMALL_STATES", 1)


def _run(src: str, model: str, fast: bool) -> tuple[AssertionResult, int]:
    """The result of ``SYS :[deadlock free [model]]`` and how often find_deadlock ran."""
    mod = load_source(HEADER + src + f"assert SYS :[deadlock free [{model}]]\n", "m.csp")
    calls = 0
    real = explore.find_deadlock_compiled

    def spy(*args: Any, **kwargs: Any) -> explore.DeadlockResult:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(explore, "find_deadlock_compiled", spy)
        res = run_assertion(mod, mod.assertions[0], 100_000, Compiler(100_000, fast_deadlock=fast))
    return res, calls


def _deadlocks_after(src: str, trace: tuple[str, ...]) -> bool:
    """Replaying ``trace`` on the term semantics can reach a deadlocked state."""
    mod = load_source(HEADER + src, "m.csp")

    def closure(states: set[P.Proc]) -> set[P.Proc]:
        seen, todo = set(states), list(states)
        while todo:
            for e, q in fire(todo.pop()):
                if e == TAU_NAME and q not in seen:
                    seen.add(q)
                    todo.append(q)
        return seen

    cur = closure({normalise(mod.process("SYS"))})
    for ev in trace:
        cur = closure({q for p in cur for e, q in fire(p) if e == ev})
    return any(not fire(p) and not isinstance(p, P.Omega) for p in cur)


@pytest.mark.parametrize(("label", "src", "deadlocks", "taus"), MODELS, ids=[m[0] for m in MODELS])
@pytest.mark.parametrize("model", ["F", "FD"])
@pytest.mark.usefixtures("small_threshold")
def test_fast_path_agrees_with_the_compiled_lts(
    label: str, src: str, deadlocks: bool, taus: bool, model: str
) -> None:
    fast, calls = _run(src, model, fast=True)
    slow, slow_calls = _run(src, model, fast=False)
    assert slow_calls == 0
    # FD with τs needs divergence: only then is the explorer not used
    assert calls == (0 if (model == "FD" and taus) else 1)
    assert slow.status == ("fail" if deadlocks else "pass")
    assert fast.status == slow.status
    assert slow.states is not None and slow.states > 2
    if not deadlocks:
        assert (fast.states, fast.transitions) == (slow.states, slow.transitions)
        assert fast.failure is None and slow.failure is None
        return
    # the fast path stops at the first BFS level holding a deadlock
    assert fast.states is not None and fast.states <= slow.states
    assert fast.failure is not None and slow.failure is not None
    f, s = fast.failure, slow.failure
    assert (f.kind, f.refusal, f.accepted, f.divergence, f.event) == (
        s.kind,
        s.refusal,
        s.accepted,
        s.divergence,
        s.event,
    )
    assert f.kind == "deadlock"
    if not taus:
        assert len(f.trace) == len(s.trace)  # both shortest visible traces
    else:  # FDR's BFS counts τ steps: the visible trace may be longer than the shortest
        assert len(f.trace) >= len(s.trace)
    assert _deadlocks_after(src, f.trace)
    assert f.spans and s.spans
    assert f.spans[0] == s.spans[0]  # the definition of SYS


@pytest.mark.usefixtures("small_threshold")
def test_fd_divergence_is_still_reported_when_the_network_has_taus() -> None:
    """In FD with τs deadlock freedom is ``DF [FD= SYS`` on the fly (divergent states from
    a τ-only pass), not find_deadlock."""
    src = "P = a -> P\nSYS = (P ||| (b -> STOP)) \\ {a}\n"
    fast, calls = _run(src, "FD", fast=True)
    slow, _ = _run(src, "FD", fast=False)
    assert calls == 0
    assert fast.status == slow.status == "fail"
    assert fast.failure is not None and fast.failure.kind == "divergence"
    assert slow.failure is not None
    # DF [FD= SYS on the fly: the same counterexample, without the LTS's state names
    assert dataclasses.replace(fast.failure, state=None, loop=()) == dataclasses.replace(
        slow.failure, state=None, loop=()
    )
    # in F a τ-loop is not a deadlock: the explorer decides, and agrees
    f_fast, calls_f = _run(src, "F", fast=True)
    f_slow, _ = _run(src, "F", fast=False)
    assert calls_f == 1
    assert f_fast.status == f_slow.status == "pass"
    assert (f_fast.states, f_fast.transitions) == (f_slow.states, f_slow.transitions)


def test_dining_philosophers_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark models: forks deadlock, the butler does not."""
    import re

    monkeypatch.setattr(C, "SMALL_STATES", 100)
    for system, n, deadlocks in (("forks", 4, True), ("butler", 4, False)):
        text = (ROOT / "bench" / "models" / f"dining_{system}.csp").read_text(encoding="utf-8")
        text = re.sub(r"(?m)^N = \d+$", f"N = {n}", text)
        mod = load_source(text, f"dining_{system}.csp")
        fast_r = check_property(mod, "deadlock free", max_states=1_000_000)
        slow_r = run_assertion(mod, mod.assertions[0], 1_000_000, Compiler(1_000_000, fast_deadlock=False))
        assert slow_r.states is not None and slow_r.states > C.SMALL_STATES
        assert fast_r.status == slow_r.status == ("fail" if deadlocks else "pass")
        if not deadlocks:  # a deadlock stops the fast path at its BFS level
            assert (fast_r.states, fast_r.transitions) == (slow_r.states, slow_r.transitions)
        if deadlocks:
            assert fast_r.failure is not None and slow_r.failure is not None
            assert len(fast_r.failure.trace) == len(slow_r.failure.trace) == 3 * n
            assert fast_r.failure.spans == slow_r.failure.spans


@pytest.mark.parametrize(("label", "src", "deadlocks", "taus"), MODELS, ids=[m[0] for m in MODELS])
def test_the_term_level_search_never_numbers_fewer_states(
    label: str, src: str, deadlocks: bool, taus: bool
) -> None:
    """What lets the fast path skip the term-level probe of ``compile_process``: a network
    with more than SMALL_STATES + 1 states has a term LTS too large for the probe (the
    term level adds the τ-steps of distributed termination, the network syncs ✓)."""
    proc = load_source(HEADER + src, "m.csp").process("SYS")
    node = C.to_network(proc)
    assert node is not None
    net = explore.compile_network(node)
    assert explore.has_tau(net) == taus
    terms = C.explore_terms(proc).lts
    product = explore.explore_network_compiled(net)
    found = explore.find_deadlock_compiled(net)
    assert (product.num_states, product.num_transitions) == (found.states, found.transitions)
    assert found.states <= terms.num_states + 1
    assert found.deadlock == deadlocks


@pytest.mark.parametrize(("label", "src", "deadlocks", "taus"), MODELS, ids=[m[0] for m in MODELS])
def test_small_processes_keep_the_term_level_result(
    label: str, src: str, deadlocks: bool, taus: bool
) -> None:
    """Below SMALL_STATES compile_process keeps the term LTS (named states): so does check."""
    fast, _ = _run(src, "F", fast=True)
    slow, _ = _run(src, "F", fast=False)
    assert fast == dataclasses.replace(slow, seconds=fast.seconds)
    if deadlocks:
        assert fast.failure is not None and fast.failure.state is not None


def test_an_error_only_a_component_alone_reaches_does_not_change_the_result() -> None:
    """``to_network`` explores each component on its own; an evaluation error in a
    component state the whole process never reaches must not decide the check."""
    src = "P(n) = a -> P(n) [] b -> P(n + 1) [] n > 1 & c -> P(head(<>))\nSYS = P(0) [| {b} |] (b -> STOP)\n"
    fast, _ = _run(src, "F", fast=True)
    slow, _ = _run(src, "F", fast=False)
    assert slow.status == "pass"
    assert fast == dataclasses.replace(slow, seconds=fast.seconds)
