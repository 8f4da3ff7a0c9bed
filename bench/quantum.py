"""Quantum benchmark: teleportation requests through Kafka vs the same circuits straight on AerSimulator.

In the same run, on the same machine:

1. **raw Aer**: the teleportation circuits of the requests (Bell pair state, state
   preparation, mid-circuit Bell measurement, ``if_test`` corrections, ``save_density_matrix``)
   built and run in ONE ``AerSimulator(method="density_matrix").run`` call with the same shots.
2. **Kafka**: a quantum worker subprocess (the engine, exactly-once) with recorded pairs; the
   teleport requests are produced to ``quantum.requests`` and the clock stops when the last
   result was read from ``quantum.results``.

The requests are split into ``--rounds`` slices and each slice runs raw, then through Kafka,
so that both paths see the same machine load (the machine is shared).

Then the same teleports with a noise model (``--noise``) give the mean noisy fidelity.

Usage: python bench/quantum.py [--requests N] [--shots S] [--noise depolarizing=0.01] [--bootstrap HOST:PORT]
Last line: RESULT requests_per_s=... raw_aer_per_s=... ratio=... fidelity_ideal=... fidelity_noisy=...
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.quantum_sdk import QuantumClient  # noqa: E402
from infra.settings import Settings  # noqa: E402
from processors.quantum import circuits as qc_lib  # noqa: E402
from processors.quantum.requests import parse_noise_option, request_record  # noqa: E402
from streams.admin import ensure_topics  # noqa: E402


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from infra.stack import running_stack

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-quantum-")), kafka_bootstrap=None)
    with running_stack(settings, ephemeral=True) as ep:
        yield ep.kafka_bootstrap


@contextlib.contextmanager
def worker(bootstrap: str, namespace: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ, CSP_KAFKA_BOOTSTRAP=bootstrap, CSP_LOG_LEVEL="WARNING")
    cmd = [sys.executable, "-m", "processors.quantum.worker", "--bootstrap", bootstrap, "--namespace", namespace,
           "--worker-id", "bench", "--batch-size", "1000"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def states(n: int, seed: int) -> list[dict[str, list[float]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = float(rng.uniform(0, 1))
        out.append(
            {
                "amplitudes": [math.sqrt(p), math.sqrt(1 - p)],
                "phases": [0.0, float(rng.uniform(0, 2 * math.pi))],
            }
        )
    return out


def raw_aer(sts: list[dict[str, list[float]]], shots: int) -> tuple[float, float]:
    """Seconds for one batched AerSimulator call over the teleport circuits; mean fidelity."""
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method="density_matrix")
    started = time.perf_counter()
    circs, psis = [], []
    for s in sts:
        a0, a1 = s["amplitudes"]
        theta, phi = 2 * math.atan2(a1, a0), s["phases"][1] - s["phases"][0]
        qc = qc_lib.teleport(theta, phi)
        qc.save_density_matrix([2], label="rho")
        circs.append(qc)
        psis.append(qc_lib.state_vector(theta, phi))
    result = sim.run(circs, shots=shots, seed_simulator=1, memory=True).result()
    fids = [float(np.real(np.conj(p) @ np.asarray(result.data(i)["rho"]) @ p)) for i, p in enumerate(psis)]
    return time.perf_counter() - started, float(np.mean(fids))


def through_kafka(
    q: QuantumClient, sts: list[dict[str, list[float]]], shots: int, noise: dict[str, float] | None, tag: str,
    offset: int = 0,
) -> tuple[float, list[dict[str, Any]]]:  # fmt: skip
    n = len(sts)
    pairs = [request_record("entangle", request_id=f"{tag}-e{i}", agents=[f"s{i}", f"r{i}"], shots=1)
             for i in range(offset, offset + n)]  # fmt: skip
    q.wait(q.submit_many(pairs), timeout_s=600)  # pairs recorded (and the worker warm)
    tele = [request_record("teleport", request_id=f"{tag}-t{i}", agents=[f"s{offset + i}", f"r{offset + i}"],
                           state=s, shots=shots, noise=noise) for i, s in enumerate(sts)]  # fmt: skip
    started = time.perf_counter()
    ids = q.submit_many(tele)
    results = q.wait(ids, timeout_s=600)
    return time.perf_counter() - started, results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--shots", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="alternating raw / Kafka rounds")
    ap.add_argument("--noise", default="depolarizing=0.01,readout_error=0.01")
    ap.add_argument("--bootstrap", default=os.environ.get("CSP_KAFKA_BOOTSTRAP"))
    args = ap.parse_args()
    noise = parse_noise_option(args.noise)
    sts = states(args.requests, 7)
    with broker(args.bootstrap) as bootstrap:
        ns = f"bench{uuid.uuid4().hex[:6]}"
        settings = Settings(kafka_bootstrap=bootstrap)
        q = QuantumClient(bootstrap, namespace=ns, settings=settings)
        ensure_topics(bootstrap, q.topics.specs())
        log = Path(tempfile.mkdtemp(prefix="bench-quantum-")) / "worker.log"
        with worker(bootstrap, ns, log), q:
            raw_aer(sts[:20], args.shots)  # warm-up (imports, Aer start-up)
            # alternate rounds (raw, then Kafka, on the same slice) so both see the same machine load
            t_raw = t_kafka = 0.0
            raw_fids: list[float] = []
            ideal: list[dict[str, Any]] = []
            step = math.ceil(len(sts) / args.rounds)
            for r in range(args.rounds):
                part = sts[r * step : (r + 1) * step]
                dt, fid = raw_aer(part, args.shots)
                t_raw += dt
                raw_fids.append(fid)
                dt, got = through_kafka(q, part, args.shots, None, f"ideal{r}", offset=r * step)
                t_kafka += dt
                ideal += got
            _t, noisy = through_kafka(q, sts, args.shots, noise, "noisy")
    bad = [r for r in ideal + noisy if r["status"] != "OK"]
    if bad:
        print(f"{len(bad)} teleports failed, first: {bad[0]['error']}", file=sys.stderr)
        return 1
    raw_per_s = args.requests / t_raw
    raw_fid = float(np.mean(raw_fids))
    kafka_per_s = args.requests / t_kafka
    f_ideal = float(np.mean([r["fidelity"] for r in ideal]))
    f_noisy = float(np.mean([r["fidelity"] for r in noisy]))
    flagged = sum(1 for r in noisy if r["below_threshold"])
    print(f"teleports: {args.requests}, shots {args.shots}, noise {args.noise}")
    print(f"raw Aer, one batched call per round: {t_raw:.3f}s -> {raw_per_s:.1f} circuits/s "
          f"(mean fidelity {raw_fid:.6f})")  # fmt: skip
    print(f"through Kafka (worker subprocess, exactly-once): {t_kafka:.3f}s -> {kafka_per_s:.1f} requests/s")
    print(f"mean fidelity: noise-free {f_ideal:.6f}, noisy {f_noisy:.6f} ({flagged} below the threshold)")
    print(
        f"RESULT requests_per_s={kafka_per_s:.1f} raw_aer_per_s={raw_per_s:.1f} ratio={kafka_per_s / raw_per_s:.3f} "
        f"fidelity_ideal={f_ideal:.6f} fidelity_noisy={f_noisy:.6f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
