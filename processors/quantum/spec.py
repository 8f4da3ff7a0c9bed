"""Validated quantum operations: a ``QuantumRequest`` record -> a typed operation, or a :class:`RequestError`.

Pure: no I/O, no simulation. Every error names what is wrong and carries a code that
goes into the result record (``error_code``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OPERATIONS = ("circuit", "entangle", "teleport", "error_correction")
CODES = ("bit_flip", "phase_flip")
NORM_TOLERANCE = 1e-2  # the seed API's 0.707 is accepted as 1/sqrt(2)


class RequestError(ValueError):
    """A request that cannot be executed; ``code`` goes into the result's ``error_code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Limits:
    max_qubits: int = 20
    max_depth: int = 2000
    max_shots: int = 100_000
    max_density_qubits: int = 10  # returned density matrices and GHZ states (4^n numbers)
    max_statevector_qubits: int = 16  # returned statevectors (2^n numbers)


@dataclass(frozen=True)
class Noise:
    depolarizing: float = 0.0
    t1_us: float | None = None
    t2_us: float | None = None
    gate_time_ns: float | None = None
    readout_error: float = 0.0

    @property
    def is_noiseless(self) -> bool:
        return self.depolarizing == 0.0 and self.t1_us is None and self.readout_error == 0.0

    def key(self) -> tuple[float, float | None, float | None, float | None, float]:
        return (self.depolarizing, self.t1_us, self.t2_us, self.gate_time_ns, self.readout_error)


NOISELESS = Noise()


@dataclass(frozen=True)
class Entangle:
    agents: tuple[str, ...]


@dataclass(frozen=True)
class Teleport:
    sender: str
    receiver: str
    theta: float  # |psi> = cos(theta/2)|0> + e^{i phi} sin(theta/2)|1> (up to a global phase)
    phi: float
    amplitudes: tuple[complex, complex]


@dataclass(frozen=True)
class RunCircuit:
    source: str
    qasm_version: str
    return_statevector: bool
    return_density_matrix: bool


@dataclass(frozen=True)
class ErrorCorrection:
    code: str
    error_rate: float


Operation = Entangle | Teleport | RunCircuit | ErrorCorrection


@dataclass(frozen=True)
class Job:
    """One validated request."""

    request_id: str
    op: Operation
    noise: Noise
    shots: int
    seed: int
    instance_id: str | None
    requested_at: int
    # teleport: the 4x4 density matrix of the recorded pair it uses (None: an ideal Bell pair)
    pair: Any = None

    @property
    def operation(self) -> str:
        return {
            Entangle: "entangle",
            Teleport: "teleport",
            RunCircuit: "circuit",
            ErrorCorrection: "error_correction",
        }[type(self.op)]


def seed_for(request_id: str) -> int:
    """The simulator seed of a request: a stable hash of its id (31 bits)."""
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:4], "big") & 0x7FFF_FFFF


def _probability(name: str, value: Any) -> float:
    if value is None:
        return 0.0
    p = float(value)
    if not (0.0 <= p <= 1.0) or math.isnan(p):
        raise RequestError("BAD_REQUEST", f"{name} must be a probability in [0, 1], got {value}")
    return p


def parse_noise(raw: Mapping[str, Any] | None) -> Noise:
    if not raw:
        return NOISELESS
    dep = _probability("noise.depolarizing", raw.get("depolarizing"))
    ro = _probability("noise.readout_error", raw.get("readout_error"))
    t1, t2, gt = raw.get("t1_us"), raw.get("t2_us"), raw.get("gate_time_ns")
    if (t1 is None) != (t2 is None):
        raise RequestError("BAD_REQUEST", "noise: thermal relaxation needs both t1_us and t2_us")
    if t1 is not None and t2 is not None:
        if not (t1 > 0 and t2 > 0):
            raise RequestError("BAD_REQUEST", f"noise: t1_us and t2_us must be > 0, got {t1}, {t2}")
        if t2 > 2 * t1:
            raise RequestError("BAD_REQUEST", f"noise: t2_us ({t2}) must be <= 2 * t1_us ({2 * t1})")
    if gt is not None and not gt > 0:
        raise RequestError("BAD_REQUEST", f"noise: gate_time_ns must be > 0, got {gt}")
    return Noise(dep, None if t1 is None else float(t1), None if t2 is None else float(t2),
                 None if gt is None else float(gt), ro)  # fmt: skip


