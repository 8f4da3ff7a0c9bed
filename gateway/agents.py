"""Python SDK of the agents service (``platform.agents``): registry and collaboration.

    with Platform.connect() as platform:
        platform.agents.create("critic", model="gpt-4o-mini", role="a sharp critic")
        res = platform.agents.collaborate(
            "Name the project", [CollabAgent("a", "m", "optimist"), CollabAgent("b", "m", "critic")],
            method="consensus",
        )
        print(res.outcome, res.result, res.trace)

``collaborate`` generates the method's CSPm protocol, checks it (deadlock and divergence
freedom, termination within the bound) and refuses to run it otherwise; deploys it
(the deployment runs the assertions again), registers the agents, starts an instance bound
to them and waits until it terminates. It needs a runtime worker (``csp worker``) and an
agents worker (``csp agents worker``) running.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from processors.agents.collab import CheckReport, Protocol, check, generate
from processors.agents.driver import bindings_param, split_request_id
from processors.agents.registry import AgentRegistry, AgentSpec
from processors.agents.topics import AgentTopics

if TYPE_CHECKING:
    from gateway.sdk import Platform


@dataclass(frozen=True)
class CollabAgent:
    name: str
    model: str
    role: str = ""


@dataclass(frozen=True)
class Step:
    seq: int
    event: str
    agent: str | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "event": self.event, "agent": self.agent, "message": self.message}


@dataclass(frozen=True)
class CollabResult:
    method: str
    instance_id: str
    system: str
    outcome: str  # e.g. "agreed in round 1", "failed", "final decision", "verdict: b"
    result: str  # the message that carries the outcome
    trace: tuple[Step, ...]
    protocol: str  # the CSPm source
    checks: CheckReport
    status: str = "TERMINATED"
    usage: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "instance_id": self.instance_id,
            "system": self.system,
            "status": self.status,
            "outcome": self.outcome,
            "result": self.result,
            "trace": [s.as_dict() for s in self.trace],
            "checks": {
                "assertions": [{"text": t, "status": s} for t, s in self.checks.assertions],
                "terminates": self.checks.terminates,
                "longest_trace": self.checks.longest,
                "states": self.checks.states,
            },
            "usage": dict(self.usage),
            "protocol": self.protocol,
        }


class CollaborationRefused(RuntimeError):
    """The generated protocol failed its checks: nothing was deployed."""


def outcome_of(method: str, agents: Sequence[str], trace: Sequence[Step]) -> tuple[str, str]:
    """(outcome, result message) of a finished collaboration (pure)."""
    spoken = [s for s in trace if s.agent is not None]
    last = spoken[-1].message or "" if spoken else ""
    events = [s.event for s in trace]
    if method == "consensus":
        agreed = next((e for e in events if e.startswith("agreed.")), None)
        if agreed is not None:
            return f"agreed in round {agreed.split('.')[1]}", last
        return "no consensus", last
    if method == "leader":
        return "final decision", last
    if method == "debate":
        verdict = next((s for s in trace if s.event.startswith("verdict.")), None)
        if verdict is None:
            return "no verdict", last
        winner = agents[int(verdict.event.split(".")[1])]
        argued = [s for s in spoken if s.agent == winner and s.event.startswith("argue.")]
        return f"verdict: {winner}", (argued[-1].message or "") if argued else ""
    return "done", last


class Agents:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.topics = AgentTopics(platform.topics.namespace)
        self.registry = AgentRegistry(platform.bootstrap, platform.codec, self.topics)

    # -- registry ------------------------------------------------------------------------

    def create(
        self, name: str, *, model: str, role: str = "", prompt: str | None = None, replace: bool = False
    ) -> AgentSpec:
        self._ensure_topics()
        return self.registry.create(AgentSpec(name, model, role, prompt), replace=replace)

    def all(self) -> list[AgentSpec]:
        """Every registered agent, by name."""
        self._ensure_topics()
        return self.registry.list()

    def delete(self, name: str) -> None:
        self._ensure_topics()
        self.registry.delete(name)

    def _ensure_topics(self) -> None:
        from streams.admin import ensure_topics

        ensure_topics(self.platform.bootstrap, self.topics.specs())

    # -- collaboration -----------------------------------------------------------------------

    def plan(self, method: str, agents: Sequence[CollabAgent], rounds: int = 2) -> tuple[Protocol, CheckReport]:
        """Generate and check the protocol (no I/O)."""
        proto = generate(method, [a.name for a in agents], rounds)
        return proto, check(proto)

    def collaborate(
        self,
        task: str,
        agents: Sequence[CollabAgent],
        method: str = "consensus",
        *,
        rounds: int = 2,
        timeout_s: float = 300.0,
    ) -> CollabResult:
        from gateway.sdk import PlatformError

        proto, report = self.plan(method, agents, rounds)
        if not report.ok:
            raise CollaborationRefused(f"the {method} protocol failed its checks: {'; '.join(report.problems)}")
        digest = hashlib.sha256(proto.source.encode()).hexdigest()[:10]
        system = f"collab-{method.replace('_', '-')}-{len(agents)}-{digest}"
        folder = self.platform.settings.resolved_data_dir() / "collab"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{system}.csp"
        path.write_text(proto.source, encoding="utf-8")
        if system not in self.platform.systems():
            plan = self.platform.deploy(path, proto.process, name=system, outputs=list(proto.outputs))
            if plan.refused:
                raise CollaborationRefused(f"deployment of {system} refused: {[r.text for r in plan.failed]}")
        self._ensure_topics()
        for a in agents:
            self.registry.create(AgentSpec(a.name, a.model, a.role), replace=True)
        # model and role travel inline with the binding too: the driver needs no registry read
        by_name = {a.name: a for a in agents}
        bindings = [replace(b, model=by_name[b.agent].model, role=by_name[b.agent].role or None)
                    for b in proto.bindings]  # fmt: skip
        inst = self.platform.start(system, params={"agents": bindings_param(bindings), "task": task})
        events = self._wait(inst.instance_id, timeout_s)
        if events is None:
            raise PlatformError(
                f"collaboration {inst.instance_id} did not finish within {timeout_s}s: "
                "are a runtime worker (`csp worker`) and an agents worker (`csp agents worker`) running?"
            )
        trace, usage = self._trace(inst.instance_id, events)
        outcome, result = outcome_of(method, [a.name for a in agents], trace)
        return CollabResult(method, inst.instance_id, system, outcome, result, tuple(trace), proto.source,
                            report, usage=usage)  # fmt: skip

    def _wait(self, iid: str, timeout_s: float) -> list[dict[str, Any]] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = self.platform.events(iid)
            if events and events[-1]["kind"] == "TICK":
                return events
            time.sleep(0.3)
        return None

    def _trace(self, iid: str, events: Sequence[Mapping[str, Any]]) -> tuple[list[Step], dict[str, int]]:
        notes: dict[int, tuple[str, str]] = {}
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "model_calls": 0}
        seen: set[str] = set()
        by_seq = {int(e["seq"]): e for e in events}
        for r in self.platform.read(self.topics.responses, "AgentResponse"):
            if r["instance_id"] != iid or r["request_id"] in seen:
                continue
            seen.add(r["request_id"])
            usage["model_calls"] += int(r.get("attempts") or 0)
            for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                usage[k] += int((r.get("usage") or {}).get(k) or 0)
            parts = split_request_id(r["request_id"])
            if parts is None or r["status"] != "OK":
                continue
            nxt = by_seq.get(parts[1] + 1)
            if nxt is not None and nxt["event"] == r.get("event"):
                notes[parts[1] + 1] = (parts[2], r.get("message") or "")
        steps = [
            Step(int(e["seq"]), e["event"], *(notes.get(int(e["seq"])) or (None, None)))
            for e in events
            if e["kind"] != "TAU"
        ]
        return steps, usage
