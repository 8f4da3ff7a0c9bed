"""The ``quantum`` service binding (:mod:`processors.services.api`): CSP events <-> quantum requests.

Events on the bound channel (values after the channel name):

* ``<ch>.entangle.A.B`` (or more agents): entangle the agents (records a pair);
* ``<ch>.teleport.A.B.S``: teleport the state ``S`` from A to B over a recorded pair. ``S`` is
  ``zero``, ``one``, ``plus``, ``minus`` or a name defined by the option ``state.S`` (JSON
  ``{"amplitudes": [...], "phases": [...]}``);
* ``<ch>.run.C``: run the OpenQASM program in the option ``circuit.C``;
* ``<ch>.correct.bit_flip`` / ``<ch>.correct.phase_flip``: the repetition code under the option
  ``error_rate`` (default 0.1).

Options: ``noise`` (``depolarizing=0.01,readout_error=0.02``), ``shots`` (default 1024).

Every result of a request from a binding is offered back as ``<reply_channel>.<verdict>``:
``ok`` (fidelity at or above the threshold), ``low`` (below it: flagged), ``refused`` (e.g. no
entangled pair) or ``error`` (bad input). A CSP protocol reacts to the verdict, e.g. it
acknowledges a teleport only after ``qres.ok``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from processors.quantum.requests import DEFAULT_SHOTS, parse_noise_option, request_record
from processors.services.api import BoundEvent, ServiceBinding, ServiceReply, reply_command_id, reply_event

NAMED_STATES: Mapping[str, dict[str, list[float]]] = {
    "zero": {"amplitudes": [1.0, 0.0], "phases": [0.0, 0.0]},
    "one": {"amplitudes": [0.0, 1.0], "phases": [0.0, 0.0]},
    "plus": {"amplitudes": [math.sqrt(0.5), math.sqrt(0.5)], "phases": [0.0, 0.0]},
    "minus": {"amplitudes": [math.sqrt(0.5), math.sqrt(0.5)], "phases": [0.0, math.pi]},
}
VERDICTS = ("ok", "low", "refused", "error")


def verdict(result: Mapping[str, Any]) -> str:
    status = result.get("status")
    if status == "REFUSED":
        return "refused"
    if status != "OK":
        return "error"
    return "low" if result.get("below_threshold") else "ok"


@dataclass(frozen=True)
class QuantumAdapter:
    name: str = "quantum"
    request_topic: str = "quantum.requests"
    result_topic: str = "quantum.results"
    request_schema: str = "QuantumRequest"
    result_schema: str = "QuantumResult"

    def request(self, bound: BoundEvent) -> tuple[str, dict[str, Any]]:
        """The request for one bound event. A malformed event still yields a request: the
        processor answers it with an error (so the instance gets ``error``, nothing hangs)."""
        options = bound.binding.options
        rid = bound.request_id
        # the fields after the channel name; a datatype value (entangle.alice.bob) is one value
        # but several fields, so split the values themselves
        values = [part for v in bound.values for part in v.split(".")]
        kind = values[0] if values else ""
        common: dict[str, Any] = {
            "request_id": rid,
            "instance_id": bound.instance_id,
            "shots": _shots(options),
        }
        try:
            common["noise"] = parse_noise_option(options.get("noise"))
        except ValueError:
            common["noise"] = None
        if kind == "entangle":
            record = request_record("entangle", agents=values[1:], **common)
        elif kind == "teleport" and len(values) == 4:
            state = _state(values[3], options)
            record = request_record("teleport", agents=values[1:3], state=state, **common)
        elif kind == "run" and len(values) == 2:
            source = options.get(f"circuit.{values[1]}", "")
            version = "3.0" if "OPENQASM 3" in source else "2.0"
            record = request_record("circuit", circuit=source, qasm_version=version, **common)
        elif kind == "correct" and len(values) == 2:
            rate = float(options.get("error_rate", "0.1"))
            record = request_record("error_correction", code=values[1], error_rate=rate, **common)
        else:  # the processor names what is wrong
            record = request_record(f"unknown:{bound.event}", **common)
        return rid, record

    def reply(self, binding: ServiceBinding, result: Mapping[str, Any]) -> ServiceReply | None:
        instance = result.get("instance_id")
        if not instance or binding.reply_channel is None:
            return None
        rid = str(result["request_id"])
        return ServiceReply(
            instance_id=str(instance),
            event=reply_event(binding.reply_channel, (verdict(result),)),
            command_id=reply_command_id(rid),
        )


def _shots(options: Mapping[str, str]) -> int:
    try:
        return max(1, int(options.get("shots", DEFAULT_SHOTS)))
    except ValueError:
        return DEFAULT_SHOTS


def _state(name: str, options: Mapping[str, str]) -> dict[str, list[float]] | None:
    if name in NAMED_STATES:
        return NAMED_STATES[name]
    raw = options.get(f"state.{name}")
    if raw is None:
        return None  # the processor answers "teleport needs a state"
    try:
        parsed = json.loads(raw)
        return {"amplitudes": [float(a) for a in parsed["amplitudes"]],
                "phases": [float(p) for p in parsed.get("phases", [0, 0])]}  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return {"amplitudes": [], "phases": []}  # the processor names the bad state


ADAPTER = QuantumAdapter()
