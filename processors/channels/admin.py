"""Making routes: validating a binding or a link against the registry and writing its CspRoute record."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from processors.channels.check import LinkCheck, check_link
from processors.channels.routes import (
    ROUTE_SCHEMA,
    Link,
    RouteError,
    Routes,
    binding_record,
    link_record,
    parse_bind,
    parse_instance_map,
    undeploy_record,
)
from processors.csp.runtime.model import INPUT, OUTPUT
from processors.csp.runtime.registry import DeploymentStore, publish
from processors.services.api import ServiceBinding, UnknownServiceError, resolve_service
from streams.admin import ensure_topics
from streams.catalog import TopicSpec, UnknownTopicError, spec_for


@dataclass(frozen=True)
class LinkPlan:
    link: Link
    checks: tuple[LinkCheck, ...]

    @property
    def failed(self) -> tuple[LinkCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def refused(self) -> bool:
        return bool(self.failed) and not self.link.forced


def _service_spec(topic: str) -> TopicSpec:
    try:
        return spec_for(topic)
    except (UnknownTopicError, KeyError, ValueError):
        return TopicSpec(topic, 4, "request_id", "bytes", "delete", -1, "service topic", None, False)


def make_binding(
    store: DeploymentStore, system: str, channel: str, service: str, reply: str | None
) -> ServiceBinding:
    """Validate ``system.channel -> service[:reply]`` against the newest version of ``system``."""
    dep = store.lookup(system)
    if dep is None:
        raise RouteError(f"no deployed system {system!r}")
    ch = dep.channels.get(channel)
    if ch is None:
        raise RouteError(f"{system} has no channel {channel!r} (channels: {', '.join(dep.channels)})")
    if ch.role != OUTPUT:
        raise RouteError(f"{system}.{channel} is an input channel: bind an output channel (the requests)")
    if reply is not None:
        rc = dep.channels.get(reply)
        if rc is None or rc.role != INPUT:
            raise RouteError(f"reply channel {reply!r} is not an input channel of {system}")
    try:
        resolve_service(service)
    except UnknownServiceError as exc:
        raise RouteError(str(exc)) from None
    return ServiceBinding(system, channel, service, reply)


def publish_binding(store: DeploymentStore, binding: ServiceBinding, *, removed: bool = False) -> int:
    if not removed:
        adapter = resolve_service(binding.service)
        ensure_topics(
            store.bootstrap, [_service_spec(adapter.request_topic), _service_spec(adapter.result_topic)]
        )
    rec = binding_record(binding, int(time.time() * 1000), removed=removed)
    return _publish(store, rec)


def plan_link(
    store: DeploymentStore,
    src: tuple[str, str],
    dst: tuple[str, str],
    *,
    instance_map: str = "same",
    force: bool = False,
    max_states: int = 1_000_000,
) -> LinkPlan:
    """Check a link against the newest versions of both systems (nothing is written)."""
    store.refresh()
    deps = []
    for system, _channel in (src, dst):
        dep = store.lookup(system)
        if dep is None:
            raise RouteError(f"no deployed system {system!r}")
        deps.append(dep)
    checks = check_link(deps[0], src[1], deps[1], dst[1], max_states)
    link = Link(src[0], src[1], dst[0], dst[1], parse_instance_map(instance_map),
                tuple((c.text, c.status) for c in checks), force)  # fmt: skip
    return LinkPlan(link, tuple(checks))


def publish_link(store: DeploymentStore, link: Link, *, removed: bool = False) -> int:
    return _publish(store, link_record(link, int(time.time() * 1000), removed=removed))


def routes(store: DeploymentStore) -> Routes:
    store.refresh()
    return Routes.fold(store.route_records)


def _publish(store: DeploymentStore, rec: dict[str, object]) -> int:
    off = publish(
        store.bootstrap,
        store.codec,
        store.topics.registry,
        rec,
        schema=ROUTE_SCHEMA,
        key=str(rec["route_id"]),
    )
    store.refresh()
    return off


def unlink(store: DeploymentStore, route_ids: Sequence[str]) -> int:
    """Remove routes by id; returns how many existed."""
    current = routes(store)
    n = 0
    for rid in route_ids:
        if rid in current.links:
            publish_link(store, current.links[rid], removed=True)
            n += 1
        elif rid in current.bindings:
            publish_binding(store, current.bindings[rid], removed=True)
            n += 1
    return n


def undeploy(store: DeploymentStore, system: str) -> list[int]:
    """Remove ``system``: its routes, then an UNDEPLOY record (its versions can no longer be started;
    running instances keep running). Returns the versions it had."""
    store.refresh()
    versions = store.versions(system)
    if not versions:
        raise RouteError(f"no deployed system {system!r}")
    unlink(store, routes(store).of_system(system))
    _publish(store, undeploy_record(system, int(time.time() * 1000)))
    return versions


def check_binds(specs: Sequence[str]) -> list[tuple[str, str, str | None]]:
    """Parse ``CHANNEL=SERVICE[:REPLY_CHANNEL]`` options and resolve their services (before deploying)."""
    out = []
    for text in specs:
        channel, service, reply = parse_bind(text)
        try:
            resolve_service(service)
        except UnknownServiceError as exc:
            raise RouteError(str(exc)) from None
        out.append((channel, service, reply))
    return out


def bind_all(store: DeploymentStore, system: str, specs: Sequence[str]) -> list[ServiceBinding]:
    """Record the deploy-time bindings of ``system`` (its newest version)."""
    store.refresh()
    made = [make_binding(store, system, ch, svc, reply) for ch, svc, reply in check_binds(specs)]
    for b in made:
        publish_binding(store, b)
    return made
