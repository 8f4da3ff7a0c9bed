"""Avro record dicts of the runtime (pure): CspEvent, CspRefusal, CspSnapshot, ChannelMessage, CspCommand;
the ``csp-complete`` header that asks for a CspCompletion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from processors.csp.runtime.model import Deployment, Instance, Status, frozen_params
from processors.csp.runtime.step import Command, Refusal, Step

# A command with this header (value: its command id) gets a CspCompletion record on
# csp.completions, after its events, snapshot and refusal, in the same transaction. The SDK's
# waited-for commands set it; bulk producers need not (it costs one record per command).
COMPLETE_HEADER = "csp-complete"
COMPLETION_SCHEMA = "CspCompletion"


def event_record(
    dep: Deployment, iid: str, step: Step, cmd: Command, partition: int | None, offset: int | None
) -> dict[str, Any]:
    ch = dep.label_channel[step.label]
    return {
        "instance_id": iid,
        "system": dep.system,
        "version": dep.version,
        "seq": step.seq,
        "event": step.event,
        "kind": step.kind,
        "channel": ch,
        "payload": list(dep.payloads[step.label]),
        "offer_id": step.offer_id,
        "command_id": cmd.command_id,
        "state_before": step.state_before,
        "state_after": step.state_after,
        "choice": None
        if step.choice is None
        else {"seed": step.choice[0], "options": step.choice[1], "chosen": step.choice[2]},
        "timestamp": cmd.issued_at,
        "command_partition": partition,
        "command_offset": offset,
    }


def channel_message(dep: Deployment, iid: str, step: Step, ts: int) -> dict[str, Any]:
    return {
        "instance_id": iid,
        "system": dep.system,
        "channel": dep.label_channel[step.label] or "",
        "event": step.event,
        "values": list(dep.payloads[step.label]),
        "seq": step.seq,
        "timestamp": ts,
    }


def refusal_record(
    iid: str, inst: Instance | None, cmd_id: str, refusal: Refusal, ts: int, system: str | None = None
) -> dict[str, Any]:
    return {
        "instance_id": iid,
        "system": inst.system if inst is not None else system,
        "version": inst.version if inst is not None else None,
        "command_id": cmd_id,
        "offer_id": refusal.offer_id,
        "event": refusal.event,
        "reason": refusal.reason,
        "message": refusal.message,
        "acceptable": list(refusal.acceptable),
        "state": refusal.state,
        "timestamp": ts,
    }


def snapshot_record(inst: Instance, partition: int | None, offset: int | None) -> dict[str, Any]:
    return {
        "instance_id": inst.instance_id,
        "system": inst.system,
        "version": inst.version,
        "seq": inst.seq,
        "state": inst.state,
        "status": inst.status.value,
        "trace_length": inst.seq,
        "timestamp": inst.updated_at,
        "command_partition": partition,
        "command_offset": offset,
        "params": dict(inst.params),
    }


def instance_from_snapshot(rec: Mapping[str, Any]) -> Instance:
    return Instance(
        rec["instance_id"],
        rec["system"],
        int(rec["version"]),
        int(rec["state"]),
        int(rec["seq"]),
        Status(rec["status"]),
        int(rec.get("timestamp") or 0),
        frozen_params(rec.get("params")),
    )


def command_record(
    command_id: str,
    instance_id: str,
    kind: str,
    issued_at: int,
    *,
    system: str | None = None,
    version: int | None = None,
    params: Mapping[str, str] | None = None,
    event: str | None = None,
    offer_id: str | None = None,
) -> dict[str, Any]:
    return {
        "command_id": command_id,
        "instance_id": instance_id,
        "kind": kind,
        "system": system,
        "version": version,
        "params": dict(params or {}),
        "event": event,
        "offer_id": offer_id,
        "issued_at": issued_at,
    }
