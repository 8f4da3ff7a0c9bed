"""Pure core: command application, settling, seeded choices, refusals, fold/replay, compiled form."""

from __future__ import annotations

from collections import Counter

import pytest
from lts_fixtures import buffer_deployment, choice_deployment, misc_deployment

from processors.csp.runtime import compiled, fold, records
from processors.csp.runtime.model import Deployment, Instance, Status
from processors.csp.runtime.step import Command, Outcome, Refusal, apply, command_from_record


def lookup_of(*deps: Deployment):  # type: ignore[no-untyped-def]
    table = {d.key: d for d in deps}

    def lookup(system: str, version: int | None) -> Deployment | None:
        if version is None:
            vs = [v for (s, v) in table if s == system]
            return table[(system, max(vs))] if vs else None
        return table.get((system, version))

    return lookup


def cmd(kind: str, iid: str = "i1", **kw: object) -> Command:
    return Command(command_id=f"c-{kind}-{kw.get('event')}", instance_id=iid, kind=kind, issued_at=1000, **kw)  # type: ignore[arg-type]


def test_buffer_offer_then_output_follows() -> None:
    dep = buffer_deployment()
    lk = lookup_of(dep)
    out = apply(cmd("START", system="buf"), None, lk)
    assert out.refusal is None and out.steps == () and out.status_changed
    inst = out.instance
    assert inst is not None and inst.state == 0 and inst.status is Status.RUNNING
    out = apply(cmd("OFFER", event="in.2", offer_id="o1"), inst, lk)
    assert out.refusal is None
    assert [(s.seq, s.event, s.kind) for s in out.steps] == [(1, "in.2", "INPUT"), (2, "out.2", "OUTPUT")]
    assert out.steps[0].offer_id == "o1"
    assert out.instance is not None and out.instance.seq == 2 and out.instance.state == 0


def test_refusals_name_the_reason() -> None:
    dep = buffer_deployment()
    lk = lookup_of(dep)
    inst = apply(cmd("START", system="buf"), None, lk).instance
    assert inst is not None
    cases = {
        "out.1": "NOT_ACCEPTABLE",  # output channel
        "nosuch.1": "UNKNOWN_EVENT",
        "in.7": "MALFORMED",
        "in": "MALFORMED",
        "in.1.2": "MALFORMED",
    }
    for event, reason in cases.items():
        out = apply(cmd("OFFER", event=event), inst, lk)
        assert out.refusal is not None, event
        assert out.refusal.reason == reason, (event, out.refusal)
        assert event in out.refusal.message
        assert out.instance == inst
    for event in ("out.1", "in.7", "nosuch.1"):  # every offer refusal lists what was acceptable
        out = apply(cmd("OFFER", event=event), inst, lk)
        assert out.refusal is not None and out.refusal.acceptable == ("in.0", "in.1", "in.2")
    assert apply(cmd("OFFER", "nobody", event="in.1"), None, lk).refusal.reason == "UNKNOWN_INSTANCE"  # type: ignore[union-attr]
    assert apply(cmd("START", system="other"), None, lk).refusal.reason == "UNKNOWN_SYSTEM"  # type: ignore[union-attr]
    assert apply(cmd("START", system="buf"), inst, lk).refusal.reason == "ALREADY_STARTED"  # type: ignore[union-attr]
    stopped = apply(cmd("STOP"), inst, lk)
    assert (
        stopped.instance is not None and stopped.instance.status is Status.STOPPED and stopped.status_changed
    )
    assert apply(cmd("OFFER", event="in.1"), stopped.instance, lk).refusal.reason == "STOPPED"  # type: ignore[union-attr]
    assert apply(cmd("STOP"), stopped.instance, lk).refusal.reason == "STOPPED"  # type: ignore[union-attr]


def test_malformed_records() -> None:
    ok = records.command_record("c1", "i1", "OFFER", 5, event="in.1")
    assert isinstance(command_from_record(ok, b"i1"), Command)
    assert isinstance(command_from_record(ok, b"other"), Refusal)
    assert isinstance(command_from_record({**ok, "instance_id": ""}, None), Refusal)
    assert isinstance(command_from_record({**ok, "event": None}, b"i1"), Refusal)
    assert isinstance(command_from_record({**ok, "kind": "START"}, b"i1"), Refusal)  # no system


