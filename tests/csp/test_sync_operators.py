"""The exception operator, synchronising external choice / interrupt, project, and
how libcspm parses hiding: from CSPm source to transitions."""

from __future__ import annotations

import pytest

from processors.csp.language import syntax as S
from processors.csp.language.errors import CspmTypeError
from processors.csp.language.parser import parse
from processors.csp.semantics import procs as P
from processors.csp.semantics.frontend import load_source
from processors.csp.semantics.operational import TAU, TICK, transitions


def traces(p: P.Proc, depth: int) -> set[tuple[str, ...]]:
    """Visible traces of at most ``depth`` events (τ skipped, ✓ kept)."""
    out: set[tuple[str, ...]] = {()}
    todo: list[tuple[tuple[str, ...], P.Proc, int]] = [((), p, 0)]
    while todo:
        tr, q, taus = todo.pop()
        for ev, nxt in transitions(q):
            if ev == TAU:
                if taus < 8:
                    todo.append((tr, nxt, taus + 1))
                continue
            t2 = (*tr, ev)
            out.add(t2)
            if len(t2) < depth and ev != TICK:
                todo.append((t2, nxt, 0))
    return out


def proc(src: str, name: str = "P") -> P.Proc:
    return load_source(src).process(name)


CHANNELS = "channel a, b, c, d\n"


def test_exception_switches_on_an_event_of_the_set() -> None:
    p = proc(CHANNELS + "P = (a -> b -> STOP) [| {b} |> (c -> STOP)")
    assert traces(p, 3) == {(), ("a",), ("a", "b"), ("a", "b", "c")}


def test_exception_keeps_events_outside_the_set_and_terminates() -> None:
    p = proc(CHANNELS + "P = (a -> SKIP) [| {b} |> (c -> STOP)")
    assert traces(p, 3) == {(), ("a",), ("a", TICK)}


def test_synchronising_external_choice() -> None:
    # a is shared: both sides do it and the choice stays open; b / c resolve it
    p = proc(CHANNELS + "P = (a -> b -> STOP) [+ {a} +] (a -> c -> STOP [] d -> STOP)")
    assert traces(p, 2) == {(), ("a",), ("a", "b"), ("a", "c"), ("d",)}
    # d resolves the choice before any a
    q = proc(CHANNELS + "P = (a -> STOP) [+ {a} +] (d -> a -> STOP)")
    assert traces(q, 2) == {(), ("d",), ("d", "a")}


def test_replicated_synchronising_external_choice() -> None:
    p = proc("channel e : {0..2}\nchannel t\nP = [+ {t} +] i : {0..2} @ (t -> e.i -> STOP)")
    assert traces(p, 2) == {(), ("t",), ("t", "e.0"), ("t", "e.1"), ("t", "e.2")}


def test_synchronising_interrupt() -> None:
    # t is performed by both sides without interrupting; b interrupts
    p = proc(CHANNELS + "P = (a -> t2) /+ {a} +\\ (a -> b -> STOP)\nt2 = c -> STOP")
    assert traces(p, 3) == {(), ("a",), ("a", "c"), ("a", "b"), ("a", "c", "b")}


def test_project_hides_everything_outside_the_set() -> None:
    p = proc(CHANNELS + "P = a -> b -> c -> STOP |\\ {b}")
    assert traces(p, 3) == {(), ("b",)}


@pytest.mark.parametrize(
    "op", ["|||", "[| {} |]", "[{}||{}]", "[| {} |>", "|~|", "[]", "[+{}+]", "/\\", "/+{}+\\", "[>", ";"]
)
@pytest.mark.parametrize("hide", ["\\", "|\\"])
def test_hiding_set_binds_tighter_than_every_process_operator(op: str, hide: str) -> None:
    (d,) = parse(f"P = STOP {hide} {{}} {op} STOP", "<t>").decls
    assert isinstance(d, S.FunDecl)
    body = d.clauses[0].body
    # the hidden process is the left operand of the operator that follows
    assert not (isinstance(body, S.ProcOp) and body.op in ("\\", "|\\"))
    load_source(f"channel c\nP = STOP {hide} {{c}} {op} STOP")


def test_hiding_a_prefix_still_hides_the_whole_prefix() -> None:
    p = proc(CHANNELS + "P = a -> b -> STOP \\ {a}")
    assert traces(p, 2) == {(), ("b",)}


def test_sync_operators_are_type_checked() -> None:
    with pytest.raises(CspmTypeError):
        load_source(CHANNELS + "P = STOP [+ 1 +] STOP")
    with pytest.raises(CspmTypeError):
        load_source(CHANNELS + "P = STOP [| {a} |> 3")
