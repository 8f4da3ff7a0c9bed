"""Pure application of one command to one instance: the runtime's semantics.

* ``START`` creates the instance in the deployment's initial state and settles it.
* ``OFFER e`` is accepted iff the (settled) current state has an input transition
  on ``e``; the instance then takes it and settles again. An offer whose params carry
  ``expect_seq`` is accepted only while the instance is at that seq (optimistic
  concurrency, as an expected version in an event store): an offer chosen for a state the
  instance has since left is refused NOT_ACCEPTABLE, never applied to the new state.
* ``STOP`` halts the instance.

*Settling* performs, one at a time, the transitions the process takes on its
own: τ, ✓ and events on output channels. When several are enabled (or an
accepted input has several targets) one is picked by a draw seeded by
``(instance_id, seq)`` and the draw is recorded with the event, so a replay is
identical. At most ``bound`` steps are taken per command; a process still
unsettled then is DIVERGENT: the command gets a DIVERGENT refusal and the
instance is halted. A state with no transitions at all is DEADLOCKED; ✓ makes
the instance TERMINATED.

Every bad command yields a :class:`Refusal` naming what is wrong; none is
ignored. No I/O, no clock: the command's timestamp is the only time used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from processors.csp.runtime.model import Deployment, Instance, Status, frozen_params
from processors.csp.semantics.lts import TICK

DEFAULT_BOUND = 1000

START = "START"
OFFER = "OFFER"
STOP = "STOP"

# OFFER precondition: the instance's seq the offer was chosen at (a decimal string)
EXPECT_SEQ = "expect_seq"

DeploymentLookup = Callable[[str, int | None], Deployment | None]


@dataclass(frozen=True, slots=True)
class Command:
    command_id: str
    instance_id: str
    kind: str
    system: str | None = None
    version: int | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    event: str | None = None
    offer_id: str | None = None
    issued_at: int = 0


@dataclass(frozen=True, slots=True)
class Step:
    """One transition an instance performed (becomes a CspEvent)."""

    seq: int
    label: int
    event: str
    kind: str
    state_before: int
    state_after: int
    choice: tuple[int, int, int] | None  # (seed, options, chosen)
    offer_id: str | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command was not (fully) carried out (becomes a CspRefusal)."""

    reason: str
    message: str
    event: str | None = None
    offer_id: str | None = None
    acceptable: tuple[str, ...] = ()
    state: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    instance: Instance | None  # the instance after the command (None: there is none)
    steps: tuple[Step, ...] = ()
    refusal: Refusal | None = None
    # the instance was created or its status changed: record a snapshot
    status_changed: bool = False


