"""A deterministic command workload and its reference fold (computed in-process with the pure core)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from processors.csp.runtime import records as R
from processors.csp.runtime.model import Deployment, Instance
from processors.csp.runtime.step import Command, apply

IGNORED = ("command_partition", "command_offset")


@dataclass
class Workload:
    deps: dict[str, Deployment]
    starts: list[Command] = field(default_factory=list)
    offers: list[Command] = field(default_factory=list)

    def lookup(self, system: str, version: int | None) -> Deployment | None:
        dep = self.deps.get(system)
        return dep if dep is not None and (version is None or version == dep.version) else None

    def reference(self) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
        """Expected events per instance (without source positions) and refusal reason per command id."""
        insts: dict[str, Instance] = {}
        events: dict[str, list[dict[str, Any]]] = {}
        refusals: dict[str, str] = {}
        for cmd in self.starts + self.offers:
            out = apply(cmd, insts.get(cmd.instance_id), self.lookup)
            if out.instance is not None:
                insts[cmd.instance_id] = out.instance
                dep = self.deps[out.instance.system]
                evs = events.setdefault(cmd.instance_id, [])
                evs.extend(strip(R.event_record(dep, cmd.instance_id, s, cmd, None, None)) for s in out.steps)
            if out.refusal is not None:
                refusals[cmd.command_id] = out.refusal.reason
        return events, refusals


def strip(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in IGNORED}


def make_workload(deps: dict[str, Deployment], instances: int, offers: int, seed: int, tag: str) -> Workload:
    """``instances`` instances alternating over ``deps``, each offered ``offers`` random events
    of its system (acceptable or not), interleaved round-robin."""
    rng = random.Random(seed)
    w = Workload(deps)
    systems = sorted(deps)
    iids: list[tuple[str, Deployment]] = []
    for i in range(instances):
        dep = deps[systems[i % len(systems)]]
        iid = f"{tag}-{dep.system}-{i}"
        iids.append((iid, dep))
        w.starts.append(
            Command(f"{iid}-start", iid, "START", system=dep.system, version=dep.version, issued_at=1_000 + i)
        )
    for k in range(offers):
        for iid, dep in iids:
            inputs = [e for lab, e in enumerate(dep.lts.events) if dep.kinds[lab] == "INPUT"]
            ev = rng.choice(inputs)
            w.offers.append(
                Command(
                    f"{iid}-o{k}", iid, "OFFER", event=ev, offer_id=f"{iid}-offer{k}", issued_at=10_000 + k
                )
            )
    return w


def as_fields(cmd: Command) -> tuple[str, str, dict[str, Any]]:
    fields: dict[str, Any] = {"command_id": cmd.command_id, "issued_at": cmd.issued_at}
    if cmd.kind == "START":
        fields.update(system=cmd.system, version=cmd.version)
    else:
        fields.update(event=cmd.event, offer_id=cmd.offer_id)
    return cmd.instance_id, cmd.kind, fields


def check_log(events: list[dict[str, Any]], expected: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Assert: no gap, no conflicting duplicate, and every trace equals the reference. Returns stats."""
    by_key: dict[tuple[str, int], dict[str, Any]] = {}
    dups = 0
    for ev in events:
        k = (ev["instance_id"], ev["seq"])
        s = strip(ev)
        if k in by_key:
            dups += 1
            assert by_key[k] == s, f"divergent duplicate of {k}: {by_key[k]} vs {s}"
        else:
            by_key[k] = s
    for iid, exp in expected.items():
        got = [by_key[(iid, seq)] for seq in range(1, len(exp) + 1) if (iid, seq) in by_key]
        assert len(got) == len(exp), f"{iid}: {len(got)} of {len(exp)} events (gap)"
        assert (iid, len(exp) + 1) not in by_key, f"{iid}: more events than the reference"
        assert got == exp, f"{iid}: trace differs from the reference fold"
    return {"events": len(by_key), "visible_duplicates": dups}
