"""The agreement example (examples/agreement/agreement.csp) driven live by `csp run`.

Two agents negotiate a price (offers on the protocol's input channels). The protocol's
`chain` channel is bound to the ledger service: the contract is deployed, both agents sign
and the agreement executes on the EVM chain, each receipt coming back as an event.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.sdk import Platform, PlatformError

SYSTEM = "agreement"
FILE = Path(__file__).resolve().parents[1] / "examples" / "agreement" / "agreement.csp"
OUTPUTS = ("chain", "done", "failed")
BIND = ("chain=ledger:receipt",)


@dataclass
class Outcome:
    instance_id: str
    trace: list[str]

    @property
    def executed(self) -> bool:
        return "done" in self.trace


def deploy(platform: Platform) -> str:
    """Deploy the protocol with its ledger binding (verified first); returns the verdicts."""
    plan = platform.deploy(FILE, "AGREEMENT", name=SYSTEM, outputs=list(OUTPUTS), bind=list(BIND))
    if plan.refused:
        raise PlatformError(f"{SYSTEM} refused: {plan.results}")
    return ", ".join(f"{r.status} {r.text}" for r in plan.results)


def negotiate(platform: Platform, price: int, timeout_s: float = 120.0) -> Outcome:
    """One agreement: offer, counter-offer, agree, then wait for the on-chain steps to finish."""
    inst = platform.start(SYSTEM, instance_id=f"deal-{uuid.uuid4().hex[:8]}")
    for event in (f"offer.{price}", f"counter.{price % 3 + 1}", f"offer.{price}", f"agree.{price}"):
        platform.offer(inst.instance_id, event, timeout_s=15)
    deadline = time.monotonic() + timeout_s
    trace: list[str] = []
    while time.monotonic() < deadline:
        trace = [e["event"] for e in platform.events(inst.instance_id)]
        if "done" in trace or "failed" in trace:
            break
        time.sleep(0.5)
    return Outcome(inst.instance_id, trace)


def demo_loop(platform: Platform, stop: Callable[[], bool], on_outcome: Callable[[Outcome], None]) -> None:
    for n in itertools.count():
        if stop():
            return
        on_outcome(negotiate(platform, n % 3 + 1))
