"""The physics of the quantum operations, against numbers computed here with numpy."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from processors.quantum.simulate import Outcome, Simulator
from processors.quantum.spec import Limits, RequestError, parse_request

I2 = np.eye(2, dtype=complex)
X = np.array([[0, 1], [1, 0]], dtype=complex)
Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
Z = np.diag([1, -1]).astype(complex)
H = np.array([[1, 1], [1, -1]], dtype=complex) / math.sqrt(2)
PAULIS = (I2, X, Y, Z)


def req(rid: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"request_id": rid, "circuit": "", "shots": 512, "requested_at": 0}
    base.update(kw)
    return base


def run(*records: dict[str, Any]) -> list[Outcome]:
    limits = Limits()
    return Simulator(limits).run([parse_request(r, limits) for r in records])


def depolarize(rho: np.ndarray, p: float, qubits: int) -> np.ndarray:
    """(1-p) rho + p I/d on all ``qubits`` of rho (d = 2^qubits), as a Pauli twirl."""
    paulis = [_kron(ps) for ps in itertools.product(PAULIS, repeat=qubits)]
    twirl = sum(P @ rho @ P.conj().T for P in paulis) / len(paulis)
    return (1 - p) * rho + p * twirl


def _kron(ms: tuple[np.ndarray, ...] | list[np.ndarray]) -> np.ndarray:
    out = np.eye(1, dtype=complex)
    for m in ms:
        out = np.kron(out, m)
    return out


def fidelity(psi: np.ndarray, rho: np.ndarray) -> float:
    return float(np.real(psi.conj() @ rho @ psi))


def dm(o: Outcome) -> np.ndarray:
    assert o.density_matrix is not None
    return np.asarray(o.density_matrix)


BELL = np.array([1, 0, 0, 1], dtype=complex) / math.sqrt(2)


def test_bell_state_fidelity_is_one() -> None:
    (bell, ghz) = run(req("b1", operation="entangle", agents=["alice", "bob"]),
                      req("g1", operation="entangle", agents=["a", "b", "c"]))  # fmt: skip
    assert bell.status == "OK" and ghz.status == "OK"
    assert np.allclose(dm(bell), np.outer(BELL, BELL.conj()), atol=1e-9)
    assert fidelity(BELL, dm(bell)) == pytest.approx(1.0, abs=1e-9)
    assert bell.fidelity == pytest.approx(1.0, abs=1e-9)
    ghz3 = np.zeros(8, dtype=complex)
    ghz3[0] = ghz3[7] = 1 / math.sqrt(2)
    assert fidelity(ghz3, dm(ghz)) == pytest.approx(1.0, abs=1e-9)
    assert set(bell.counts) <= {"00", "11"} and sum(bell.counts.values()) == 512


def _state(amplitudes: list[float], phases: list[float]) -> np.ndarray:
    return np.array([a * np.exp(1j * p) for a, p in zip(amplitudes, phases, strict=True)])


RNG = np.random.default_rng(20261202)
_A = RNG.uniform(0, 1)
RANDOM = ([math.sqrt(_A), math.sqrt(1 - _A)], [float(RNG.uniform(0, 6.28)), float(RNG.uniform(0, 6.28))])
STATES = {
    "zero": ([1.0, 0.0], [0.0, 0.0]),
    "one": ([0.0, 1.0], [0.0, 0.0]),
    "plus": ([1 / math.sqrt(2), 1 / math.sqrt(2)], [0.0, 0.0]),
    "seed_api": ([0.707, 0.707], [0.0, 1.57]),
    "random": RANDOM,
}


@pytest.mark.parametrize("name", list(STATES))
def test_teleportation_noise_free(name: str) -> None:
    amps, phases = STATES[name]
    (o,) = run(req(f"t-{name}", operation="teleport", agents=["alice", "bob"],
                   state={"amplitudes": amps, "phases": phases}))  # fmt: skip
    assert o.status == "OK", o.error
    psi = _state(amps, phases)
    psi = psi / np.linalg.norm(psi)
    received = dm(o)
    assert received.shape == (2, 2)
    assert fidelity(psi, received) >= 0.999  # independent of the reported number
    assert o.fidelity is not None and o.fidelity >= 0.999
    assert o.classical_bits in {"00", "01", "10", "11"}
    assert sum(o.counts.values()) == 512 and len(o.counts) > 1  # the Bell measurement outcome is random


def _bell_under_depolarizing(p: float) -> np.ndarray:
    """H on q0 (1-qubit depolarizing), CX (2-qubit depolarizing), from |00>; numpy, big-endian q0 q1."""
    rho = np.zeros((4, 4), dtype=complex)
    rho[0, 0] = 1
    h0 = np.kron(H, I2)
    rho = h0 @ rho @ h0.conj().T
    # depolarize qubit 0 only: (1-p) rho + p * (I/2 (x) Tr_0 rho)
    rho = (1 - p) * rho + p * sum(np.kron(P, I2) @ rho @ np.kron(P, I2).conj().T for P in PAULIS) / 4
    cx = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=complex)
    rho = cx @ rho @ cx.conj().T
    return depolarize(rho, p, 2)


@pytest.mark.parametrize("p", [0.01, 0.05, 0.2])
def test_depolarizing_lowers_fidelity_by_the_channel_amount(p: float) -> None:
    clean, noisy = run(req("c", operation="entangle", agents=["a", "b"]),
                       req("n", operation="entangle", agents=["a", "b"], noise={"depolarizing": p}))  # fmt: skip
    expected = fidelity(BELL, _bell_under_depolarizing(p))
    assert expected < 1.0
    assert noisy.fidelity == pytest.approx(expected, abs=1e-9)
    assert clean.fidelity is not None and noisy.fidelity is not None
    assert clean.fidelity - noisy.fidelity == pytest.approx(1.0 - expected, abs=1e-9)
    # a one-qubit circuit under the channel: F(|+>, (1-p)|+><+| + p I/2) = 1 - p/2
    (circ,) = run(req("h", operation="circuit", circuit='OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; h q[0];',
                      noise={"depolarizing": p}))  # fmt: skip
    plus = np.array([1, 1], dtype=complex) / math.sqrt(2)
    assert circ.fidelity == pytest.approx(
        fidelity(plus, depolarize(np.outer(plus, plus.conj()), p, 1)), abs=1e-9
    )


def _majority_failure(p: float) -> float:
    """P(at least 2 of 3 independent flips), by enumeration."""
    total = 0.0
    for flips in itertools.product([0, 1], repeat=3):
        if sum(flips) >= 2:
            total += math.prod(p if f else 1 - p for f in flips)
    return total


@pytest.mark.parametrize("code", ["bit_flip", "phase_flip"])
def test_repetition_code_lowers_the_logical_error_rate(code: str) -> None:
    rates = [0.01, 0.1, 0.25, 0.4, 0.49]
    outs = run(*(req(f"{code}-{p}", operation="error_correction", code=code, error_rate=p) for p in rates))
    for p, o in zip(rates, outs, strict=True):
        assert o.status == "OK", o.error
        assert o.physical_error_rate == pytest.approx(p, abs=1e-9)
        assert o.logical_error_rate == pytest.approx(_majority_failure(p), abs=1e-9)
        assert o.logical_error_rate is not None and o.logical_error_rate < p
    (half,) = run(req("half", operation="error_correction", code=code, error_rate=0.5))
    assert half.logical_error_rate == pytest.approx(0.5, abs=1e-9)


def test_circuits_qasm2_and_qasm3_counts_and_statevector() -> None:
    bell2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\nmeasure q -> c;\n'
    ff3 = ('OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; h q[0]; c[0] = measure q[0];'
           ' if (c[0]) { x q[1]; } c[1] = measure q[1];')  # fmt: skip
    a, b = run(req("q2", operation="circuit", circuit=bell2, return_statevector=True),
               req("q3", operation="circuit", circuit=ff3, qasm_version="3.0"))  # fmt: skip
    assert a.status == "OK" and set(a.counts) == {"00", "11"} and sum(a.counts.values()) == 512
    assert a.statevector is not None and np.allclose(np.abs(a.statevector), np.abs(BELL), atol=1e-9)
    assert b.status == "OK" and set(b.counts) == {"00", "11"}  # feed-forward copies the measured bit


def test_same_request_same_result() -> None:
    r = req("det-1", operation="teleport", agents=["a", "b"], state={"amplitudes": [0.6, 0.8], "phases": [0, 1]},
            noise={"depolarizing": 0.05, "readout_error": 0.02})  # fmt: skip
    x, y = run(r), run(r)
    assert (
        x[0].counts == y[0].counts
        and x[0].fidelity == y[0].fidelity
        and x[0].classical_bits == y[0].classical_bits
    )


@pytest.mark.parametrize(
    ("record", "code", "words"),
    [
        (
            req("e1", operation="circuit", circuit="OPENQASM 2.0; qreg q[2]; hadamard q[0];"),
            "BAD_QASM",
            "malformed",
        ),
        (
            req("e2", operation="circuit", circuit='OPENQASM 2.0; include "qelib1.inc"; qreg q[30]; h q[0];'),
            "LIMIT",
            "too many qubits",
        ),
        (
            req(
                "e3",
                operation="teleport",
                agents=["a", "b"],
                state={"amplitudes": [0.9, 0.9], "phases": [0, 0]},
            ),
            "NOT_NORMALISED",
            "not normalised",
        ),
        (
            req("e4", operation="teleport", agents=["a"], state={"amplitudes": [1, 0]}),
            "UNKNOWN_AGENT",
            "sender",
        ),
        (req("e5", operation="warp"), "BAD_REQUEST", "unknown operation"),
        (req("e6", operation="entangle", agents=["a", "b"], shots=0), "LIMIT", "shots"),
        (
            req("e7", operation="entangle", agents=["a", "b"], noise={"t1_us": 10, "t2_us": 50}),
            "BAD_REQUEST",
            "t2_us",
        ),
    ],
)
def test_bad_input_is_named(record: dict[str, Any], code: str, words: str) -> None:
    try:
        (o,) = run(record)
    except RequestError as exc:
        assert exc.code == code and words in str(exc)
        return
    assert o.status == "ERROR" and o.error_code == code and o.error is not None and words in o.error


SWAP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=complex)
CX01 = np.kron(np.array([[1, 0], [0, 0]]), np.eye(4)) + np.kron(np.array([[0, 0], [0, 1]]), np.kron(X, I2))


def _teleport_numpy(psi: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Teleportation with a resource state ``pair`` (big-endian: sender's half first): the receiver's
    state averaged over the four Bell-measurement outcomes, after the X^m1 Z^m0 corrections."""
    rho = np.kron(np.outer(psi, psi.conj()), pair)
    u = np.kron(H, np.eye(4)) @ CX01
    rho = u @ rho @ u.conj().T
    out = np.zeros((2, 2), dtype=complex)
    for m0, m1 in itertools.product((0, 1), repeat=2):
        proj = np.kron(np.kron(np.diag([1 - m0, m0]), np.diag([1 - m1, m1])), I2)
        branch = (proj @ rho @ proj).reshape(2, 2, 2, 2, 2, 2)
        received = np.einsum("abcabd->cd", branch)  # trace out q0, q1
        fix = np.linalg.matrix_power(Z, m0) @ np.linalg.matrix_power(X, m1)
        out += fix @ received @ fix.conj().T
    return out


@pytest.mark.parametrize("p", [0.0, 0.05, 0.2])
def test_teleport_over_a_noisy_pair(p: float) -> None:
    """The teleport runs over the recorded pair's state; its fidelity is what that resource state gives."""
    amps, phases = RANDOM
    psi = _state(amps, phases)
    pair_be = _bell_under_depolarizing(p)
    limits = Limits()
    job = parse_request(req("tp", operation="teleport", agents=["a", "b"],
                            state={"amplitudes": amps, "phases": phases}), limits)  # fmt: skip
    from dataclasses import replace

    (o,) = Simulator(limits).run([replace(job, pair=SWAP @ pair_be @ SWAP)])  # Aer's qubit order
    expected = _teleport_numpy(psi, pair_be)
    assert np.allclose(dm(o), expected, atol=1e-9)
    assert o.fidelity == pytest.approx(fidelity(psi, expected), abs=1e-9)
    if p > 0:
        assert o.fidelity < 1.0 - p / 10
