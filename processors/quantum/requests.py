"""Build ``QuantumRequest`` records (pure; used by the SDK, the CLI and the CSP binding)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_SHOTS = 1024


def new_request_id(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def request_record(
    operation: str,
    *,
    request_id: str | None = None,
    agents: Sequence[str] = (),
    state: Mapping[str, Sequence[float]] | None = None,
    circuit: str = "",
    qasm_version: str = "2.0",
    shots: int = DEFAULT_SHOTS,
    noise: Mapping[str, float | None] | None = None,
    code: str | None = None,
    error_rate: float | None = None,
    seed: int | None = None,
    return_statevector: bool = False,
    return_density_matrix: bool = False,
    instance_id: str | None = None,
    command_id: str | None = None,
    requested_at: int = 0,
) -> dict[str, Any]:
    full_noise = None
    if noise:
        full_noise = {
            k: noise.get(k) for k in ("depolarizing", "t1_us", "t2_us", "gate_time_ns", "readout_error")
        }
    return {
        "request_id": request_id or new_request_id(operation[:4]),
        "instance_id": instance_id,
        "command_id": command_id,
        "circuit": circuit,
        "qasm_version": qasm_version,
        "shots": shots,
        "seed": seed,
        "backend": "aer",
        "params": {},
        "requested_at": requested_at,
        "operation": operation,
        "agents": list(agents),
        "state": None
        if state is None
        else {
            "amplitudes": [float(a) for a in state.get("amplitudes", ())],
            "phases": [float(p) for p in state.get("phases", ())],
        },
        "noise": full_noise,
        "code": code,
        "error_rate": error_rate,
        "return_statevector": return_statevector,
        "return_density_matrix": return_density_matrix,
    }


def parse_noise_option(text: str | None) -> dict[str, float] | None:
    """``"depolarizing=0.01,t1_us=50,t2_us=70,readout_error=0.02"`` -> a noise mapping (CLI)."""
    if not text:
        return None
    allowed = {"depolarizing", "t1_us", "t2_us", "gate_time_ns", "readout_error"}
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or name not in allowed:
            raise ValueError(
                f"bad noise item {part!r}: use NAME=VALUE with NAME in {', '.join(sorted(allowed))}"
            )
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"bad noise value {value!r} for {name}: not a number") from None
    return out


def parse_state_option(text: str) -> dict[str, list[float]]:
    """``'{"amplitudes": [0.707, 0.707], "phases": [0, 1.57]}'``, ``0``, ``1``, ``+`` or ``-`` -> a state."""
    import json
    import math

    named = {
        "0": ([1.0, 0.0], [0.0, 0.0]),
        "1": ([0.0, 1.0], [0.0, 0.0]),
        "+": ([math.sqrt(0.5), math.sqrt(0.5)], [0.0, 0.0]),
        "-": ([math.sqrt(0.5), math.sqrt(0.5)], [0.0, math.pi]),
    }
    if text.strip() in named:
        a, p = named[text.strip()]
        return {"amplitudes": a, "phases": p}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f'--state: not JSON ({exc}); e.g. \'{{"amplitudes": [0.707, 0.707], "phases": [0, 1.57]}}\''
        ) from None
    if not isinstance(raw, dict) or "amplitudes" not in raw:
        raise ValueError("--state: expected an object with amplitudes (and phases)")
    return {
        "amplitudes": [float(x) for x in raw["amplitudes"]],
        "phases": [float(x) for x in raw.get("phases", [0, 0])],
    }
