"""Deployments and instance state of the CSP runtime (pure data, no I/O).

A :class:`Deployment` is one version of a deployed system: its compiled LTS
(the execution form), the role of each channel (input: offered by the
environment; output: performed by the process on its own) and, for each
visible event, its channel and payload values. Per-state views (the
automatic transitions, the acceptable inputs) are computed lazily and cached,
so a deployment of a large LTS costs nothing up front.

An :class:`Instance` is the state of one running copy of a system:
``(LTS state, seq, status)`` plus identity. It is immutable; the step
functions return new values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from processors.csp.semantics.lts import LTS, TAU, TICK

INPUT = "INPUT"
OUTPUT = "OUTPUT"

# event kinds (CspEvent.kind)
KIND_INPUT = "INPUT"
KIND_OUTPUT = "OUTPUT"
KIND_TAU = "TAU"
KIND_TICK = "TICK"


class Status(StrEnum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    DEADLOCKED = "DEADLOCKED"
    TERMINATED = "TERMINATED"
    # the per-command bound on τ/output steps was hit: the instance is halted
    DIVERGENT = "DIVERGENT"


@dataclass(frozen=True)
class ChannelSpec:
    """A channel of a deployment: its role and the values each field may take."""

    name: str
    role: str  # INPUT | OUTPUT
    fields: tuple[str, ...] = ()  # type names (for messages)
    # rendered values of each field; empty tuple for a field means "not checked"
    values: tuple[tuple[str, ...], ...] = ()


def channel_of(event: str) -> str:
    """The channel of a CSPm event string: the part before the first '.'."""
    i = event.find(".")
    return event if i < 0 else event[:i]


def payload_of(event: str) -> tuple[str, ...]:
    """Naive payload split (used only when a deployment has no recorded payloads)."""
    parts = event.split(".")
    return tuple(parts[1:])


@dataclass(frozen=True, slots=True)
class Macro:
    """A deterministic accepted offer: the input and the settling steps that follow it.

    Valid when no draw is involved (one target, at most one automatic transition at
    each step) and the settling ends within the bound: then the outcome of offering
    ``label`` in ``state`` depends only on ``(state, label)`` and is computed once.
    """

    steps: tuple[tuple[int, int, int], ...]  # (label, state_before, state_after)
    state: int  # the state after settling
    status: Status  # RUNNING, DEADLOCKED or TERMINATED


@dataclass(eq=False)
class Deployment:
    """One version of a deployed system."""

    system: str
    version: int
    process: str
    lts: LTS
    channels: Mapping[str, ChannelSpec]
    # payload values of each label (index = label); () for τ, ✓ and plain events
    payloads: tuple[tuple[str, ...], ...] = ()
    file_name: str = ""
    source: str = ""
    source_hash: str = ""
    deployed_at: int = 0
    assertions: tuple[tuple[str, str], ...] = ()
    # derived
    label_of: dict[str, int] = field(init=False, repr=False)
    kinds: tuple[str, ...] = field(init=False, repr=False)
    label_channel: tuple[str | None, ...] = field(init=False, repr=False)
    _auto: dict[int, tuple[tuple[int, int], ...]] = field(init=False, repr=False)
    _inputs: dict[int, dict[int, tuple[int, ...]]] = field(init=False, repr=False)
    _dead: dict[int, bool] = field(init=False, repr=False)
    _macros: dict[tuple[int, int], Macro | None] = field(init=False, repr=False)
    macro_bound: int = field(default=1000, repr=False)

    def __post_init__(self) -> None:
        events = self.lts.events
        self.label_of = {name: i for i, name in enumerate(events)}
        kinds: list[str] = []
        chans: list[str | None] = []
        for i, name in enumerate(events):
            if i == TAU:
                kinds.append(KIND_TAU)
                chans.append(None)
            elif i == TICK:
                kinds.append(KIND_TICK)
                chans.append(None)
            else:
                ch = channel_of(name)
                spec = self.channels.get(ch)
                kinds.append(KIND_OUTPUT if spec is not None and spec.role == OUTPUT else KIND_INPUT)
                chans.append(ch)
        self.kinds = tuple(kinds)
        self.label_channel = tuple(chans)
        if len(self.payloads) != len(events):
            self.payloads = tuple(() if i < 2 else payload_of(e) for i, e in enumerate(events))
        self._auto = {}
        self._inputs = {}
        self._dead = {}
        self._macros = {}

    @property
    def key(self) -> tuple[str, int]:
        return (self.system, self.version)

    def _load(self, state: int) -> None:
        lts = self.lts
        lo, hi = int(lts.offsets[state]), int(lts.offsets[state + 1])
        labels = lts.labels[lo:hi].tolist()
        targets = lts.targets[lo:hi].tolist()
        kinds = self.kinds
        auto: list[tuple[int, int]] = []
        inputs: dict[int, list[int]] = {}
        for lab, tgt in zip(labels, targets, strict=True):
            if kinds[lab] == KIND_INPUT:
                inputs.setdefault(lab, []).append(tgt)
            else:
                auto.append((lab, tgt))
        auto.sort()
        self._auto[state] = tuple(auto)
        self._inputs[state] = {lab: tuple(sorted(ts)) for lab, ts in inputs.items()}
        self._dead[state] = hi == lo

    def auto(self, state: int) -> tuple[tuple[int, int], ...]:
        """τ, ✓ and output transitions of ``state`` as sorted (label, target) pairs."""
        got = self._auto.get(state)
        if got is None:
            self._load(state)
            got = self._auto[state]
        return got

    def inputs(self, state: int) -> dict[int, tuple[int, ...]]:
        """Input transitions of ``state``: label -> sorted targets."""
        got = self._inputs.get(state)
        if got is None:
            self._load(state)
            got = self._inputs[state]
        return got

    def macro(self, state: int, label: int) -> Macro | None:
        """The deterministic outcome of the input ``label`` in ``state`` (None: needs a draw,
        exceeds the bound, or is not acceptable); cached."""
        key = (state, label)
        try:
            return self._macros[key]
        except KeyError:
            pass
        got = self._macros[key] = self._compute_macro(state, label)
        return got

    def start_macro(self) -> Macro | None:
        """The deterministic settling of a new instance (None: it needs a draw or diverges); cached."""
        key = (-1, -1)
        try:
            return self._macros[key]
        except KeyError:
            pass
        got = self._macros[key] = self._settle_macro([], self.lts.initial)
        return got

    def _compute_macro(self, state: int, label: int) -> Macro | None:
        targets = self.inputs(state).get(label)
        if targets is None or len(targets) != 1:
            return None
        return self._settle_macro([(label, state, targets[0])], targets[0])

    def _settle_macro(self, steps: list[tuple[int, int, int]], cur: int) -> Macro | None:
        inputs = 1 if steps else 0
        while True:
            auto = self.auto(cur)
            if not auto:
                return Macro(tuple(steps), cur, Status.DEADLOCKED if self.is_dead(cur) else Status.RUNNING)
            if len(auto) > 1 or len(steps) - inputs >= self.macro_bound:
                return None
            lab, tgt = auto[0]
            steps.append((lab, cur, tgt))
            cur = tgt
            if lab == TICK:
                return Macro(tuple(steps), cur, Status.TERMINATED)

    def is_dead(self, state: int) -> bool:
        """True when ``state`` has no transitions at all."""
        got = self._dead.get(state)
        if got is None:
            self._load(state)
            got = self._dead[state]
        return got

    def acceptable(self, state: int) -> list[str]:
        """The input events ``state`` accepts, sorted by name."""
        events = self.lts.events
        return sorted(events[lab] for lab in self.inputs(state))

    def channel_role(self, channel: str) -> str | None:
        spec = self.channels.get(channel)
        return None if spec is None else spec.role

    def check_event(self, event: str) -> tuple[str, str] | None:
        """Why ``event`` is not an event of this system, as (reason, message); None if it is.

        Reasons: ``UNKNOWN_EVENT`` (no such channel), ``MALFORMED`` (payload does
        not fit the channel's fields).
        """
        if event in self.label_of and self.label_of[event] >= 2:
            return None
        ch = channel_of(event)
        spec = self.channels.get(ch)
        if spec is None:
            known = ", ".join(sorted(self.channels)) or "none"
            return (
                "UNKNOWN_EVENT",
                f"{event!r}: no channel {ch!r} in system {self.system} (channels: {known})",
            )
        fields = spec.values if spec.values else tuple(() for _ in spec.fields)
        if fields or event != ch:
            rest = event[len(ch) + 1 :] if len(event) > len(ch) else ""
            problem = _match_fields(rest, fields, 0)
            if problem is not None:
                shape = ".".join([ch, *(f"<{t}>" for t in spec.fields)]) if spec.fields else ch
                i, got = problem
                if i >= len(fields):
                    msg = f"{event!r}: too many fields for channel {ch}; expected {shape}"
                elif got == "":
                    msg = f"{event!r}: channel {ch} carries {len(fields)} field(s), missing field {i + 1}; expected {shape}"
                else:
                    allowed = fields[i]
                    tname = spec.fields[i] if i < len(spec.fields) else "field"
                    sample = ", ".join(allowed[:8]) + (", ..." if len(allowed) > 8 else "")
                    msg = f"{event!r}: field {i + 1} of channel {ch} ({tname}) must be one of {{{sample}}}, got {got!r}"
                return ("MALFORMED", msg)
        return None


def _match_fields(rest: str, fields: tuple[tuple[str, ...], ...], i: int) -> tuple[int, str] | None:
    """None if ``rest`` is ``v_i.v_i+1...`` for allowed values; else (field index, offending text)."""
    if i == len(fields):
        return None if rest == "" else (i, rest)
    if rest == "":
        return (i, "")
    allowed = fields[i]
    if not allowed:  # values not recorded: any one token
        head, _, tail = rest.partition(".")
        return _match_fields(tail, fields, i + 1) if head else (i, rest)
    worst: tuple[int, str] | None = None
    for v in allowed:
        if rest == v:
            sub = _match_fields("", fields, i + 1)
        elif rest.startswith(v + "."):
            sub = _match_fields(rest[len(v) + 1 :], fields, i + 1)
        else:
            continue
        if sub is None:
            return None
        if worst is None or sub[0] > worst[0]:
            worst = sub
    if worst is not None:
        return worst
    return (i, rest.split(".", 1)[0])


NO_PARAMS: Mapping[str, str] = MappingProxyType({})


def frozen_params(params: Mapping[str, str] | None) -> Mapping[str, str]:
    """START parameters as an immutable mapping; the empty case shares one object (memory per instance)."""
    return MappingProxyType(dict(params)) if params else NO_PARAMS


@dataclass(frozen=True, slots=True)
class Instance:
    """State of one instance after its event ``seq`` (seq 0: nothing happened yet)."""

    instance_id: str
    system: str
    version: int
    state: int
    seq: int
    status: Status
    updated_at: int = 0  # timestamp of the last command that changed it (ms)
    params: Mapping[str, str] = field(default_factory=lambda: NO_PARAMS)
    # hashes of the ids of its last commands that changed it (``runtime/idempotence.py``)
    recent: bytes = b""

    def with_(self, state: int, seq: int, status: Status, updated_at: int) -> Instance:
        return Instance(
            self.instance_id,
            self.system,
            self.version,
            state,
            seq,
            status,
            updated_at,
            self.params,
            self.recent,
        )