def check_agent(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise RequestError("UNKNOWN_AGENT", f"agent names must be non-empty strings, got {name!r}")
    return name


def parse_state(raw: Mapping[str, Any] | None) -> tuple[float, float, tuple[complex, complex]]:
    """``{"amplitudes": [a0, a1], "phases": [p0, p1]}`` -> (theta, phi, normalised amplitudes)."""
    if raw is None:
        raise RequestError("BAD_REQUEST", "teleport needs a state: {amplitudes: [a0, a1], phases: [p0, p1]}")
    amps = list(raw.get("amplitudes") or [])
    phases = list(raw.get("phases") or [0.0] * len(amps))
    if len(amps) != 2:
        raise RequestError(
            "BAD_REQUEST", f"state.amplitudes must hold 2 numbers (one qubit), got {len(amps)}"
        )
    if len(phases) != 2:
        raise RequestError("BAD_REQUEST", f"state.phases must hold 2 numbers, got {len(phases)}")
    if any(a < 0 or math.isnan(a) for a in amps) or any(math.isnan(p) or math.isinf(p) for p in phases):
        raise RequestError("BAD_REQUEST", "state.amplitudes must be >= 0 (moduli) and phases finite")
    norm = amps[0] ** 2 + amps[1] ** 2
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise RequestError(
            "NOT_NORMALISED",
            f"state is not normalised: |a0|^2 + |a1|^2 = {norm:.6f} (must be 1 within {NORM_TOLERANCE})",
        )
    a0, a1 = amps[0] / math.sqrt(norm), amps[1] / math.sqrt(norm)
    theta = 2 * math.atan2(a1, a0)
    phi = phases[1] - phases[0]
    c0 = complex(a0 * math.cos(phases[0]), a0 * math.sin(phases[0]))
    c1 = complex(a1 * math.cos(phases[1]), a1 * math.sin(phases[1]))
    return theta, phi, (c0, c1)


def _agents(raw: Sequence[Any]) -> tuple[str, ...]:
    return tuple(check_agent(a) for a in raw)


def parse_request(value: Mapping[str, Any], limits: Limits) -> Job:
    """A decoded ``QuantumRequest`` -> a :class:`Job` (raises :class:`RequestError`)."""
    rid = value["request_id"]
    if not rid:
        raise RequestError("BAD_REQUEST", "request_id is empty")
    operation = value.get("operation") or "circuit"
    shots = int(value.get("shots") or 0)
    if operation not in OPERATIONS:
        raise RequestError(
            "BAD_REQUEST", f"unknown operation {operation!r}: use one of {', '.join(OPERATIONS)}"
        )
    if not 1 <= shots <= limits.max_shots:
        raise RequestError("LIMIT", f"shots must be in 1..{limits.max_shots}, got {shots}")
    noise = parse_noise(value.get("noise"))
    agents = _agents(value.get("agents") or ())
    op: Operation
    if operation == "entangle":
        if len(agents) < 2:
            raise RequestError("UNKNOWN_AGENT", f"entangle needs at least 2 agents, got {list(agents)}")
        if len(set(agents)) != len(agents):
            raise RequestError("BAD_REQUEST", f"entangle: agents must be distinct, got {list(agents)}")
        if len(agents) > limits.max_density_qubits:
            raise RequestError(
                "LIMIT", f"entangle: at most {limits.max_density_qubits} agents, got {len(agents)}"
            )
        op = Entangle(agents)
    elif operation == "teleport":
        if len(agents) != 2:
            raise RequestError("UNKNOWN_AGENT", f"teleport needs [sender, receiver], got {list(agents)}")
        if agents[0] == agents[1]:
            raise RequestError("BAD_REQUEST", f"teleport: sender and receiver are both {agents[0]!r}")
        theta, phi, amps = parse_state(value.get("state"))
        op = Teleport(agents[0], agents[1], theta, phi, amps)
    elif operation == "circuit":
        source = value.get("circuit") or ""
        if not source.strip():
            raise RequestError("BAD_QASM", "circuit is empty: give an OpenQASM 2 or 3 program")
        version = str(value.get("qasm_version") or "2.0")
        if version.split(".")[0] not in ("2", "3"):
            raise RequestError("BAD_QASM", f"qasm_version must be 2.x or 3.x, got {version!r}")
        op = RunCircuit(source, version, bool(value.get("return_statevector")),
                        bool(value.get("return_density_matrix")))  # fmt: skip
    else:
        code = value.get("code") or "bit_flip"
        if code not in CODES:
            raise RequestError("BAD_REQUEST", f"unknown code {code!r}: use one of {', '.join(CODES)}")
        rate = value.get("error_rate")
        if rate is None:
            raise RequestError("BAD_REQUEST", "error_correction needs error_rate (a probability)")
        op = ErrorCorrection(code, _probability("error_rate", rate))
    seed = value.get("seed")
    return Job(
        request_id=rid,
        op=op,
        noise=noise,
        shots=shots,
        seed=int(seed) & 0x7FFF_FFFF if seed is not None else seed_for(rid),
        instance_id=value.get("instance_id"),
        requested_at=int(value.get("requested_at") or 0),
    )
