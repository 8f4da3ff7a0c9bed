"""Drive the quantum teleportation example (examples/quantum/teleport.csp) through the SDK.

An instance is offered ``send.<state>``. Every event it performs on the ``qreq`` channel
becomes a quantum request built by the ``quantum`` service adapter. Each result is offered
back as ``qres.<verdict>`` (``ADAPTER.reply``). This relay is the channel-binding runtime's
job for a deployment whose ``qreq`` channel is bound to ``quantum``. Used by ``csp run``
(demo traffic) and ``examples/quantum/run_quantum.py``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.sdk import Instance, Platform
from processors.quantum.binding import ADAPTER
from processors.services.api import BoundEvent, ServiceBinding

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quantum" / "teleport.csp"
PROCESS = "SYSTEM"
OUTPUTS = ("qreq", "paired", "arrived", "deliver", "ack", "nack")
STATES = ("plus", "one", "zero", "minus")


@dataclass
class Relayed:
    """What one run of the protocol did."""

    trace: list[str] = field(default_factory=list)
    results: list[dict[str, object]] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return bool(self.trace) and self.trace[-1] == "ack"


def relay(inst: Instance, binding: ServiceBinding, state: str, timeout_s: float = 60.0) -> Relayed:
    """Offer ``send.<state>`` and relay ``qreq`` events to the quantum service until the instance waits."""
    out = Relayed()
    q = inst.platform.quantum
    res = inst.offer(f"send.{state}", timeout_s=timeout_s)
    if res.event is None:
        raise RuntimeError(f"{inst.instance_id}: send.{state} refused: {res}")
    out.trace.append(str(res.event["event"]))
    pending = list(res.follow)
    while pending:
        ev = pending.pop(0)
        out.trace.append(str(ev["event"]))
        if ev.get("channel") != binding.channel:
            continue
        bound = BoundEvent(binding, inst.instance_id, int(ev["seq"]), str(ev["event"]), tuple(ev["payload"]))
        _key, record = ADAPTER.request(bound)
        result = q.call(record, timeout_s)
        out.results.append(result)
        reply = ADAPTER.reply(binding, result)
        if reply is None:
            break
        answer = inst.offer(reply.event, timeout_s=timeout_s)
        if answer.event is None:
            raise RuntimeError(f"{inst.instance_id}: {reply.event} refused: {answer}")
        out.trace.append(reply.event)
        pending.extend(answer.follow)
    return out


BIND = ("qreq=quantum:qres",)


def bound_round(inst: Instance, state: str, timeout_s: float = 60.0) -> Relayed:
    """Offer ``send.<state>`` to an instance whose ``qreq`` channel is bound to ``quantum`` (the
    channel bridge carries requests and verdicts); wait until it acknowledges or not."""
    import time

    from processors.services.api import request_id_for

    platform = inst.platform
    platform.quantum.listen()  # results from now on (before the instance sends its requests)
    res = inst.offer(f"send.{state}", timeout_s=timeout_s)
    if res.event is None:
        raise RuntimeError(f"{inst.instance_id}: send.{state} refused: {res}")
    out = Relayed()
    deadline = time.monotonic() + timeout_s
    events: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        events = platform.events(inst.instance_id)
        if events and events[-1]["event"] in ("ack", "nack"):
            break
        time.sleep(0.3)
    out.trace = [str(e["event"]) for e in events]
    requests = [request_id_for(inst.instance_id, int(str(e["seq"]))) for e in events if e.get("channel") == "qreq"]
    if requests:
        out.results = list(platform.quantum.wait(requests, timeout_s=timeout_s))
    return out


def demo_loop(
    platform: Platform,
    system: str,
    stop: threading.Event,
    on_round: Callable[[Relayed], None],
    pause_s: float = 1.0,
) -> None:
    """Teleport states between alice and bob until ``stop``; ``on_round`` gets each run.

    The system's ``qreq`` channel is bound to the quantum service (deployed with :data:`BIND`)."""
    version = max(platform.systems()[system])
    for n in itertools.count():
        if stop.is_set():
            return
        inst = platform.start(system, version=version)
        on_round(bound_round(inst, STATES[n % len(STATES)], timeout_s=30.0))
        stop.wait(pause_s)
