"""On-the-fly refinement (processors.csp.check.explore_check) against the explicit checker.

Random networks (leaves with choice, internal choice, SKIP, hiding, renaming,
interleaving and synchronisation) and random specifications: with
``compile.SMALL_STATES`` lowered to 1 every refinement goes through the
vectorised product search; its verdict must be the explicit checker's, and
every counterexample trace must be a trace of the implementation. The same
holds for ``divergence free`` (checked as ``CHAOS [FD= P``), ``deterministic``
(a plainly deterministic network is only counted) and ``deadlock free`` (F: the
network explorer; FD with τs: ``DF [FD= P``).
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from processors.csp.check import checker
from processors.csp.check import compile as C
from processors.csp.check.verify import run_module
from processors.csp.semantics.frontend import load_source

EVENTS = ("a", "b", "c")


def _leaf(rng: random.Random, name: str, n: int) -> list[str]:
    lines = []
    for i in range(n):
        opts = []
        for _ in range(rng.randint(1, 3)):
            r = rng.random()
            if r < 0.12:
                opts.append("SKIP")
            elif r < 0.18:
                opts.append("STOP")
            else:
                opts.append(f"{rng.choice(EVENTS)} -> {name}{rng.randrange(n)}")
        op = rng.choice([" [] ", " |~| ", " [] "])
        lines.append(f"{name}{i} = " + op.join(opts))
    return lines


def _model(seed: int) -> str:
    rng = random.Random(seed)
    lines = ["channel a, b, c"]
    lines += _leaf(rng, "S", rng.randint(1, 3))
    lines += _leaf(rng, "L", rng.randint(1, 3))
    lines += _leaf(rng, "R", rng.randint(1, 3))
    sync = rng.choice(["{}", "{a}", "{a, b}", "{b, c}"])
    impl = f"(L0 [| {sync} |] R0)"
    r = rng.random()
    if r < 0.3:
        impl = f"({impl} \\ {{{rng.choice(EVENTS)}}})"
    elif r < 0.45:
        impl = f"({impl} [[ a <- b ]])"
    lines.append(f"IMPL = {impl}")
    lines.append("SPEC = S0")
    for m in ("T", "F", "FD"):
        lines.append(f"assert SPEC [{m}= IMPL")
        lines.append(f"assert CHAOS({{a, b, c}}) [{m}= IMPL")
    lines.append("assert IMPL :[divergence free]")
    lines.append("assert IMPL :[deterministic [FD]]")
    lines.append("assert IMPL :[deadlock free [FD]]")
    lines.append("assert IMPL :[deadlock free [F]]")
    return "\n".join(lines) + "\n"


def _is_trace(src: str, trace: tuple[str, ...]) -> bool:
    mod = load_source(src, "m.csp")
    return checker.has_trace(C.explore_terms(mod.process("IMPL")).lts, trace).passed


@pytest.mark.parametrize("seed", range(60))
def test_on_the_fly_agrees_with_the_explicit_checker(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _model(seed)
    mod = load_source(src, "m.csp")
    old = run_module(mod, 100_000)
    monkeypatch.setattr(C, "SMALL_STATES", 1)
    new = run_module(load_source(src, "m.csp"), 100_000)
    assert len(old) == len(new) == 10
    for a, b in zip(old, new, strict=True):
        assert a.status in ("pass", "fail"), (src, a.message)
        assert (a.text, a.status) == (b.text, b.status), src
        if b.failure is not None:
            assert a.failure is not None
            trace = b.failure.trace
            if b.failure.kind == "trace":
                assert b.failure.event == trace[-1]
            assert _is_trace(src, trace), (src, b.text, b.failure)


INTERLEAVED = """channel e, f, g : {0..5}
CYC(i) = e.i -> f.i -> g.i -> CYC(i)
SYS = ||| i:{0..5} @ CYC(i)
ANY = e?x -> f?y -> ANY
CNT(n) = if n < 6 then ([] x : {| e, f, g |} @ x -> CNT(n + 1)) else STOP
LATE = CNT(0)
"""


@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize(
    ("spec", "model"), [("CHAOS(Events)", "FD"), ("ANY", "T"), ("SYS", "F"), ("LATE", "T")]
)
def test_two_workers_agree_with_one(spec: str, model: str, workers: int) -> None:
    """The frontier partitioned by hash over 2 forked workers: same counts, and on a
    violation the same counterexample (re-run sequentially)."""
    from processors.csp.check import explore
    from processors.csp.check import explore_check as X
    from processors.csp.check import explore_parallel as XP
    from processors.csp.check.verify import Compiler

    mod = load_source(INTERLEAVED, "m.csp")
    node = C.to_network(mod.process("SYS"))
    assert node is not None
    succ = X.NetworkSuccessors(explore.compile_network(node))
    spec_lts = Compiler()(mod.eval_process(spec) if "(" in spec else mod.process(spec))
    normal = X.normalise(spec_lts, succ.events, model)  # type: ignore[arg-type]
    one = X.refine(normal, succ, model)  # type: ignore[arg-type]
    two = X.refine(normal, succ, model, handoff=XP.make_handoff(workers), handoff_at=16)  # type: ignore[arg-type]
    assert (one.passed, one.states, one.transitions, one.levels) == (
        two.passed,
        two.states,
        two.transitions,
        two.levels,
    )
    assert one.counterexample == two.counterexample
    assert one.passed == (spec not in ("ANY", "LATE"))
    if spec == "LATE":  # found after the handoff: the parallel search met it and re-ran
        assert one.counterexample is not None and len(one.counterexample.trace) == 7
    if one.passed:
        assert one.states == 3**6


def test_the_owners_share_the_states_evenly_and_their_sets_work() -> None:
    """Codes that differ only in their low bits (as packed states do) still split evenly;
    a worker's visited set (home slots below its owner bits) finds what it holds."""
    import numpy as np

    from processors.csp.check import explore_parallel as XP
    from processors.csp.check.explore_hash import CodeSet, mix

    codes = np.arange(0, 200_000, 2, dtype=np.int64)  # every low bit 0: the old split gave one owner all
    u = np.sort(mix(codes))
    for parts in (2, 4):
        pieces = XP._split(u, parts)
        assert sum(len(p) for p in pieces) == len(u)
        assert all(abs(len(p) - len(u) / parts) < 0.02 * len(u) for p in pieces), [len(p) for p in pieces]
        own = CodeSet(log2_capacity=12, skip_bits=parts.bit_length() - 1)
        is_new, _ = own.insert(pieces[-1])
        assert is_new.all() and own.size == len(pieces[-1])
        again, _ = own.insert(pieces[-1])
        assert not again.any()


