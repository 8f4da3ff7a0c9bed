"""Channel routes: links between deployed systems and bindings of channels to services.

A route is a ``CspRoute`` record on ``csp.registry`` (key: ``route_id``); the newest record
of a route id wins and ``removed`` deletes it. This module is pure: records <-> routes.

* LINK ``SRC.out -> DST.in``: every event SRC's instances perform on ``out`` becomes an offer
  of ``in.<values>`` to the linked DST instance (``instance_map``: ``same`` instance id, or the
  N-th value of the message, 1-based). Command id ``ln:<route_id>:<instance>:<seq>``.
* BINDING ``SYS.chan -> service``: see :mod:`processors.services.api`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from processors.services.api import ServiceBinding

ROUTE_SCHEMA = "CspRoute"
LINK = "LINK"
BINDING = "BINDING"
UNDEPLOY = "UNDEPLOY"


class RouteError(ValueError):
    """A route that cannot be made as asked (bad endpoint, instance map, ...)."""


@dataclass(frozen=True)
class Link:
    src_system: str
    src_channel: str
    dst_system: str
    dst_channel: str
    instance_map: str = "same"
    checks: tuple[tuple[str, str], ...] = ()
    forced: bool = False

    @property
    def route_id(self) -> str:
        return link_id(self.src_system, self.src_channel, self.dst_system, self.dst_channel)

    def destination(self, instance_id: str, values: tuple[str, ...] | list[str]) -> str | None:
        """The destination instance of a message (None: the message has no such value)."""
        if self.instance_map == "same":
            return instance_id
        index = int(self.instance_map)
        return values[index - 1] if 0 < index <= len(values) else None

    def command_id(self, instance_id: str, seq: int) -> str:
        return f"ln:{self.route_id}:{instance_id}:{seq}"


def link_id(src_system: str, src_channel: str, dst_system: str, dst_channel: str) -> str:
    return f"link:{src_system}.{src_channel}->{dst_system}.{dst_channel}"


def binding_id(system: str, channel: str) -> str:
    return f"bind:{system}.{channel}"


def parse_endpoint(text: str) -> tuple[str, str]:
    """``SYSTEM.channel`` -> (system, channel)."""
    system, dot, channel = text.partition(".")
    if not dot or not system or not channel or "." in channel:
        raise RouteError(f"{text!r}: expected SYSTEM.channel")
    return system, channel


def parse_instance_map(text: str) -> str:
    if text == "same":
        return text
    if text.isdigit() and int(text) >= 1:
        return str(int(text))
    raise RouteError(f"--instance-map {text!r}: expected 'same' or a 1-based value index (1, 2, ...)")


def parse_bind(text: str) -> tuple[str, str, str | None]:
    """``CHANNEL=SERVICE[:REPLY_CHANNEL]`` -> (channel, service, reply channel).

    A ``module:ATTR`` service keeps its colon: the reply channel is after a second colon
    (``tests.echo:ADAPTER:reply``) or after the first one for a built-in name (``quantum:qres``).
    """
    channel, eq, rest = text.partition("=")
    if not eq or not channel or not rest:
        raise RouteError(f"--bind {text!r}: expected CHANNEL=SERVICE[:REPLY_CHANNEL]")
    parts = rest.split(":")
    if len(parts) == 1:
        return channel, parts[0], None
    if len(parts) == 2:
        from processors.services.api import BUILTIN_SERVICES

        if parts[0] in BUILTIN_SERVICES:
            return channel, parts[0], parts[1] or None
        return channel, rest, None
    if len(parts) == 3:
        return channel, f"{parts[0]}:{parts[1]}", parts[2] or None
    raise RouteError(f"--bind {text!r}: expected CHANNEL=SERVICE[:REPLY_CHANNEL]")


def link_record(link: Link, created_at: int, *, removed: bool = False) -> dict[str, Any]:
    return {
        "route_id": link.route_id,
        "kind": LINK,
        "src_system": link.src_system,
        "src_channel": link.src_channel,
        "dst_system": link.dst_system,
        "dst_channel": link.dst_channel,
        "instance_map": link.instance_map,
        "service": None,
        "reply_channel": None,
        "options": {},
        "checks": [{"text": t, "status": s} for t, s in link.checks],
        "forced": link.forced,
        "removed": removed,
        "created_at": created_at,
    }


def binding_record(b: ServiceBinding, created_at: int, *, removed: bool = False) -> dict[str, Any]:
    return {
        "route_id": binding_id(b.system, b.channel),
        "kind": BINDING,
        "src_system": b.system,
        "src_channel": b.channel,
        "dst_system": None,
        "dst_channel": None,
        "instance_map": None,
        "service": b.service,
        "reply_channel": b.reply_channel,
        "options": dict(b.options),
        "checks": [],
        "forced": False,
        "removed": removed,
        "created_at": created_at,
    }


def undeploy_record(system: str, created_at: int) -> dict[str, Any]:
    return {
        "route_id": f"undeploy:{system}", "kind": UNDEPLOY, "src_system": system, "src_channel": "",
        "dst_system": None, "dst_channel": None, "instance_map": None, "service": None, "reply_channel": None,
        "options": {}, "checks": [], "forced": False, "removed": False, "created_at": created_at,
    }  # fmt: skip


@dataclass
class Routes:
    """The current routes, folded from CspRoute records in log order."""

    links: dict[str, Link] = field(default_factory=dict)
    bindings: dict[str, ServiceBinding] = field(default_factory=dict)

    def apply(self, rec: Mapping[str, Any]) -> None:
        rid = rec["route_id"]
        if rec["kind"] == UNDEPLOY:
            return  # the deployment store hides the system's versions
        if rec["kind"] == LINK:
            if rec.get("removed"):
                self.links.pop(rid, None)
                return
            self.links[rid] = Link(
                rec["src_system"], rec["src_channel"], rec["dst_system"] or "", rec["dst_channel"] or "",
                rec.get("instance_map") or "same",
                tuple((c["text"], c["status"]) for c in rec.get("checks") or ()), bool(rec.get("forced")),
            )  # fmt: skip
        else:
            if rec.get("removed"):
                self.bindings.pop(rid, None)
                return
            self.bindings[rid] = ServiceBinding(
                rec["src_system"], rec["src_channel"], rec["service"] or "", rec.get("reply_channel"),
                dict(rec.get("options") or {}),
            )  # fmt: skip

    @classmethod
    def fold(cls, records: Iterable[Mapping[str, Any]]) -> Routes:
        r = cls()
        for rec in records:
            r.apply(rec)
        return r

    def links_from(self, system: str, channel: str) -> list[Link]:
        return [lk for lk in self.links.values() if lk.src_system == system and lk.src_channel == channel]

    def binding_of(self, system: str, channel: str) -> ServiceBinding | None:
        return self.bindings.get(binding_id(system, channel))

    def of_system(self, system: str) -> list[str]:
        """Route ids touching ``system`` (for undeploy)."""
        out = [rid for rid, b in self.bindings.items() if b.system == system]
        out += [rid for rid, lk in self.links.items() if system in (lk.src_system, lk.dst_system)]
        return sorted(out)
