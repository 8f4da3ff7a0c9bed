"""Infinite lazy sequences (``<n..>``): read as far as needed, refused where the whole value is needed."""

from __future__ import annotations

import pytest

from processors.csp.language.errors import CspmEvalError
from processors.csp.semantics.frontend import load_source
from processors.csp.semantics.values import TRUE

SRC = """\
odds = <x | x <- <0..>, x % 2 == 1>
t1 = head(<1..>) == 1
t2 = head(tail(tail(odds))) == 5
zip(<>, _) = <>
zip(_, <>) = <>
zip(<x>^xs, <y>^ys) = <(x, y)>^zip(xs, ys)
t3 = zip(<1..>, <7, 8>) == <(1, 7), (2, 8)>
t4 = null(zip(<1..>, <>))
take(_, 0) = <>
take(<x>^xs, n) = <x>^take(xs, n - 1)
t5 = take(<0, 1>^<5..>, 4) == <0, 1, 5, 6>
t6 = not null(<3..>)
channel out : {0..9}
P(s) = if null(s) then STOP else out!head(s) -> P(tail(s))
SYS = P(take(odds, 3))
assert SYS :[deadlock free]
"""


@pytest.mark.parametrize("name", ["t1", "t2", "t3", "t4", "t5", "t6"])
def test_lazy_sequences_evaluate_as_far_as_needed(name: str) -> None:
    assert load_source(SRC).eval_value(name) == TRUE


def test_whole_value_of_an_infinite_sequence_is_refused_with_its_line() -> None:
    m = load_source("s = <1..>\nn = #s\n")
    with pytest.raises(CspmEvalError, match=r"infinite sequence <1\.\.> is used where its whole value") as e:
        m.eval_value("n")
    assert e.value.line == 2


def test_a_process_driven_by_a_lazy_sequence_is_checked() -> None:
    from processors.csp.check.verify import run_module

    [res] = run_module(load_source(SRC), 10_000)
    assert res.status == "fail"  # it stops after out.1, out.3, out.5
    assert res.failure is not None
    assert [str(e) for e in res.failure.trace] == ["out.1", "out.3", "out.5"]
