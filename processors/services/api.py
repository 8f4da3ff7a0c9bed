"""The service-binding contract: how a CSP channel is bound to a platform service.

A deployed system may bind one of its channels to a service (``quantum``, ``ledger``,
``agents``, or ``module:ATTR`` for a service defined elsewhere, such as the echo
service of the tests).  The binding runtime then:

1. turns every event the instance performs on the bound channel into one request record
   on the service's request topic, with ``request_id = "<instance_id>:<seq>"`` so that a
   retried or replayed event yields the same request (services are idempotent on it);
2. turns every result record of the service whose request came from a binding into an
   offer of ``<reply_channel>.<values>`` to that instance, with command id
   ``"svc:<request_id>"`` (the runtime is idempotent on command ids).

A service implements :class:`ServiceAdapter`; it never talks to the runtime directly.
This module is pure: no I/O.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# Built-in services, resolved lazily so that a service's dependencies (qiskit, web3,
# openai) load only when a binding uses it.
BUILTIN_SERVICES: Mapping[str, str] = {
    "quantum": "processors.quantum.binding:ADAPTER",
    "ledger": "processors.ledger.binding:ADAPTER",
    "agents": "processors.agents.binding:ADAPTER",
}


class UnknownServiceError(LookupError):
    """A binding names a service that is neither built in nor importable."""


@dataclass(frozen=True)
class ServiceBinding:
    """``<system>.<channel>`` bound to ``service``; results come back on ``reply_channel``."""

    system: str
    channel: str
    service: str
    reply_channel: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BoundEvent:
    """One event an instance performed on a bound channel."""

    binding: ServiceBinding
    instance_id: str
    seq: int
    event: str  # the whole event, e.g. "qreq.alice.bob"
    values: tuple[str, ...]  # the values after the channel name, as strings

    @property
    def request_id(self) -> str:
        return request_id_for(self.instance_id, self.seq)


@dataclass(frozen=True)
class ServiceReply:
    """An offer to make to the instance that issued the request."""

    instance_id: str
    event: str  # the whole event to offer, e.g. "qres.ok"
    command_id: str


def request_id_for(instance_id: str, seq: int) -> str:
    return f"{instance_id}:{seq}"


def reply_command_id(request_id: str) -> str:
    return f"svc:{request_id}"


def reply_event(reply_channel: str, values: tuple[str, ...] | list[str]) -> str:
    return ".".join([reply_channel, *values])


@runtime_checkable
class ServiceAdapter(Protocol):
    """What a service provides to the binding runtime."""

    name: str
    request_topic: str
    result_topic: str
    request_schema: str  # Avro record name of request_topic's values
    result_schema: str  # Avro record name of result_topic's values

    def request(self, bound: BoundEvent) -> tuple[str, dict[str, Any]]:
        """The (key, record) to produce on ``request_topic`` for this event."""
        ...

    def reply(self, binding: ServiceBinding, result: Mapping[str, Any]) -> ServiceReply | None:
        """The offer to make for a result record (``None``: nothing to offer)."""
        ...


def resolve_service(name: str) -> ServiceAdapter:
    """The adapter of a built-in service name, or of a ``module:ATTR`` path."""
    path = BUILTIN_SERVICES.get(name, name)
    if ":" not in path:
        raise UnknownServiceError(
            f"unknown service {name!r}: use one of {sorted(BUILTIN_SERVICES)} or module:ATTR"
        )
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UnknownServiceError(f"service {name!r}: cannot import {module_name}: {exc}") from exc
    adapter = getattr(module, attr, None)
    if not isinstance(adapter, ServiceAdapter):
        raise UnknownServiceError(f"service {name!r}: {path} is not a ServiceAdapter")
    return adapter