def seed_for(instance_id: str, seq: int) -> int:
    """The draw seed of event ``seq`` of an instance: 63 bits of BLAKE2b."""
    h = hashlib.blake2b(f"{instance_id}\x00{seq}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1


def command_from_record(value: Mapping[str, Any], key: bytes | None) -> Command | Refusal:
    """A :class:`Command` from a decoded CspCommand, or a MALFORMED refusal saying why not."""
    iid = value.get("instance_id") or ""
    kind = value.get("kind")
    event = value.get("event")
    offer_id = value.get("offer_id")
    if not iid:
        return Refusal("MALFORMED", "command has an empty instance_id", event, offer_id)
    if key is not None and key != iid.encode():
        return Refusal(
            "MALFORMED",
            f"record key {key.decode('utf-8', 'replace')!r} differs from instance_id {iid!r}; "
            "commands must be keyed by instance id",
            event,
            offer_id,
        )
    if kind == START and not value.get("system"):
        return Refusal("MALFORMED", "START command without a system", event, offer_id)
    if kind == OFFER and not event:
        return Refusal("MALFORMED", "OFFER command without an event", event, offer_id)
    if kind not in (START, OFFER, STOP):
        return Refusal("MALFORMED", f"unknown command kind {kind!r}", event, offer_id)
    expect = (value.get("params") or {}).get(EXPECT_SEQ)
    if kind == OFFER and expect is not None and not _is_seq(expect):
        return Refusal(
            "MALFORMED", f"params.{EXPECT_SEQ} must be a non-negative integer, got {expect!r}", event, offer_id
        )
    return Command(
        command_id=value.get("command_id") or "",
        instance_id=iid,
        kind=kind,
        system=value.get("system"),
        version=value.get("version"),
        params=value.get("params") or {},
        event=event,
        offer_id=offer_id,
        issued_at=int(value.get("issued_at") or 0),
    )


def _is_seq(text: str) -> bool:
    return text.isascii() and text.isdigit()


def settle(
    dep: Deployment, iid: str, state: int, seq: int, bound: int, steps: list[Step]
) -> tuple[int, int, Status]:
    """Take automatic transitions until stable, terminated, dead or ``bound`` steps.

    Appends the steps taken to ``steps``; returns (state, seq, status).
    """
    taken = 0
    events = dep.lts.events
    kinds = dep.kinds
    while True:
        auto = dep.auto(state)
        if not auto:
            if dep.is_dead(state):
                return state, seq, Status.DEADLOCKED
            return state, seq, Status.RUNNING
        if taken >= bound:
            return state, seq, Status.DIVERGENT
        seq += 1
        n = len(auto)
        if n == 1:
            label, target = auto[0]
            choice = None
        else:
            seed = seed_for(iid, seq)
            chosen = seed % n
            label, target = auto[chosen]
            choice = (seed, n, chosen)
        steps.append(Step(seq, label, events[label], kinds[label], state, target, choice, None))
        state = target
        taken += 1
        if label == TICK:
            return state, seq, Status.TERMINATED


def _status_refusal(inst: Instance, cmd: Command) -> Refusal:
    what = {
        Status.STOPPED: "has been stopped",
        Status.DEADLOCKED: "is deadlocked (its state has no transitions)",
        Status.TERMINATED: "has terminated (✓)",
        Status.DIVERGENT: "is divergent (it exceeded the bound on internal/output steps)",
    }[inst.status]
    return Refusal(
        inst.status.value,
        f"instance {inst.instance_id} {what}; it accepts no more offers",
        cmd.event,
        cmd.offer_id,
        (),
        inst.state,
    )


def start(dep: Deployment, cmd: Command, bound: int = DEFAULT_BOUND) -> Outcome:
    steps: list[Step] = []
    state, seq, status = settle(dep, cmd.instance_id, dep.lts.initial, 0, bound, steps)
    inst = Instance(
        cmd.instance_id, dep.system, dep.version, state, seq, status, cmd.issued_at, frozen_params(cmd.params)
    )
    refusal = None
    if status is Status.DIVERGENT:
        refusal = _divergent(inst, cmd, bound)
    return Outcome(inst, tuple(steps), refusal, True)


def _divergent(inst: Instance, cmd: Command, bound: int) -> Refusal:
    return Refusal(
        "DIVERGENT",
        f"instance {inst.instance_id} performed {bound} internal/output steps for one command without "
        f"becoming stable (livelock or unbounded output); it is halted at state {inst.state}",
        cmd.event,
        cmd.offer_id,
        (),
        inst.state,
    )


def offer(dep: Deployment, inst: Instance, cmd: Command, bound: int = DEFAULT_BOUND) -> Outcome:
    if inst.status is not Status.RUNNING:
        return Outcome(inst, (), _status_refusal(inst, cmd))
    event = cmd.event or ""
    expect = cmd.params.get(EXPECT_SEQ)
    if expect is not None and not _is_seq(expect):
        msg = f"params.{EXPECT_SEQ} must be a non-negative integer, got {expect!r}"
        return Outcome(inst, (), Refusal("MALFORMED", msg, event, cmd.offer_id, (), inst.state))
    if expect is not None and int(expect) != inst.seq:
        return Outcome(
            inst,
            (),
            Refusal(
                "NOT_ACCEPTABLE",
                f"{event!r} was offered for seq {int(expect)}; instance {inst.instance_id} has moved on to "
                f"seq {inst.seq}",
                event,
                cmd.offer_id,
                tuple(dep.acceptable(inst.state)),
                inst.state,
            ),
        )
    label = dep.label_of.get(event)
    targets = None if label is None else dep.inputs(inst.state).get(label)
    if targets is None:
        problem = dep.check_event(event)
        if problem is not None:
            acceptable = tuple(dep.acceptable(inst.state))
            return Outcome(
                inst, (), Refusal(problem[0], problem[1], event, cmd.offer_id, acceptable, inst.state)
            )
        acceptable = tuple(dep.acceptable(inst.state))
        if (
            label is not None
            and dep.kinds[label] != "INPUT"
            or dep.channel_role(event.split(".", 1)[0]) == "OUTPUT"
        ):
            msg = f"{event!r} is on an output channel: the process performs it itself, it cannot be offered"
        else:
            msg = f"{event!r} is not acceptable in state {inst.state}"
        return Outcome(inst, (), Refusal("NOT_ACCEPTABLE", msg, event, cmd.offer_id, acceptable, inst.state))
    seq = inst.seq + 1
    if len(targets) == 1:
        target = targets[0]
        choice = None
    else:
        seed = seed_for(inst.instance_id, seq)
        chosen = seed % len(targets)
        target = targets[chosen]
        choice = (seed, len(targets), chosen)
    assert label is not None
    steps = [Step(seq, label, event, "INPUT", inst.state, target, choice, cmd.offer_id)]
    state, seq, status = settle(dep, inst.instance_id, target, seq, bound, steps)
    new = inst.with_(state, seq, status, cmd.issued_at)
    refusal = _divergent(new, cmd, bound) if status is Status.DIVERGENT else None
    return Outcome(new, tuple(steps), refusal, status is not Status.RUNNING)


def stop(inst: Instance, cmd: Command) -> Outcome:
    if inst.status is Status.STOPPED:
        return Outcome(
            inst,
            (),
            Refusal("STOPPED", f"instance {inst.instance_id} is already stopped", None, None, (), inst.state),
        )
    return Outcome(inst.with_(inst.state, inst.seq, Status.STOPPED, cmd.issued_at), (), None, True)


def apply(
    cmd: Command, inst: Instance | None, lookup: DeploymentLookup, bound: int = DEFAULT_BOUND
) -> Outcome:
    """Apply ``cmd`` to ``inst`` (None: the instance does not exist yet)."""
    if cmd.kind == START:
        if inst is not None:
            return Outcome(
                inst,
                (),
                Refusal(
                    "ALREADY_STARTED",
                    f"instance {inst.instance_id} already runs {inst.system} v{inst.version} (status {inst.status.value})",
                    None,
                    cmd.offer_id,
                    (),
                    inst.state,
                ),
            )
        system = cmd.system or ""
        dep = lookup(system, cmd.version)
        if dep is None:
            which = system if cmd.version is None else f"{system} v{cmd.version}"
            return Outcome(
                None, (), Refusal("UNKNOWN_SYSTEM", f"no deployed system {which}", None, cmd.offer_id)
            )
        return start(dep, cmd, bound)
    if inst is None:
        return Outcome(
            None,
            (),
            Refusal(
                "UNKNOWN_INSTANCE",
                f"no instance {cmd.instance_id} (start it first with a START command)",
                cmd.event,
                cmd.offer_id,
            ),
        )
    if cmd.kind == STOP:
        return stop(inst, cmd)
    dep = lookup(inst.system, inst.version)
    if dep is None:  # the registry lost the version the instance runs: cannot happen with an append-only log
        return Outcome(
            inst,
            (),
            Refusal(
                "UNKNOWN_SYSTEM",
                f"deployment {inst.system} v{inst.version} not found",
                cmd.event,
                cmd.offer_id,
            ),
        )
    return offer(dep, inst, cmd, bound)

