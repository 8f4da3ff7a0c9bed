"""Timed sections: FDR's tock-CSP translation (as libcspm desugars ``Timed (f) { ... }``)."""

from __future__ import annotations

import pytest
from test_sync_operators import traces

from processors.csp.language.errors import CspmError, CspmTypeError, CspmUnsupported
from processors.csp.semantics import procs as P
from processors.csp.semantics.frontend import load_source
from processors.csp.semantics.operational import TICK, transitions

HEAD = "channel tock\nchannel a, b\n"


def proc(body: str, name: str = "P") -> P.Proc:
    return load_source(HEAD + body).process(name)


def test_a_prefix_waits_and_its_event_takes_one_tock_by_default() -> None:
    p = proc("Timed { P = a -> b -> STOP }")
    t = traces(p, 4)
    assert ("tock", "a") in t and ("a", "tock", "b") in t
    assert ("a", "b") not in t  # a takes one time unit
    assert ("a", "tock", "b", "tock") in t  # STOP is TSTOP: time still passes


def test_timing_function() -> None:
    p = proc("Timed (\\ e @ if e == a then 2 else 0) { P = a -> b -> SKIP }")
    t = traces(p, 5)
    assert ("a", "tock", "tock", "b") in t and ("a", "tock", "b") not in t
    assert ("a", "tock", "tock", "b", TICK) in t  # b takes no time


def test_external_choice_is_not_resolved_by_time() -> None:
    p = proc("Timed { P = a -> STOP [] b -> STOP }")
    t = traces(p, 2)
    assert ("tock", "a") in t and ("tock", "b") in t


def test_interleaving_synchronises_on_tock() -> None:
    p = proc("Timed { P = (a -> STOP) ||| (b -> STOP) }")
    [(ev, _)] = [(e, q) for e, q in transitions(p) if e == "tock"]
    assert ev == "tock"
    assert ("a", "b") in traces(p, 2)


def test_false_guard_and_empty_replication_let_time_pass() -> None:
    p = proc("Timed { P = false & a -> STOP }")
    assert traces(p, 2) == {(), ("tock",), ("tock", "tock")}
    q = proc("Timed { P = [] x : {} @ a -> STOP }")
    assert traces(q, 2) == {(), ("tock",), ("tock", "tock")}


def test_wait_and_timed_priority() -> None:
    p = proc("Timed { P = WAIT(2) ; a -> STOP }")
    assert ("tock", "tock", "a") in traces(p, 3) and ("tock", "a") not in traces(p, 3)
    # timed_priority: the τ of the hidden a happens before time passes
    q = proc("Timed { P = timed_priority((a -> STOP) \\ {a}) }")
    assert [e for e, _ in transitions(q)] == ["τ"]


def test_timed_section_in_let() -> None:
    p = proc("P = let\n  Timed (\\ _ @ 0) {\n    Q = a -> STOP\n  }\nwithin Q")
    assert ("tock", "a", "tock") in traces(p, 3)


def test_untimed_definitions_are_unchanged() -> None:
    p = proc("Timed { Q = a -> STOP }\nP = a -> STOP")
    assert traces(p, 2) == {(), ("a",)}


@pytest.mark.parametrize(
    ("src", "err"),
    [
        ("channel a\nTimed { P = a -> STOP }", CspmTypeError),  # no channel tock
        ("channel tock : {0}\nTimed { }", CspmTypeError),  # tock has a field
        ("channel tock\nTimed (\\ _ @ true) { }", CspmTypeError),  # timing is not Event -> Int
        ("channel tock\nP = TSTOP", CspmUnsupported),  # timed names outside a timed section
        ("channel tock, a\nTimed { P = a -> STOP [a <-> a] a -> STOP }", CspmUnsupported),
    ],
)
def test_timed_section_errors(src: str, err: type[CspmError]) -> None:
    with pytest.raises(err):
        load_source(src)
