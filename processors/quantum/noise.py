"""Aer noise models from a :class:`~processors.quantum.spec.Noise` spec.

Depolarizing (parameter p on every 1- and 2-qubit gate: rho -> (1-p) rho + p I/d),
thermal relaxation (T1, T2 over the gate time; 2-qubit gates: both qubits relax) and a
symmetric readout error. Gates with 3 or more qubits carry no noise (circuits are
transpiled to u + cx when noise is on).
"""

from __future__ import annotations

from qiskit_aer.noise import (
    NoiseModel,
    QuantumError,
    ReadoutError,
    depolarizing_error,
    thermal_relaxation_error,
)

from processors.quantum.spec import Noise

ONE_QUBIT_GATES = [
    "u",
    "u1",
    "u2",
    "u3",
    "p",
    "h",
    "x",
    "y",
    "z",
    "s",
    "sdg",
    "t",
    "tdg",
    "sx",
    "sxdg",
    "rx",
    "ry",
    "rz",
    "id",
]
TWO_QUBIT_GATES = [
    "cx",
    "cy",
    "cz",
    "ch",
    "swap",
    "cp",
    "crx",
    "cry",
    "crz",
    "ecr",
    "rxx",
    "ryy",
    "rzz",
    "iswap",
]
GATE_TIME_1Q_NS = 50.0
GATE_TIME_2Q_NS = 300.0


def _compose(a: QuantumError | None, b: QuantumError) -> QuantumError:
    return b if a is None else a.compose(b)


def noise_model(noise: Noise) -> NoiseModel | None:
    """The Aer noise model of ``noise`` (``None`` when noiseless)."""
    if noise.is_noiseless:
        return None
    model = NoiseModel()
    e1: QuantumError | None = None
    e2: QuantumError | None = None
    if noise.depolarizing > 0:
        e1 = depolarizing_error(noise.depolarizing, 1)
        e2 = depolarizing_error(noise.depolarizing, 2)
    if noise.t1_us is not None and noise.t2_us is not None:
        t1, t2 = noise.t1_us * 1000.0, noise.t2_us * 1000.0
        g1 = noise.gate_time_ns or GATE_TIME_1Q_NS
        g2 = noise.gate_time_ns or GATE_TIME_2Q_NS
        e1 = _compose(e1, thermal_relaxation_error(t1, t2, g1))
        r2 = thermal_relaxation_error(t1, t2, g2)
        e2 = _compose(e2, r2.expand(r2))
    if e1 is not None:
        model.add_all_qubit_quantum_error(e1, ONE_QUBIT_GATES)
    if e2 is not None:
        model.add_all_qubit_quantum_error(e2, TWO_QUBIT_GATES)
    if noise.readout_error > 0:
        p = noise.readout_error
        model.add_all_qubit_readout_error(ReadoutError([[1 - p, p], [p, 1 - p]]))
    return model
