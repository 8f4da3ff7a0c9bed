"""Run the quantum teleportation example end to end (examples/quantum/teleport.csp).

    .venv/bin/python examples/quantum/run_quantum.py     # or: make -C examples run

Starts an ephemeral embedded stack (unless CSP_KAFKA_BOOTSTRAP is set), a CSP runtime worker
and a quantum worker, deploys the verified protocol, and drives instances: the environment
offers ``send.<state>``; every ``qreq`` event the instance performs becomes a quantum request
through the ``quantum`` service adapter (processors/quantum/binding.py) and every result is
offered back as ``qres.<verdict>``. That relay is what the channel-binding runtime does for a
deployment whose ``qreq`` channel is bound to ``quantum``; this script performs it itself with
the same adapter. Checks: ok teleports are acknowledged and deliver the state, a teleport
below the fidelity threshold (noisy pair) ends in nack. Exits non-zero if a check fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "examples"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from run_examples import check, deploy, kafka, worker  # noqa: E402

from gateway.quantum_demo import OUTPUTS, relay  # noqa: E402
from gateway.sdk import Instance, Platform  # noqa: E402
from processors.services.api import ServiceBinding  # noqa: E402

HERE = Path(__file__).resolve().parent
SYSTEM = "qteleport"


@contextlib.contextmanager
def quantum_worker(bootstrap: str, namespace: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=bootstrap, CSP_LOG_LEVEL="WARNING")
    cmd = [sys.executable, "-m", "processors.quantum.worker", "--bootstrap", bootstrap,
           "--namespace", namespace, "--worker-id", "examples"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def drive(inst: Instance, binding: ServiceBinding, state: str) -> list[str]:
    """Offer send.<state>, then relay qreq events to the quantum service and verdicts back."""
    run = relay(inst, binding, state, timeout_s=120)
    for result in run.results:
        fid = result.get("fidelity")
        print(
            f"    {result['operation']} -> {result['status']}"
            + (f" fidelity {fid:.4f}" if fid is not None else "")
        )
    return run.trace


def main() -> int:
    with kafka() as (bootstrap, settings):
        ns = f"qexample{uuid.uuid4().hex[:6]}"
        data = settings.resolved_data_dir()
        data.mkdir(parents=True, exist_ok=True)
        platform = Platform(bootstrap, namespace=ns, settings=settings)
        print(f"kafka {bootstrap}, namespace {ns}", flush=True)
        with worker(bootstrap, ns, data / "worker.log"), quantum_worker(bootstrap, ns, data / "quantum.log"), \
                platform:  # fmt: skip
            platform.partitions  # noqa: B018 - creates the runtime topics
            print("\n== quantum teleportation between two agents (examples/quantum/teleport.csp)", flush=True)
            deploy(platform, HERE / "teleport.csp", "SYSTEM", SYSTEM, list(OUTPUTS))
            q = platform.quantum
            clean = ServiceBinding(SYSTEM, "qreq", "quantum", reply_channel="qres")
            for k, state in enumerate(["plus", "one", "minus"]):
                inst = platform.start(SYSTEM, instance_id=f"teleport-{k}")
                trace = drive(inst, clean, state)
                print(f"  {inst.instance_id}: {' '.join(trace)}")
                check(
                    trace[-2:] == [f"deliver.{state}", "ack"],
                    f"{inst.instance_id}: {state} delivered and acknowledged",
                )
            noisy = ServiceBinding(SYSTEM, "qreq", "quantum", reply_channel="qres",
                                   options={"noise": "depolarizing=0.25"})  # fmt: skip
            inst = platform.start(SYSTEM, instance_id="teleport-noisy")
            trace = drive(inst, noisy, "plus")
            print(f"  {inst.instance_id}: {' '.join(trace)}")
            check(
                trace[-1] == "nack" and "ack" not in trace,
                "a pair below the fidelity threshold is not acknowledged",
            )
            bare = platform.start(SYSTEM, instance_id="teleport-refused")
            zero = {"amplitudes": [1.0, 0.0], "phases": [0.0, 0.0]}
            left = q.teleport("alice", "bob", zero)  # the noisy instance's pair was recorded, not used
            check(
                left["status"] == "OK",
                f"the unused (noisy) pair is consumed: fidelity {left['fidelity']:.4f}",
            )
            refused = q.teleport("alice", "bob", zero)
            check(refused["status"] == "REFUSED", f"a teleport without a pair is refused: {refused['error']}")
            bare.stop()
            print("\nquantum example passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
