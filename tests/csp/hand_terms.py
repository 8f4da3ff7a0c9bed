"""Hand-built process terms for tests of the semantics and checker (no parser needed)."""

from __future__ import annotations

from collections.abc import Callable

from processors.csp.semantics import procs as P


class Defs:
    """A tiny stand-in for an evaluated CSPm module: named, lazily unfolded processes."""

    def __init__(self) -> None:
        self.bodies: dict[str, Callable[[], P.Proc]] = {}

    def define(self, name: str, body: Callable[[], P.Proc]) -> P.Call:
        self.bodies[name] = body
        return self.call(name)

    def call(self, name: str) -> P.Call:
        return P.Call(key=name, name=name, body=lambda: self.bodies[name]())


def pre(event: str, then: P.Proc) -> P.Prefix:
    return P.Prefix(key=("pre", event, then), events=(event,), cont=lambda _e: then)


def inp(events: tuple[str, ...], then: Callable[[str], P.Proc], key: object) -> P.Prefix:
    return P.Prefix(key=("inp", key), events=events, cont=then)


STOP = P.Stop()
SKIP = P.Skip()


def ext(*ps: P.Proc) -> P.ExtChoice:
    return P.ExtChoice(tuple(ps))


def intc(*ps: P.Proc) -> P.IntChoice:
    return P.IntChoice(tuple(ps))


def par(sync: set[str], *ps: P.Proc) -> P.GenParallel:
    return P.GenParallel(tuple(ps), frozenset(sync))


def hide(p: P.Proc, hidden: set[str]) -> P.Hide:
    return P.Hide(p, frozenset(hidden))


def seq(p: P.Proc, q: P.Proc) -> P.SeqComp:
    return P.SeqComp(p, q)
