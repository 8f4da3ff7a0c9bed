"""Checking a link before it is made (pure).

``SRC.out -> DST.in`` composes the two deployed LTSs as ``SRC [| {|link|} |] DST`` with
``out`` and ``in`` renamed to one fresh channel, and re-checks, on the pair, every property
assertion (deadlock / divergence freedom, determinism) each side declares about its deployed
process. A failed check carries the counterexample trace of the pair. Refinement assertions
relate a side to its own specification, not to the link, and are not re-checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from processors.channels.routes import RouteError
from processors.csp.check import checker
from processors.csp.check.explore import explore_network
from processors.csp.runtime.model import INPUT, OUTPUT, Deployment, channel_of
from processors.csp.semantics.lts import LTS
from processors.csp.semantics.network import Leaf, Parallel, Rename

_PROPERTY = re.compile(
    r"^\s*(?P<proc>.+?)\s*:\[\s*(?P<prop>deadlock free|divergence free|deterministic)"
    r"(?:\s*\[\s*(?P<model>FD|F|T)\s*\])?\s*\]\s*$"
)


@dataclass(frozen=True)
class LinkCheck:
    text: str  # e.g. "buffer.BUFFER [|link|] sink.SINK :[deadlock free [F]]"
    side: str  # the system that declared it
    passed: bool
    trace: tuple[str, ...] = ()
    message: str = ""

    @property
    def status(self) -> str:
        return "pass" if self.passed else "fail"


def declared_properties(dep: Deployment) -> list[tuple[str, str]]:
    """(property, model) of every property assertion ``dep`` declares about its process."""
    out: list[tuple[str, str]] = []
    for text, _status in dep.assertions:
        m = _PROPERTY.match(text)
        if m is None or m.group("proc") != dep.process:
            continue
        prop = m.group("prop")
        model = m.group("model") or ("FD" if prop == "deterministic" else "F")
        if (prop, model) not in out:
            out.append((prop, model))
    return out


def _fresh(src: Deployment, dst: Deployment) -> str:
    used = set(src.channels) | set(dst.channels)
    used |= {channel_of(e) for e in (*src.lts.events, *dst.lts.events)}
    name = "link"
    while name in used:
        name += "_"
    return name


def _renaming(lts: LTS, channel: str, fresh: str) -> frozenset[tuple[str, str]]:
    return frozenset((e, fresh + e[len(channel) :]) for e in lts.events if channel_of(e) == channel)


def compose(
    src: Deployment, src_channel: str, dst: Deployment, dst_channel: str, max_states: int = 1_000_000
) -> LTS:
    """The LTS of ``SRC [| {|link|} |] DST`` with the two channels renamed to ``link``."""
    src_spec = src.channels.get(src_channel)
    if src_spec is None or src_spec.role != OUTPUT:
        raise RouteError(
            f"{src.system}.{src_channel} is not an output channel of {src.system} v{src.version}"
        )
    dst_spec = dst.channels.get(dst_channel)
    if dst_spec is None or dst_spec.role != INPUT:
        raise RouteError(f"{dst.system}.{dst_channel} is not an input channel of {dst.system} v{dst.version}")
    fresh = _fresh(src, dst)
    ren_s = _renaming(src.lts, src_channel, fresh)
    ren_d = _renaming(dst.lts, dst_channel, fresh)
    sync = frozenset(new for _old, new in ren_s | ren_d)
    node = Parallel(Rename(Leaf(src.lts), ren_s), Rename(Leaf(dst.lts), ren_d), sync)
    return explore_network(node, max_states)


def check_link(
    src: Deployment, src_channel: str, dst: Deployment, dst_channel: str, max_states: int = 1_000_000
) -> list[LinkCheck]:
    """Every property assertion of either side, re-checked on the linked pair."""
    lts = compose(src, src_channel, dst, dst_channel, max_states)
    pair = f"{src.system}.{src.process} [|{src_channel}->{dst_channel}|] {dst.system}.{dst.process}"
    results: list[LinkCheck] = []
    seen: set[tuple[str, str]] = set()
    for dep in (src, dst):
        for prop, model in declared_properties(dep):
            if (prop, model) in seen:
                continue
            seen.add((prop, model))
            if prop == "deadlock free":
                res = checker.deadlock_free(lts, "FD" if model == "FD" else "F")
            elif prop == "divergence free":
                res = checker.divergence_free(lts)
            else:
                res = checker.deterministic(lts, "F" if model == "F" else "FD")
            cex = res.counterexample
            text = f"{pair} :[{prop} [{model}]]"
            results.append(
                LinkCheck(
                    text,
                    dep.system,
                    res.passed,
                    cex.trace if cex is not None else (),
                    "" if cex is None else f"{cex.kind} after <{', '.join(cex.trace)}>",
                )  # fmt: skip
            )
    return results