def test_offer_with_expect_seq_holds_only_at_that_seq() -> None:
    dep = buffer_deployment()
    lk = lookup_of(dep)
    inst = apply(cmd("START", system="buf"), None, lk).instance
    assert inst is not None and inst.seq == 0
    moved = apply(cmd("OFFER", event="in.1", params={"expect_seq": "0"}), inst, lk)
    assert moved.refusal is None and moved.instance is not None and moved.instance.seq == 2
    # chosen at seq 0, but the instance is at seq 2 now: refused, the state untouched
    stale = apply(cmd("OFFER", event="in.1", params={"expect_seq": "0"}), moved.instance, lk)
    assert stale.refusal is not None and stale.refusal.reason == "NOT_ACCEPTABLE"
    assert "moved on to seq 2" in stale.refusal.message and stale.instance == moved.instance
    assert stale.refusal.acceptable == ("in.0", "in.1", "in.2")
    assert apply(cmd("OFFER", event="in.1", params={"expect_seq": "2"}), moved.instance, lk).refusal is None
    bad = records.command_record("c1", "i1", "OFFER", 5, event="in.1", params={"expect_seq": "x"})
    ref = command_from_record(bad, b"i1")
    assert isinstance(ref, Refusal) and ref.reason == "MALFORMED" and "expect_seq" in ref.message
    direct = apply(cmd("OFFER", event="in.1", params={"expect_seq": "-1"}), moved.instance, lk)
    assert direct.refusal is not None and direct.refusal.reason == "MALFORMED"


def test_deadlock_terminate_divergence() -> None:
    dep = misc_deployment()
    lk = lookup_of(dep)
    inst = apply(cmd("START", system="misc"), None, lk).instance
    assert inst is not None
    dead = apply(cmd("OFFER", event="go"), inst, lk)
    assert dead.refusal is None and dead.instance is not None and dead.instance.status is Status.DEADLOCKED
    assert apply(cmd("OFFER", event="go"), dead.instance, lk).refusal.reason == "DEADLOCKED"  # type: ignore[union-attr]
    term = apply(cmd("OFFER", event="fin"), inst, lk)
    assert [s.kind for s in term.steps] == ["INPUT", "TICK"]
    assert term.instance is not None and term.instance.status is Status.TERMINATED
    div = apply(cmd("OFFER", event="spin"), inst, lk, bound=50)
    assert div.refusal is not None and div.refusal.reason == "DIVERGENT"
    assert len(div.steps) == 51 and div.instance is not None and div.instance.status is Status.DIVERGENT
    assert apply(cmd("OFFER", event="go"), div.instance, lk).refusal.reason == "DIVERGENT"  # type: ignore[union-attr]
    ping = apply(cmd("OFFER", event="ping.2"), inst, lk)
    assert [s.event for s in ping.steps] == ["ping.2", "pong"]
    assert apply(cmd("OFFER", event="ping.3"), inst, lk).refusal.reason == "NOT_ACCEPTABLE"  # type: ignore[union-attr]
    assert apply(cmd("OFFER", event="ping.4"), inst, lk).refusal.reason == "MALFORMED"  # type: ignore[union-attr]


def test_internal_choice_is_seeded_recorded_and_spread() -> None:
    dep = choice_deployment()
    lk = lookup_of(dep)
    picks: Counter[int] = Counter()
    for i in range(300):
        out = apply(cmd("START", f"inst-{i}", system="choice"), None, lk)
        again = apply(cmd("START", f"inst-{i}", system="choice"), None, lk)
        assert out == again  # deterministic
        (step,) = out.steps
        assert step.kind == "TAU" and step.choice is not None
        seed, options, chosen = step.choice
        assert options == 3 and chosen == seed % 3
        picks[step.state_after] += 1
    assert set(picks) == {1, 2, 3}
    assert min(picks.values()) > 50  # each of three branches gets a fair share of 300 draws


