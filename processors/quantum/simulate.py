"""Run validated jobs on qiskit-aer, many circuits per simulator call, and compute what a result reports.

Each job becomes a *plan*: the circuits it needs and a function from their simulated data
to an :class:`Outcome`. Circuits of all plans that share (method, noise, shots) run in ONE
``AerSimulator.run`` call. Fidelities are computed against the noise-free ideal state:

* entangle: <GHZ| rho |GHZ> with rho the exact density matrix (density-matrix method);
* teleport: <psi| rho_B |psi> with rho_B the receiver's density matrix averaged over shots;
* circuit (with noise): <psi_ideal| rho_noisy |psi_ideal>, final measurements removed;
* error_correction: 1 - logical error rate (exact, from the decoded qubit's density matrix).

Seeds: Aer seeds circuit i of a call with ``seed_simulator + 2113 * i``; the call's seed is
the seed of its first job. Sampling done here (entangle and error-correction counts) uses a
numpy generator seeded by the job's own seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator

from processors.quantum import circuits as qc_lib
from processors.quantum.noise import noise_model
from processors.quantum.spec import (
    NOISELESS,
    Entangle,
    ErrorCorrection,
    Job,
    Limits,
    Noise,
    RequestError,
    RunCircuit,
    Teleport,
)

AER_SEED_STRIDE = 2113  # qiskit-aer: circuit i of a call runs with seed_simulator + 2113 * i


@dataclass
class Outcome:
    status: str = "OK"
    num_qubits: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    fidelity: float | None = None
    classical_bits: str | None = None
    statevector: np.ndarray | None = None
    density_matrix: np.ndarray | None = None
    physical_error_rate: float | None = None
    logical_error_rate: float | None = None
    error_code: str | None = None
    error: str | None = None
    seed: int | None = None
    duration_ms: int = 0


def failed(code: str, message: str, status: str = "ERROR") -> Outcome:
    return Outcome(status=status, error_code=code, error=message)


@dataclass
class Data:
    """What one simulated circuit returned."""

    saved: dict[str, Any]
    counts: dict[str, int]
    memory: list[str]
    seed: int


@dataclass(frozen=True)
class Task:
    circuit: QuantumCircuit
    method: str
    noise: Noise
    shots: int
    memory: bool = False


@dataclass
class Plan:
    job: Job
    tasks: list[Task]
    finish: Callable[[list[Data]], Outcome]


def _fidelity(psi: np.ndarray, rho: np.ndarray) -> float:
    return float(np.clip(np.real(np.conj(psi) @ rho @ psi), 0.0, 1.0))


def _sample(probs: np.ndarray, shots: int, seed: int, width: int) -> dict[str, int]:
    p = np.clip(np.real(probs), 0, None)
    p = p / p.sum()
    drawn = np.random.default_rng(seed).multinomial(shots, p)
    return {format(i, f"0{width}b"): int(n) for i, n in enumerate(drawn) if n}


def _readout(probs: np.ndarray, n: int, p: float) -> np.ndarray:
    """Apply a symmetric readout flip of probability p to each of n bits of a distribution."""
    if p == 0:
        return probs
    flip = np.array([[1 - p, p], [p, 1 - p]])
    t = probs.reshape([2] * n)
    for axis in range(n):
        t = np.moveaxis(np.tensordot(flip, t, axes=([1], [axis])), 0, axis)
    return t.reshape(-1)


def plan_entangle(job: Job, op: Entangle) -> Plan:
    n = len(op.agents)
    qc = qc_lib.ghz(n)
    qc.save_density_matrix(label="rho")
    ideal = qc_lib.ghz_vector(n)

    def finish(data: list[Data]) -> Outcome:
        rho = np.asarray(data[0].saved["rho"])
        probs = _readout(np.real(np.diag(rho)), n, job.noise.readout_error)
        return Outcome(num_qubits=n, fidelity=_fidelity(ideal, rho), density_matrix=rho,
                       counts=_sample(probs, job.shots, job.seed, n), seed=job.seed)  # fmt: skip

    return Plan(job, [Task(qc, "density_matrix", job.noise, 1)], finish)


def plan_teleport(job: Job, op: Teleport) -> Plan:
    qc = qc_lib.teleport(op.theta, op.phi, job.pair)
    qc.save_density_matrix([2], label="rho")
    psi = qc_lib.state_vector(op.theta, op.phi)

    def finish(data: list[Data]) -> Outcome:
        d = data[0]
        rho = np.asarray(d.saved["rho"])
        counts: dict[str, int] = {}
        for key, n in d.counts.items():  # Aer: "m1 m0"
            m1, m0 = key.split()
            counts[m0 + m1] = counts.get(m0 + m1, 0) + int(n)
        bits = None
        if d.memory:
            m1, m0 = d.memory[0].split()
            bits = m0 + m1
        return Outcome(num_qubits=3, fidelity=_fidelity(psi, rho), density_matrix=rho, counts=counts,
                       classical_bits=bits, seed=d.seed)  # fmt: skip

    return Plan(job, [Task(qc, "density_matrix", job.noise, job.shots, memory=True)], finish)


def plan_error_correction(job: Job, op: ErrorCorrection) -> Plan:
    coded = qc_lib.repetition_code(op.code, op.error_rate)
    coded.save_density_matrix([0], label="rho")
    bare = qc_lib.bare_qubit(op.code, op.error_rate)
    bare.save_density_matrix([0], label="rho")

    def finish(data: list[Data]) -> Outcome:
        logical = float(np.clip(np.real(np.asarray(data[0].saved["rho"])[1, 1]), 0, 1))
        physical = float(np.clip(np.real(np.asarray(data[1].saved["rho"])[1, 1]), 0, 1))
        probs = _readout(np.array([1 - logical, logical]), 1, job.noise.readout_error)
        return Outcome(num_qubits=3, fidelity=1.0 - logical, logical_error_rate=logical,
                       physical_error_rate=physical, counts=_sample(probs, job.shots, job.seed, 1),
                       seed=job.seed)  # fmt: skip

    tasks = [Task(coded, "density_matrix", job.noise, 1), Task(bare, "density_matrix", job.noise, 1)]
    return Plan(job, tasks, finish)


def plan_circuit(job: Job, op: RunCircuit, limits: Limits) -> Plan:
    qc = qc_lib.parse_qasm(op.source, op.qasm_version, limits)
    noisy = not job.noise.is_noiseless
    n = qc.num_qubits
    if op.return_density_matrix and n > limits.max_density_qubits:
        raise RequestError(
            "LIMIT", f"density matrix of {n} qubits requested: at most {limits.max_density_qubits}"
        )
    if op.return_statevector and n > limits.max_statevector_qubits:
        raise RequestError(
            "LIMIT", f"statevector of {n} qubits requested: at most {limits.max_statevector_qubits}"
        )
    run = qc_lib.for_noise(qc) if noisy else qc
    tasks: list[Task] = []
    slots: dict[str, int] = {}
    if qc_lib.has_measurements(qc):
        slots["counts"] = len(tasks)
        tasks.append(Task(run, "automatic", job.noise, job.shots))
    bare = qc.remove_final_measurements(inplace=False)
    want_fidelity = noisy and n <= limits.max_density_qubits
    if op.return_statevector or want_fidelity:
        ideal = bare.copy()
        ideal.save_statevector(label="psi")
        slots["ideal"] = len(tasks)
        tasks.append(Task(ideal, "statevector", NOISELESS, 1))
    if op.return_density_matrix or want_fidelity:
        dm = (qc_lib.for_noise(bare) if noisy else bare).copy()
        dm.save_density_matrix(label="rho")
        slots["rho"] = len(tasks)
        tasks.append(Task(dm, "density_matrix", job.noise, 1))

    def finish(data: list[Data]) -> Outcome:
        out = Outcome(num_qubits=n, seed=job.seed)
        if "counts" in slots:
            d = data[slots["counts"]]
            out.counts = {k: int(v) for k, v in d.counts.items()}
            out.seed = d.seed
        psi = np.asarray(data[slots["ideal"]].saved["psi"]) if "ideal" in slots else None
        rho = np.asarray(data[slots["rho"]].saved["rho"]) if "rho" in slots else None
        if op.return_statevector and psi is not None:
            out.statevector = psi
        if op.return_density_matrix and rho is not None:
            out.density_matrix = rho
        if psi is not None and rho is not None:
            out.fidelity = _fidelity(psi, rho)
        elif not noisy:
            out.fidelity = 1.0
        return out

    return Plan(job, tasks, finish)


class Simulator:
    """Runs batches of jobs; keeps one AerSimulator per (method, noise) (not shared between processors)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._backends: dict[tuple[str, tuple[Any, ...]], AerSimulator] = {}

    def backend(self, method: str, noise: Noise) -> AerSimulator:
        key = (method, noise.key())
        sim = self._backends.get(key)
        if sim is None:
            sim = self._backends[key] = AerSimulator(method=method, noise_model=noise_model(noise))
        return sim

    def plan(self, job: Job) -> Plan:
        op = job.op
        if isinstance(op, Entangle):
            return plan_entangle(job, op)
        if isinstance(op, Teleport):
            return plan_teleport(job, op)
        if isinstance(op, ErrorCorrection):
            return plan_error_correction(job, op)
        return plan_circuit(job, op, self.limits)

    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """One outcome per job, in order. Bad jobs give an ERROR outcome; nothing raises."""
        started = time.perf_counter()
        outcomes: list[Outcome | None] = [None] * len(jobs)
        plans: list[Plan | None] = [None] * len(jobs)
        for i, job in enumerate(jobs):
            try:
                plans[i] = self.plan(job)
            except RequestError as exc:
                outcomes[i] = failed(exc.code, str(exc))
            except Exception as exc:  # a circuit qiskit cannot build: the request's fault
                outcomes[i] = failed("BAD_QASM", f"{type(exc).__name__}: {exc}")
        groups: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
        for i, plan in enumerate(plans):
            if plan is None:
                continue
            for t, task in enumerate(plan.tasks):
                groups.setdefault((task.method, task.noise.key(), task.shots, task.memory), []).append((i, t))
        data: dict[tuple[int, int], Data | str] = {}
        for members in groups.values():
            data.update(self._run_group(plans, members))
        for i, plan in enumerate(plans):
            if plan is None:
                continue
            got = [data[(i, t)] for t in range(len(plan.tasks))]
            errors = [g for g in got if isinstance(g, str)]
            if errors:
                outcomes[i] = failed("SIMULATION", f"simulation failed: {errors[0]}")
                continue
            try:
                outcomes[i] = plan.finish([g for g in got if isinstance(g, Data)])
            except Exception as exc:
                outcomes[i] = failed("SIMULATION", f"{type(exc).__name__}: {exc}")
        elapsed = int((time.perf_counter() - started) * 1000)
        result: list[Outcome] = []
        for o in outcomes:
            assert o is not None
            o.duration_ms = elapsed
            result.append(o)
        return result

    def _run_group(
        self, plans: Sequence[Plan | None], members: list[tuple[int, int]]
    ) -> dict[tuple[int, int], Data | str]:
        first_plan = plans[members[0][0]]
        assert first_plan is not None
        task0 = first_plan.tasks[members[0][1]]
        circuits = []
        for i, t in members:
            plan = plans[i]
            assert plan is not None
            circuits.append(plan.tasks[t].circuit)
        seed = first_plan.job.seed
        sim = self.backend(task0.method, task0.noise)
        try:
            result = sim.run(circuits, shots=task0.shots, seed_simulator=seed, memory=task0.memory).result()
        except Exception as exc:
            if len(members) == 1:
                return {members[0]: f"{type(exc).__name__}: {exc}"}
            out: dict[tuple[int, int], Data | str] = {}
            for m in members:  # isolate the circuit that breaks the call
                out.update(self._run_group(plans, [m]))
            return out
        got: dict[tuple[int, int], Data | str] = {}
        for k, m in enumerate(members):
            exp = result.results[k]
            if not exp.success:
                got[m] = str(getattr(exp, "status", "failed"))
                continue
            raw = result.data(k)
            counts = dict(result.get_counts(k)) if "counts" in raw else {}
            memory = list(result.get_memory(k)) if task0.memory and "memory" in raw else []
            got[m] = Data(saved=raw, counts=counts, memory=memory, seed=seed + AER_SEED_STRIDE * k)
        return got
