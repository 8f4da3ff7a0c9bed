"""Multi-agent collaboration protocols: generated in CSPm, checked before they run (pure).

:func:`generate` writes the protocol of a coordination method for ``n`` agents (indices
``0..n-1``, in the order given) and ``rounds`` rounds, with its assertions and the event
patterns each agent owns (its :class:`~processors.agents.driver.Binding`). Every protocol
is turn-based (at each stable state one agent owns the acceptable events) and ends with ✓
after a bounded number of events:

* ``round_robin`` — each round every agent speaks in turn (``say.i.r``); then ``done``.
* ``consensus`` — each round every agent votes ``vote.i.r.yes|no`` in turn; all yes:
  ``agreed.r``; else the next round; after the last round ``failed``.
* ``leader`` — agent 0 proposes (``propose.r``), the others give ``feedback.i.r``, the
  leader ``decide.r.final`` (then ``result``) or ``decide.r.revise`` (next round; only
  ``final`` in the last round).
* ``debate`` — each round every agent argues (``argue.i.r``); then agent 0 judges
  (``verdict.w``) and the process performs ``result``.

:func:`check` runs the file's assertions (deadlock and divergence freedom) with the
project's checker and checks termination within the bound on the compiled LTS: no cycle,
every maximal path ends with ✓, and the longest trace is at most :attr:`Protocol.bound`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from processors.agents.driver import Binding

METHODS = ("consensus", "leader", "round_robin", "debate")
PROCESS = "COLLAB"
MIN_AGENTS, MAX_AGENTS = 2, 5
MAX_ROUNDS = 5


class CollabError(ValueError):
    """Bad collaboration parameters."""


@dataclass(frozen=True)
class Protocol:
    method: str
    agents: tuple[str, ...]
    rounds: int
    source: str  # CSPm, with its assertions
    outputs: tuple[str, ...]  # channels the process performs itself
    bindings: tuple[Binding, ...]
    bound: int  # the longest trace (✓ included)
    process: str = PROCESS


def _header(method: str, agents: Sequence[str], rounds: int) -> str:
    who = ", ".join(f"{i} = {a}" for i, a in enumerate(agents))
    return (
        f"-- Generated {method} protocol for {len(agents)} agents ({who}), {rounds} round(s).\n"
        f"N = {len(agents)}\nR = {rounds}\nAgents = {{0..N-1}}\nRounds = {{1..R}}\n\n"
    )


_ASSERTS = f"\nassert {PROCESS} :[deadlock free]\nassert {PROCESS} :[divergence free]\n"


def generate(method: str, agents: Sequence[str], rounds: int = 2) -> Protocol:
    n = len(agents)
    if method not in METHODS:
        raise CollabError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if not MIN_AGENTS <= n <= MAX_AGENTS:
        raise CollabError(f"{method} needs {MIN_AGENTS} to {MAX_AGENTS} agents, got {n}")
    if len(set(agents)) != n:
        raise CollabError("agent names must be distinct")
    if not 1 <= rounds <= MAX_ROUNDS:
        raise CollabError(f"rounds must be 1..{MAX_ROUNDS}, got {rounds}")
    head = _header(method, agents, rounds)
    if method == "round_robin":
        body = (
            "channel say : Agents.Rounds\nchannel done\n\n"
            f"{PROCESS} = TURN(1, 0)\n"
            "TURN(r, i) = say.i.r -> (if i < N-1 then TURN(r, i+1)\n"
            "                         else if r < R then TURN(r+1, 0) else done -> SKIP)\n"
        )
        outputs: tuple[str, ...] = ("done",)
        binds = [Binding(a, (f"say.{i}",)) for i, a in enumerate(agents)]
        bound = n * rounds + 2
    elif method == "consensus":
        body = (
            "datatype Vote = yes | no\n"
            "channel vote : Agents.Rounds.Vote\nchannel agreed : Rounds\nchannel failed\n\n"
            f"{PROCESS} = VOTE(1, 0, true)\n"
            "VOTE(r, i, ok) = vote.i.r?v -> (if i < N-1 then VOTE(r, i+1, ok and v == yes)\n"
            "                                else END(r, ok and v == yes))\n"
            "END(r, ok) = if ok then agreed.r -> SKIP\n"
            "             else if r < R then VOTE(r+1, 0, true) else failed -> SKIP\n"
        )
        outputs = ("agreed", "failed")
        binds = [Binding(a, (f"vote.{i}",)) for i, a in enumerate(agents)]
        bound = n * rounds + 2
    elif method == "leader":
        body = (
            "datatype Decision = final | revise\n"
            "channel propose : Rounds\nchannel feedback : {1..N-1}.Rounds\n"
            "channel decide : Rounds.Decision\nchannel result\n\n"
            f"{PROCESS} = ROUND(1)\n"
            "ROUND(r) = propose.r -> FB(r, 1)\n"
            "FB(r, i) = feedback.i.r -> (if i < N-1 then FB(r, i+1) else DECIDE(r))\n"
            "DECIDE(r) = if r < R then (decide.r.final -> result -> SKIP [] decide.r.revise -> ROUND(r+1))\n"
            "            else decide.r.final -> result -> SKIP\n"
        )
        outputs = ("result",)
        binds = [Binding(agents[0], ("propose", "decide"))] + [
            Binding(a, (f"feedback.{i}",)) for i, a in enumerate(agents) if i > 0
        ]
        bound = (n + 1) * rounds + 2
    else:  # debate
        body = (
            "channel argue : Agents.Rounds\nchannel verdict : Agents\nchannel result\n\n"
            f"{PROCESS} = ARG(1, 0)\n"
            "ARG(r, i) = argue.i.r -> (if i < N-1 then ARG(r, i+1)\n"
            "                          else if r < R then ARG(r+1, 0) else JUDGE)\n"
            "JUDGE = verdict?w -> result -> SKIP\n"
        )
        outputs = ("result",)
        binds = [Binding(agents[0], ("argue.0", "verdict"))] + [
            Binding(a, (f"argue.{i}",)) for i, a in enumerate(agents) if i > 0
        ]
        bound = n * rounds + 3
    return Protocol(method, tuple(agents), rounds, head + body + _ASSERTS, outputs, tuple(binds), bound)


@dataclass(frozen=True)
class CheckReport:
    assertions: tuple[tuple[str, str], ...]  # (text, status)
    terminates: bool
    longest: int  # longest trace of the LTS (-1: a cycle)
    states: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def longest_trace(offsets: Sequence[int], targets: Sequence[int], initial: int) -> tuple[int, int | None]:
    """(longest path length from ``initial``, None) or (-1, a state on a cycle)."""
    depth: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[tuple[int, int]] = [(initial, int(offsets[initial]))]
    on_stack.add(initial)
    while stack:
        s, k = stack[-1]
        if k < int(offsets[s + 1]):
            stack[-1] = (s, k + 1)
            t = int(targets[k])
            if t in on_stack:
                return -1, t
            if t not in depth:
                stack.append((t, int(offsets[t])))
                on_stack.add(t)
            continue
        succ = [depth[int(targets[j])] for j in range(int(offsets[s]), int(offsets[s + 1]))]
        depth[s] = 1 + max(succ) if succ else 0
        on_stack.discard(s)
        stack.pop()
    return depth[initial], None


def check(proto: Protocol) -> CheckReport:
    """Run the protocol's assertions and the termination check (no I/O)."""
    from processors.csp.check import verify
    from processors.csp.check.compile import compile_process
    from processors.csp.semantics.frontend import load_source
    from processors.csp.semantics.lts import TICK

    module = load_source(proto.source, f"{proto.method}.csp")
    results = verify.run_module(module)
    problems = [f"{r.text}: {r.status}" + (f" ({r.message})" if r.message else "")
                for r in results if r.status != "pass"]  # fmt: skip
    lts = compile_process(module.process(proto.process))
    offsets, labels, targets = lts.offsets.tolist(), lts.labels.tolist(), lts.targets.tolist()
    longest, cyclic = longest_trace(offsets, targets, lts.initial)
    if cyclic is not None:
        problems.append(f"does not terminate: state {cyclic} is on a cycle")
    elif longest > proto.bound:
        problems.append(f"a trace of {longest} events exceeds the bound {proto.bound}")
    # every state without successors must be reached by ✓ (termination, not deadlock)
    ticked = {targets[j] for j in range(len(labels)) if labels[j] == TICK}
    stuck = [s for s in range(len(offsets) - 1) if offsets[s] == offsets[s + 1] and s not in ticked]
    if stuck:
        problems.append(f"{len(stuck)} state(s) end without ✓ (e.g. state {stuck[0]})")
    return CheckReport(
        tuple((r.text, r.status) for r in results),
        cyclic is None and not stuck,
        longest,
        len(offsets) - 1,
        tuple(problems),
    )