def run_commands(cmds: list[Command], lk) -> tuple[dict[str, Instance], list[dict], list[dict]]:  # type: ignore[no-untyped-def,type-arg]
    insts: dict[str, Instance] = {}
    events: list[dict] = []  # type: ignore[type-arg]
    snaps: list[dict] = []  # type: ignore[type-arg]
    for off, c in enumerate(cmds):
        out: Outcome = apply(c, insts.get(c.instance_id), lk)
        if out.instance is not None:
            insts[c.instance_id] = out.instance
            dep = lk(out.instance.system, out.instance.version)
            events.extend(records.event_record(dep, c.instance_id, s, c, 0, off) for s in out.steps)
            if out.status_changed:
                snaps.append(records.snapshot_record(out.instance, 0, off))
    return insts, events, snaps


def test_fold_recovers_state_and_ignores_uncommitted() -> None:
    dep, misc = buffer_deployment(), misc_deployment()
    lk = lookup_of(dep, misc)
    cmds = [cmd("START", "a", system="buf"), cmd("START", "b", system="misc")]
    cmds += [cmd("OFFER", "a", event=f"in.{k % 3}") for k in range(5)]
    cmds += [cmd("OFFER", "b", event="ping.1"), cmd("STOP", "a"), cmd("OFFER", "b", event="fin")]
    insts, events, snaps = run_commands(cmds, lk)
    # duplicates (reprocessed commands) and records of an aborted later command
    noise = [dict(e, command_offset=99) for e in events[:3]] + [
        dict(e, state_after=77, command_offset=len(cmds)) for e in events[-1:]
    ]
    got = fold.recover(snaps + snaps[:1], events + events[:4] + noise, len(cmds), lk)
    assert got == insts
    assert got["a"].status is Status.STOPPED and got["b"].status is Status.TERMINATED
    # as of an earlier committed offset: only the first 4 commands count
    partial = fold.recover(snaps, events, 4, lk)
    ref, _, _ = run_commands(cmds[:4], lk)
    assert partial == ref


def test_fold_detects_gaps_and_mismatches() -> None:
    dep = buffer_deployment()
    lk = lookup_of(dep)
    cmds = [cmd("START", "a", system="buf")] + [cmd("OFFER", "a", event="in.1") for _ in range(3)]
    _, events, snaps = run_commands(cmds, lk)
    with pytest.raises(fold.FoldError, match="gap"):
        fold.recover(snaps, events[:2] + events[3:], None, lk)
    bad = [dict(e) for e in events]
    bad[2]["state_before"] = 3
    with pytest.raises(fold.FoldError, match="state"):
        fold.recover(snaps, bad, None, lk)


def test_replay_time_travel() -> None:
    dep = buffer_deployment()
    lk = lookup_of(dep)
    cmds = [cmd("START", "a", system="buf")] + [cmd("OFFER", "a", event=f"in.{k % 3}") for k in range(4)]
    cmds.append(cmd("STOP", "a"))
    insts, events, snaps = run_commands(cmds, lk)
    full = fold.replay("a", snaps, events, lk)
    assert full.instance == insts["a"]
    assert [e["event"] for e in full.trace] == [
        "in.0",
        "out.0",
        "in.1",
        "out.1",
        "in.2",
        "out.2",
        "in.0",
        "out.0",
    ]
    mid = fold.replay("a", snaps, events, lk, until=3)
    assert mid.instance.seq == 3 and mid.instance.state == 2 and mid.instance.status is Status.RUNNING
    assert [e["event"] for e in mid.trace] == ["in.0", "out.0", "in.1"]


def test_compiled_roundtrip() -> None:
    dep = misc_deployment()
    payloads = tuple(() if i < 2 else tuple(e.split(".")[1:]) for i, e in enumerate(dep.lts.events))
    blob = compiled.dumps(dep.lts, payloads, {"k": [1, 2]})
    lts, pl, meta = compiled.loads(blob)
    assert meta == {"k": [1, 2]}
    assert lts.events == dep.lts.events and lts.initial == dep.lts.initial
    assert lts.offsets.tolist() == dep.lts.offsets.tolist()
    assert lts.labels.tolist() == dep.lts.labels.tolist() and lts.targets.tolist() == dep.lts.targets.tolist()
    assert pl == payloads
    with pytest.raises(compiled.CompiledFormatError):
        compiled.loads(b"garbage")
