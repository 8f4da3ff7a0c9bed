"""The local stack: SeaweedFS (durable S3 store) + Tansu (Kafka) + the catalog topics.

``start_stack`` / ``stop_stack`` / ``stack_status`` back ``csp up`` / ``down`` /
``status``. With ``CSP_KAFKA_BOOTSTRAP`` set nothing is started: the external
Kafka only gets the catalog topics, so local and external setups share the same
code paths afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from infra import procs, projector, seaweed, tansu
from infra.endpoints import (
    Endpoints,
    StackError,
    clickhouse_url,
    endpoints_for,
    is_running,
    resolve_endpoints,
    running_state,
)
from infra.ports import free_port, is_free, is_reusable
from infra.settings import Settings
from infra.state import (
    StackState,
    locked,
    log_path,
    read_pids,
    read_state,
    remove_pid,
    write_pid,
    write_state,
)
from infra.status import stack_status
from streams.admin import BrokerUnavailable, ensure_topics, list_topics, wait_ready
from streams.catalog import CATALOG

__all__ = [
    "Endpoints",
    "StackError",
    "StackPorts",
    "clickhouse_url",
    "is_running",
    "resolve_endpoints",
    "running_stack",
    "stack_status",
    "start_stack",
    "stop_stack",
]

SEAWEED_READY_S = 120.0
KAFKA_READY_S = 60.0
COMPONENTS = ("projector", "tansu", "weed")  # stop order: its reader, the broker, then its store
_EXPECT = {"projector": projector.NAME, "tansu": tansu.NAME, "weed": seaweed.NAME}


@dataclass(frozen=True)
class StackPorts:
    """Requested ports; 0 means: reuse the port recorded in the data dir if free, else a free one."""

    kafka: int = 0
    seaweed: Mapping[str, int] = field(default_factory=dict)


def _stop_components(data_dir: Path, pids: Mapping[str, int], timeout_s: float) -> None:
    for component in COMPONENTS:
        pid = pids.get(component)
        if pid is not None:
            procs.stop(pid, timeout_s, expect=_EXPECT[component])
        remove_pid(data_dir, component)


def _kafka_port(requested: int, previous: StackState | None) -> int:
    if requested:
        return requested
    if previous is not None and is_reusable(previous.kafka_port):
        return previous.kafka_port
    return free_port()


class _ExitedEarly(StackError):
    """A component exited while starting (typically: its port was taken meanwhile)."""


def _start_seaweed(
    data_dir: Path, ports: seaweed.SeaweedPorts, state: StackState, tie: bool
) -> tansu.S3Storage:
    creds = seaweed.credentials(data_dir)
    config = seaweed.write_s3_config(data_dir / "seaweed" / "s3.json", creds)
    seaweed.write_security_config(data_dir / "seaweed")
    argv = seaweed.weed_command(data_dir / "seaweed" / "data", ports, config)
    pid = procs.spawn(argv, log_path(data_dir, "weed"), cwd=data_dir / "seaweed", tie_to_parent=tie)
    state.pids["weed"] = pid
    write_pid(data_dir, "weed", pid)
    endpoint = seaweed.s3_endpoint(ports)
    try:
        seaweed.wait_s3_ready(endpoint, creds, SEAWEED_READY_S, alive=lambda: procs.is_alive(pid))
    except (TimeoutError, RuntimeError) as exc:
        log = log_path(data_dir, "weed")
        exited = not procs.is_alive(pid)
        if exited:
            state.pids.pop("weed", None)
            remove_pid(data_dir, "weed")
        raise (_ExitedEarly if exited else StackError)(f"{exc} (log: {log}){_log_tail(log)}") from None
    return tansu.S3Storage(endpoint, seaweed.BUCKET, creds.access_key, creds.secret_key)


def _log_tail(path: Path, lines: int = 3, max_bytes: int = 16384) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - max_bytes))
            tail = handle.read().decode(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return (" | last log lines: " + " / ".join(t.strip()[:300] for t in tail)) if tail else ""


def _start_tansu(
    data_dir: Path, port: int, storage: tansu.S3Storage | None, state: StackState, tie: bool
) -> str:
    if not is_free(port):
        raise _ExitedEarly(f"Kafka port 127.0.0.1:{port} is already in use")
    argv = tansu.tansu_command(port, storage)
    pid = procs.spawn(
        argv, log_path(data_dir, "tansu"), env=tansu.tansu_env(storage), cwd=data_dir, tie_to_parent=tie
    )
    state.pids["tansu"] = pid
    write_pid(data_dir, "tansu", pid)
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.monotonic() + KAFKA_READY_S
    while True:
        if not procs.is_alive(pid):
            remove_pid(data_dir, "tansu")
            log = log_path(data_dir, "tansu")
            raise _ExitedEarly(f"Tansu exited during startup on {bootstrap} (log: {log}){_log_tail(log)}")
        try:
            wait_ready(bootstrap, min(2.0, max(0.5, deadline - time.monotonic())))
            # A second metadata round trip listing topics reads the storage engine too.
            list_topics(bootstrap, 10)
            return bootstrap
        except BrokerUnavailable as exc:
            if time.monotonic() >= deadline:
                raise StackError(f"{exc} (log: {log_path(data_dir, 'tansu')})") from None


def _start_seaweed_retrying(
    data_dir: Path,
    ports: seaweed.SeaweedPorts,
    state: StackState,
    tie: bool,
    fixed: Mapping[str, int],
    attempts: int = 2,
) -> tansu.S3Storage:
    """Start SeaweedFS; if it exits at once (a port we picked was taken meanwhile), pick fresh ports."""
    for attempt in range(attempts):
        try:
            return _start_seaweed(data_dir, ports, state, tie)
        except _ExitedEarly:
            if attempt == attempts - 1:
                raise
            ports = seaweed.SeaweedPorts.allocate(None, **fixed)
            state.seaweed_ports = ports.as_dict()
            write_state(data_dir, state)
    raise AssertionError("unreachable")


def _start_tansu_retrying(
    data_dir: Path,
    storage: tansu.S3Storage | None,
    state: StackState,
    fixed_port: bool,
    tie: bool,
    attempts: int = 3,
) -> str:
    """Start Tansu; if it exits at once on a port we picked (taken meanwhile), pick another."""
    for attempt in range(attempts):
        try:
            return _start_tansu(data_dir, state.kafka_port, storage, state, tie)
        except _ExitedEarly:
            state.pids.pop("tansu", None)
            if fixed_port or attempt == attempts - 1:
                raise
            state.kafka_port = free_port()
            write_state(data_dir, state)
    raise AssertionError("unreachable")


def start_stack(
    settings: Settings,
    ephemeral: bool = False,
    ports: StackPorts | None = None,
    tie_to_parent: bool = False,
    with_projector: bool = False,
) -> Endpoints:
    """Start SeaweedFS (unless ephemeral) and Tansu, wait ready, create the catalog topics.

    Idempotent: a running stack is reused. With ``settings.kafka_bootstrap`` set, only
    the topics are created on that external Kafka. ``tie_to_parent``: the components get
    SIGTERM when this process dies (``running_stack`` uses it; ``csp up`` does not).
    ``with_projector``: also start the projector (ClickHouse projections, SQL endpoint) if
    it does not run yet (``csp up``, ``csp run``; local stacks only).
    """
    if settings.kafka_bootstrap:
        ensure_topics(settings.kafka_bootstrap, CATALOG, timeout_s=settings.kafka_timeout_s)
        return endpoints_for(settings, settings.kafka_bootstrap, local=False)
    wanted = ports or StackPorts(kafka=settings.kafka_port)
    data_dir = settings.resolved_data_dir()
    with locked(data_dir):
        running = running_state(data_dir)
        if running is not None:
            ensure_topics(running.bootstrap, CATALOG, timeout_s=30)
            if with_projector:
                _start_projector(settings, running, tie_to_parent)
            return endpoints_for(settings, running.bootstrap, local=True)
        previous = read_state(data_dir)
        # Leftovers of a crashed or half-started stack: stop them, drop stale pid files.
        _stop_components(data_dir, {**read_pids(data_dir), **(previous.pids if previous else {})}, 30)
        t0 = time.monotonic()
        mode = "ephemeral" if ephemeral else "durable"
        seaweed_ports = None
        overrides = dict(wanted.seaweed)
        if not ephemeral:
            if settings.s3_port and "s3" not in overrides:
                overrides["s3"] = settings.s3_port
            busy = [f"{name} 127.0.0.1:{port}" for name, port in overrides.items() if port and not is_free(port)]
            if busy:
                raise StackError(f"SeaweedFS port(s) already in use: {', '.join(busy)}")
            seaweed_ports = seaweed.SeaweedPorts.allocate(
                previous.seaweed_ports if previous else None, **overrides
            )
        state = StackState(
            mode=mode,
            kafka_port=_kafka_port(wanted.kafka, previous),
            seaweed_ports=seaweed_ports.as_dict() if seaweed_ports else None,
            started_at=time.time(),
        )
        write_state(data_dir, state)
        try:
            storage = (
                _start_seaweed_retrying(data_dir, seaweed_ports, state, tie_to_parent, overrides)
                if seaweed_ports
                else None
            )
            bootstrap = _start_tansu_retrying(
                data_dir, storage, state, fixed_port=bool(wanted.kafka), tie=tie_to_parent
            )
            ensure_topics(bootstrap, CATALOG, timeout_s=60)
            if with_projector:
                _start_projector(settings, state, tie_to_parent)
        except BaseException:
            _stop_components(data_dir, state.pids, 30)
            state.pids = {}
            write_state(data_dir, state)
            raise
        state.running = True
        state.startup_s = round(time.monotonic() - t0, 3)
        write_state(data_dir, state)
        return endpoints_for(settings, bootstrap, local=True)


def _start_projector(settings: Settings, state: StackState, tie: bool) -> None:
    data_dir = settings.resolved_data_dir()
    # an ephemeral broker starts empty: so do its projections (unless CSP_CLICKHOUSE_URL is set)
    ephemeral = state.mode == "ephemeral" and not settings.clickhouse_url
    state.pids["projector"] = projector.start_projector(
        data_dir, state.bootstrap, clickhouse_url(settings), tie, ephemeral=ephemeral)
    write_state(data_dir, state)


def stop_stack(settings: Settings, timeout_s: float = 30) -> list[str]:
    """SIGTERM every component (broker first), wait, SIGKILL after ``timeout_s``; remove pid files.

    Returns the components that were stopped. Ports stay recorded for the next ``up``.
    """
    if settings.kafka_bootstrap:
        return []
    data_dir = settings.resolved_data_dir()
    if not data_dir.exists():
        return []
    with locked(data_dir):
        state = read_state(data_dir)
        pids = {**read_pids(data_dir), **(state.pids if state else {})}
        stopped = [
            c for c in COMPONENTS
            if c in pids and procs.is_alive(pids[c], _EXPECT[c])
        ]
        _stop_components(data_dir, pids, timeout_s)
        if state is not None:
            state.pids = {}
            state.running = False
            write_state(data_dir, state)
        return stopped


@contextmanager
def running_stack(
    settings: Settings, ephemeral: bool = False, ports: StackPorts | None = None, stop_timeout_s: float = 30
) -> Iterator[Endpoints]:
    """Start the stack (or use the external Kafka) for the duration of the block.

    A stack that was already running before the block is left running. Components it starts
    are tied to the calling *thread* (Linux PR_SET_PDEATHSIG): enter it from a thread that
    lives as long as the block, normally the main thread.
    """
    already = settings.kafka_bootstrap is not None or running_state(settings.resolved_data_dir()) is not None
    endpoints = start_stack(settings, ephemeral=ephemeral, ports=ports, tie_to_parent=not already)
    try:
        yield endpoints
    finally:
        if not already:
            stop_stack(settings, timeout_s=stop_timeout_s)
