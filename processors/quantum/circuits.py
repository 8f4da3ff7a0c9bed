"""The circuits of the quantum operations, and OpenQASM parsing with limits. Pure (no simulation)."""

from __future__ import annotations

import re

import numpy as np
import qiskit_aer  # noqa: F401 - registers set_density_matrix / save_* on QuantumCircuit
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qasm2, qasm3, transpile
from qiskit.quantum_info import DensityMatrix, Kraus

from processors.quantum.spec import Limits, RequestError

NOISY_BASIS = ["u", "cx", "measure", "reset"]
_QASM3 = re.compile(r"^\s*OPENQASM\s+3", re.MULTILINE)


def ghz(n: int) -> QuantumCircuit:
    """|0..0> + |1..1> (a Bell pair for n = 2): H on qubit 0, then a CX chain."""
    qc = QuantumCircuit(n, name=f"ghz{n}")
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    return qc


def ghz_vector(n: int) -> np.ndarray:
    v = np.zeros(2**n, dtype=complex)
    v[0] = v[-1] = 1 / np.sqrt(2)
    return v


def bell_density() -> np.ndarray:
    v = ghz_vector(2)
    return np.outer(v, v.conj())


def teleport(theta: float, phi: float, pair: np.ndarray | None = None) -> QuantumCircuit:
    """Teleport u(theta, phi, 0)|0> from qubit 0 (sender) to qubit 2 (receiver) over the pair (1, 2).

    The pair is the recorded pair's density matrix (the state its ``entangle`` produced, noise
    included; an ideal Bell pair if ``None``), loaded with ``set_density_matrix``. The sender's
    Bell measurement is a mid-circuit measurement into m0, m1; the receiver's corrections are
    classical feed-forward (``if_test``): X if m1, then Z if m0.
    """
    q = QuantumRegister(3, "q")
    m0 = ClassicalRegister(1, "m0")
    m1 = ClassicalRegister(1, "m1")
    qc = QuantumCircuit(q, m0, m1, name="teleport")
    rho_pair = bell_density() if pair is None else np.asarray(pair, dtype=complex)
    # Aer orders qubits little-endian: the pair's (bit1, bit0) = (q2, q1), then q0 = |0>
    qc.set_density_matrix(DensityMatrix(np.kron(rho_pair, np.diag([1.0, 0.0]))))
    qc.u(theta, phi, 0, q[0])  # the state to send
    qc.cx(q[0], q[1])  # Bell measurement of (q0, q1)
    qc.h(q[0])
    qc.measure(q[0], m0[0])
    qc.measure(q[1], m1[0])
    with qc.if_test((m1, 1)):
        qc.x(q[2])
    with qc.if_test((m0, 1)):
        qc.z(q[2])
    return qc


def state_vector(theta: float, phi: float) -> np.ndarray:
    return np.array([np.cos(theta / 2), np.exp(1j * phi) * np.sin(theta / 2)])


def _flip(kind: str, p: float) -> Kraus:
    pauli = np.array([[0, 1], [1, 0]], dtype=complex) if kind == "X" else np.diag([1, -1]).astype(complex)
    return Kraus([np.sqrt(1 - p) * np.eye(2), np.sqrt(p) * pauli])


def repetition_code(code: str, p: float) -> QuantumCircuit:
    """|0>_L of the 3-qubit bit-flip (or phase-flip) code, an independent X (Z) error with probability p
    on each qubit, decoding and majority correction; the logical bit ends on qubit 0."""
    qc = QuantumCircuit(3, name=code)
    qc.cx(0, 1)
    qc.cx(0, 2)
    kind = "X" if code == "bit_flip" else "Z"
    if kind == "Z":
        qc.h([0, 1, 2])
    for q in range(3):
        qc.append(_flip(kind, p), [q])
    if kind == "Z":
        qc.h([0, 1, 2])
    qc.cx(0, 1)
    qc.cx(0, 2)
    qc.ccx(2, 1, 0)  # flip the data qubit when both syndromes fire
    return qc


def bare_qubit(code: str, p: float) -> QuantumCircuit:
    """The unprotected qubit under the same error: its error rate is the physical rate."""
    qc = QuantumCircuit(1, name=f"bare_{code}")
    kind = "X" if code == "bit_flip" else "Z"
    if kind == "Z":
        qc.h(0)
    qc.append(_flip(kind, p), [0])
    if kind == "Z":
        qc.h(0)
    return qc


def parse_qasm(source: str, version: str, limits: Limits) -> QuantumCircuit:
    """An OpenQASM 2 or 3 program (the header decides; else ``version``) within the limits."""
    v3 = bool(_QASM3.search(source)) or (version.startswith("3") and "OPENQASM 2" not in source)
    try:
        if v3:
            qc = qasm3.loads(source)
        else:
            qc = qasm2.loads(source, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    except Exception as exc:
        lang = "OpenQASM 3" if v3 else "OpenQASM 2"
        raise RequestError(
            "BAD_QASM", f"malformed {lang}: {str(exc).strip() or type(exc).__name__}"
        ) from None
    if qc.num_qubits == 0:
        raise RequestError("BAD_QASM", "the program declares no qubits")
    if qc.num_qubits > limits.max_qubits:
        raise RequestError("LIMIT", f"too many qubits: {qc.num_qubits} > {limits.max_qubits}")
    if qc.parameters:
        names = ", ".join(sorted(p.name for p in qc.parameters))
        raise RequestError("BAD_QASM", f"unbound circuit parameters: {names}")
    depth = qc.depth()
    if depth > limits.max_depth:
        raise RequestError("LIMIT", f"circuit too deep: depth {depth} > {limits.max_depth}")
    return qc


def for_noise(qc: QuantumCircuit) -> QuantumCircuit:
    """``qc`` in the gates the noise models cover (u, cx)."""
    return transpile(qc, basis_gates=NOISY_BASIS, optimization_level=0)


def has_measurements(qc: QuantumCircuit) -> bool:
    return any(inst.operation.name == "measure" for inst in qc.data) or any(
        inst.operation.name in ("if_else", "while_loop", "for_loop", "switch_case") for inst in qc.data
    )
