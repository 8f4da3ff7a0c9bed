"""The front end is linear: prefix chains and long declaration lists.

Each test measures the same work at two sizes (4x apart) in the same run and
bounds the ratio of the times: linear work gives about 4, quadratic about 16.
No absolute time is asserted (the machine is shared).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from processors.csp.language.parser import parse
from processors.csp.semantics import procs as P
from processors.csp.semantics.frontend import load_source
from processors.csp.semantics.typecheck import check_module

RATIO_BOUND = 9.0  # linear: about 4; the quadratic code measured 14-19


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        finally:
            gc.enable()
    return best


def _ratio(work: Callable[[int], Callable[[], object]], small: int, rounds: int = 3) -> float:
    """Best time at 4x the size over best time at the size, measured alternately (load bursts hit both)."""
    lo, hi = work(small), work(4 * small)
    t_lo = t_hi = float("inf")
    for _ in range(rounds):
        t_lo = min(t_lo, _best_time(lo, 1))
        t_hi = min(t_hi, _best_time(hi, 1))
    return t_hi / t_lo


def test_prefix_chain_evaluation_is_linear() -> None:
    def work(n: int) -> Callable[[], object]:
        mod = load_source("channel a\nP = " + " -> ".join(["a"] * n) + " -> STOP\n")

        def run() -> None:
            # a fresh evaluator each time: nothing memoised from the previous run
            m = load_source("channel a\nP = " + " -> ".join(["a"] * n) + " -> STOP\n")
            assert P.unfold(m.process("P"), 10 * n) > n

        assert P.unfold(mod.process("P"), 10 * n) > n
        return run

    ratio = _ratio(work, 2500)
    assert ratio < RATIO_BOUND, f"prefix chain 4x longer took {ratio:.1f}x the time"


def test_many_declarations_type_check_linearly() -> None:
    def work(n: int) -> Callable[[], object]:
        decls = parse("channel a\n" + "".join(f"P{i} = a -> P{i}\n" for i in range(n))).decls
        return lambda: check_module(decls, "<decls>")

    ratio = _ratio(work, 5000)
    assert ratio < RATIO_BOUND, f"4x more declarations took {ratio:.1f}x the time to type check"
