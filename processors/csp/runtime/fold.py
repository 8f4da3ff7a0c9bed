"""Pure fold of the event log into instance state: recovery, replay, deduplication.

An instance's state is a fold over its ``csp.events`` records, starting from
its latest ``csp.snapshots`` record. The log may hold records of aborted
transactions (the embedded broker shows them to ``read_committed``
consumers) and duplicates of reprocessed commands; so

* recovery ignores records whose source command offset is at or past the
  committed offset of the commands partition (their command will be
  processed again and produce them again), and
* everything deduplicates on ``(instance_id, seq)`` (first record wins: a
  reprocessed command regenerates identical records).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from processors.csp.runtime.idempotence import window_from_events
from processors.csp.runtime.model import KIND_TICK, Instance, Status, frozen_params
from processors.csp.runtime.records import instance_from_snapshot
from processors.csp.runtime.step import DeploymentLookup

Rec = Mapping[str, Any]


class FoldError(ValueError):
    """The log of an instance is inconsistent (a gap or a state mismatch)."""


def committed_only(records: Iterable[Rec], committed: int | None) -> Iterable[Rec]:
    """Records whose source command is before ``committed`` (None: keep all)."""
    if committed is None:
        yield from records
        return
    for rec in records:
        off = rec.get("command_offset")
        if off is None or off < committed:
            yield rec


def dedupe_events(events: Iterable[Rec]) -> dict[str, dict[int, Rec]]:
    """instance_id -> seq -> event; the first record of each (instance, seq) wins."""
    out: dict[str, dict[int, Rec]] = {}
    for ev in events:
        per = out.get(ev["instance_id"])
        if per is None:
            per = out[ev["instance_id"]] = {}
        seq = int(ev["seq"])
        if seq not in per:
            per[seq] = ev
    return out


def latest_snapshots(snapshots: Iterable[Rec]) -> dict[str, Rec]:
    """instance_id -> its latest snapshot, ordered by (seq, command offset, arrival)."""
    best: dict[str, tuple[tuple[int, int, int], Rec]] = {}
    for i, snap in enumerate(snapshots):
        key = (int(snap["seq"]), int(snap.get("command_offset") or -1), i)
        cur = best.get(snap["instance_id"])
        if cur is None or key > cur[0]:
            best[snap["instance_id"]] = (key, snap)
    return {iid: s for iid, (_k, s) in best.items()}


def apply_events(
    inst: Instance,
    events: Mapping[int, Rec],
    lookup: DeploymentLookup | None,
    until: int | None = None,
    strict: bool = True,
) -> Instance:
    """``inst`` advanced by its events after ``inst.seq`` (up to ``until``), checking continuity.

    ``strict``: a gap (events after a missing seq) raises :class:`FoldError`; otherwise the
    fold stops at the gap (a live view may see part of a transaction).
    """
    seq, state, status, ts = inst.seq, inst.state, inst.status, inst.updated_at
    last_kind: str | None = None
    while until is None or seq < until:
        ev = events.get(seq + 1)
        if ev is None:
            break
        if int(ev["state_before"]) != state:
            raise FoldError(
                f"instance {inst.instance_id}: event {seq + 1} ({ev['event']}) starts in state "
                f"{ev['state_before']} but the fold is in state {state}"
            )
        seq += 1
        state = int(ev["state_after"])
        last_kind = ev["kind"]
        ts = int(ev.get("timestamp") or ts)
    if last_kind is None:
        return inst
    if until is None and strict:
        later = [s for s in events if s > seq]
        if later:
            raise FoldError(
                f"instance {inst.instance_id}: gap in the event log after seq {seq} (next is {min(later)})"
            )
    if last_kind == KIND_TICK:
        status = Status.TERMINATED
    else:
        dep = None if lookup is None else lookup(inst.system, inst.version)
        status = Status.DEADLOCKED if dep is not None and dep.is_dead(state) else Status.RUNNING
    return inst.with_(state, seq, status, ts)


def initial_from_events(iid: str, events: Mapping[int, Rec]) -> Instance | None:
    """The seq-0 instance implied by an instance's first event (when no snapshot is available)."""
    first = events.get(1)
    if first is None:
        return None
    return Instance(
        iid, first["system"], int(first["version"]), int(first["state_before"]), 0, Status.RUNNING
    )


def recover(
    snapshots: Iterable[Rec],
    events: Iterable[Rec],
    committed: int | None,
    lookup: DeploymentLookup | None,
    strict: bool = True,
    *,
    window: int = 0,
) -> dict[str, Instance]:
    """Every instance of a partition from its snapshot and events (committed records only).

    ``window`` > 0: each instance's window of recent command ids is rebuilt from its events."""
    snaps = latest_snapshots(committed_only(snapshots, committed))
    evs = dedupe_events(committed_only(events, committed))
    result: dict[str, Instance] = {}
    for iid in set(snaps) | set(evs):
        per = evs.get(iid, {})
        snap = snaps.get(iid)
        base = instance_from_snapshot(snap) if snap is not None else initial_from_events(iid, per)
        if base is None:
            continue
        inst = apply_events(base, per, lookup, None, strict)
        if window > 0:
            inst = replace(inst, recent=window_from_events(per, inst.seq, window))
        result[iid] = inst
    return result


@dataclass(frozen=True)
class Replay:
    """An instance rebuilt up to a point, with its trace."""

    instance: Instance
    trace: tuple[Rec, ...]  # the events 1..instance.seq


def replay(
    iid: str,
    snapshots: Iterable[Rec],
    events: Iterable[Rec],
    lookup: DeploymentLookup | None,
    until: int | None = None,
) -> Replay:
    """Time travel: rebuild ``iid`` from the first of its events up to ``until`` (all when None).

    The trace is folded from the beginning (no snapshot shortcut), so every step is checked;
    a halting status (STOPPED, DIVERGENT) recorded only in snapshots is applied at its seq.
    """
    per = dedupe_events(e for e in events if e["instance_id"] == iid).get(iid, {})
    snaps = sorted(
        (s for s in snapshots if s["instance_id"] == iid),
        key=lambda s: (int(s["seq"]), int(s.get("command_offset") or -1)),
    )
    base = initial_from_events(iid, per)
    if base is None:
        if not snaps:
            raise FoldError(f"no events and no snapshot for instance {iid}")
        base = instance_from_snapshot(snaps[0])
        if base.seq != 0:
            raise FoldError(f"instance {iid}: no events before its first snapshot at seq {base.seq}")
    elif snaps:
        base = Instance(
            iid,
            base.system,
            base.version,
            base.state,
            0,
            Status.RUNNING,
            base.updated_at,
            frozen_params(snaps[0].get("params")),
        )
    inst = apply_events(base, per, lookup, until)
    halted = [s for s in snaps if int(s["seq"]) == inst.seq and s["status"] in ("STOPPED", "DIVERGENT")]
    if halted and (until is None or until >= inst.seq):
        inst = inst.with_(
            inst.state, inst.seq, Status(halted[-1]["status"]), int(halted[-1].get("timestamp") or 0)
        )
    trace = tuple(per[s] for s in range(1, inst.seq + 1))
    return Replay(inst, trace)
