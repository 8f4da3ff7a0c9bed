"""Hand-built deployments for the runtime tests (no CSPm front end needed)."""

from __future__ import annotations

from processors.csp.runtime.model import INPUT, OUTPUT, ChannelSpec, Deployment
from processors.csp.semantics.lts import TAU, TAU_NAME, TICK, TICK_NAME, from_edges


def buffer_deployment(system: str = "buf", version: int = 1, values: int = 3) -> Deployment:
    """One-place buffer: in?x -> out!x -> BUF; ``in`` is input, ``out`` output."""
    events = (TAU_NAME, TICK_NAME, *[f"in.{v}" for v in range(values)], *[f"out.{v}" for v in range(values)])
    edges = []
    for v in range(values):
        edges.append((0, 2 + v, 1 + v))  # in.v
        edges.append((1 + v, 2 + values + v, 0))  # out.v
    lts = from_edges(events, 0, 1 + values, edges)
    vals = tuple(str(v) for v in range(values))
    chans = {
        "in": ChannelSpec("in", INPUT, ("{0..2}",), (vals,)),
        "out": ChannelSpec("out", OUTPUT, ("{0..2}",), (vals,)),
    }
    return Deployment(system, version, "BUF", lts, chans)


def choice_deployment() -> Deployment:
    """P = (a -> P) |~| (b -> P) |~| (c -> P): three τ options, inputs a, b, c."""
    events = (TAU_NAME, TICK_NAME, "a", "b", "c")
    edges = [(0, TAU, 1), (0, TAU, 2), (0, TAU, 3), (1, 2, 0), (2, 3, 0), (3, 4, 0)]
    lts = from_edges(events, 0, 4, edges)
    chans = {n: ChannelSpec(n, INPUT) for n in ("a", "b", "c")}
    return Deployment("choice", 1, "P", lts, chans)


def misc_deployment() -> Deployment:
    """0 -go-> 1 (dead); 0 -fin-> 2 -✓-> 3; 0 -spin-> 4 -τ-> 4 (divergent); 0 -tick.x-> 5 -tock-> 0."""
    events = (TAU_NAME, TICK_NAME, "go", "fin", "spin", "ping.1", "ping.2", "pong")
    edges = [(0, 2, 1), (0, 3, 2), (2, TICK, 3), (0, 4, 4), (4, TAU, 4), (0, 5, 5), (0, 6, 5), (5, 7, 0)]
    lts = from_edges(events, 0, 6, edges)
    chans = {
        "go": ChannelSpec("go", INPUT),
        "fin": ChannelSpec("fin", INPUT),
        "spin": ChannelSpec("spin", INPUT),
        "ping": ChannelSpec("ping", INPUT, ("{1..3}",), (("1", "2", "3"),)),
        "pong": ChannelSpec("pong", OUTPUT),
    }
    return Deployment("misc", 1, "M", lts, chans)