def test_a_plainly_deterministic_network_is_counted_not_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    src = (
        INTERLEAVED
        + "assert SYS :[deterministic [FD]]\nNDET = SYS ||| (e.0 -> STOP [] e.0 -> e.1 -> STOP)\nassert NDET :[deterministic [FD]]\n"
    )
    old = run_module(load_source(src, "m.csp"), 100_000)
    monkeypatch.setattr(C, "SMALL_STATES", 1)
    from processors.csp.check import verify

    calls: list[object] = []
    real = C.compile_process

    def spy(*a: Any, **k: Any) -> Any:
        calls.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(verify, "compile_process", spy)
    new = run_module(load_source(src, "m.csp"), 100_000)
    assert [r.status for r in old] == [r.status for r in new] == ["pass", "fail"]
    assert new[0].states == 3**6
    assert len(calls) == 1  # only NDET was compiled


def test_out_of_memory_is_a_clear_error_naming_the_states(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default bound is memory: when it runs short the check ends with an error
    naming the states reached (here the budget pretends memory is always short)."""
    from processors.csp.check import budget

    monkeypatch.setattr(C, "SMALL_STATES", 1)
    monkeypatch.setattr(
        budget.MemoryBudget,
        "default",
        staticmethod(lambda what="state space": budget.MemoryBudget(1 << 62, what)),
    )
    res = run_module(load_source(INTERLEAVED + "assert CHAOS(Events) [FD= SYS\n", "m.csp"))
    assert res[0].status == "error"
    assert res[0].message is not None
    assert re.search(r"out of memory: the state space search stopped after [\d,]+ states", res[0].message)


@pytest.mark.parametrize("n", [100, 1 << 15, 300_000])
def test_distinct_sorted_is_sorted_unique(n: int) -> None:
    import numpy as np

    from processors.csp.check import explore_hash as H
    from processors.csp.check.explore_hash import mix

    rng = np.random.default_rng(n)
    codes = rng.integers(0, max(2, n // 3), n).astype(np.int64) << 20  # many duplicates, clustered bits
    scratch = H.Scratch()
    for _ in range(2):  # the scratch table is reused
        got = H.distinct_sorted(mix(codes.copy()), scratch)
        assert np.array_equal(got, np.unique(mix(codes.copy())))


def test_distinct_sorted_when_the_distinct_share_jumps() -> None:
    """The scratch table is sized by the last batch's share of distinct keys: a batch with
    far more distinct keys overflows it, and the keys that lose their slot still come out."""
    import numpy as np

    from processors.csp.check import explore_hash as H
    from processors.csp.check.explore_hash import mix

    scratch = H.Scratch()
    same = np.full(1 << 16, 7, dtype=np.int64)
    assert len(H.distinct_sorted(mix(same.copy()), scratch)) == 1
    assert scratch.distinct < 0.001
    codes = np.arange(1 << 16, dtype=np.int64) * 3
    got = H.distinct_sorted(mix(codes.copy()), scratch)
    assert np.array_equal(got, np.sort(mix(codes.copy())))


def test_divergent_codes_of_a_network() -> None:
    """``explore.divergent_codes``: the states of a network with an infinite τ path,
    from one pass keeping only τ moves; they agree with the compiled LTS."""
    import numpy as np

    from processors.csp.check import checker, explore

    src = "channel a, b, c\nP = a -> P [] b -> STOP\nQ = c -> b -> Q\nSYS = (P ||| Q) \\ {a}\nNOLOOP = (Q ||| Q) \\ {c}\n"
    mod = load_source(src, "m.csp")
    for name, some in (("SYS", True), ("NOLOOP", False)):
        node = C.to_network(mod.process(name))
        assert node is not None
        net = explore.compile_network(node)
        codes = explore.divergent_codes(net)
        assert bool(len(codes)) == some
        assert np.all(codes[1:] > codes[:-1])
        lts = explore.explore_network_compiled(net)
        g = checker._Graph(lts)
        assert len(codes) == sum(g.divergent)
