"""``csp status``: the health of each component, the topics and the addresses."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from infra import seaweed
from infra.clickhouse import parse_clickhouse_url
from infra.endpoints import clickhouse_url, component_alive, running_state
from infra.projector import read_projector_state, sql_endpoint
from infra.s3 import bucket_exists
from infra.settings import Settings
from infra.state import StackState, read_state
from streams.admin import BrokerUnavailable, list_topics
from streams.catalog import CATALOG

STATUS_PROBE_S = 5.0  # per probe; generous because the 2 shared cores can be saturated


def _projected_rows(url: str, password: str) -> int:
    """Rows the projector has committed, asked through its SQL endpoint."""
    query = urllib.parse.quote("SELECT sum(rows) FROM projector_batches WHERE done = 1")
    request = urllib.request.Request(  # noqa: S310 - loopback endpoint of our own projector
        f"{url}/?query={query}", headers={"X-ClickHouse-User": "csp", "X-ClickHouse-Key": password})
    with urllib.request.urlopen(request, timeout=STATUS_PROBE_S) as response:  # noqa: S310
        return int(response.read().decode().strip() or 0)


def _clickhouse_health(url: str, data_dir: Path) -> dict[str, Any]:
    try:
        target = parse_clickhouse_url(url)
    except ValueError as exc:
        return {"url": url, "kind": "invalid", "healthy": False, "error": str(exc)}
    if target.kind == "chdb":
        path = Path(target.path or "/")
        out: dict[str, Any] = {"url": url, "kind": "chdb", "path": str(path), "exists": path.exists()}
        # chdb allows one process per path: the projector owns it and answers for it.
        state = read_projector_state(data_dir)
        if state is None:
            out.update(healthy=False, error="not served: no projector is running (`csp up` starts it)")
            return out
        out.update(projector_pid=state.get("pid"), sql_url=state.get("sql_url"), audit=state.get("audit"))
        if state.get("clickhouse_url"):  # an ephemeral stack's projector uses a fresh path
            out["url"] = state["clickhouse_url"]
        endpoint = sql_endpoint(data_dir)
        if endpoint is None:
            out.update(healthy=False, error="the projector serves no SQL endpoint")
            return out
        try:
            out["rows"] = _projected_rows(*endpoint)
            out["healthy"] = True
        except (urllib.error.URLError, OSError, ValueError) as exc:
            out.update(healthy=False, error=f"SQL endpoint {endpoint[0]}: {exc}")
        return out
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/ping", timeout=STATUS_PROBE_S) as response:  # noqa: S310
            ok = response.status == 200
        return {"url": url, "kind": "http", "healthy": ok}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"url": url, "kind": "http", "healthy": False, "error": str(exc)}


def _kafka_health(bootstrap: str | None) -> tuple[dict[str, Any], dict[str, int]]:
    if bootstrap is None:
        return {"bootstrap": None, "healthy": False, "error": "never started"}, {}
    try:
        topics = list_topics(bootstrap, timeout_s=STATUS_PROBE_S)
    except BrokerUnavailable as exc:
        return {"bootstrap": bootstrap, "healthy": False, "error": str(exc)}, {}
    return {"bootstrap": bootstrap, "healthy": True}, topics


def stack_status(settings: Settings) -> dict[str, Any]:
    """Health of each component, the topics and the addresses (JSON-able)."""
    data_dir = settings.resolved_data_dir()
    ch = _clickhouse_health(clickhouse_url(settings), data_dir)
    if settings.kafka_bootstrap:
        kafka, topics = _kafka_health(settings.kafka_bootstrap)
        kafka["external"] = True
        storage: dict[str, Any] = {"engine": "external"}
        mode, running = "external", bool(kafka["healthy"])
    else:
        state = read_state(data_dir)
        if state is not None and not component_alive(state, "tansu"):
            kafka, topics = {"bootstrap": state.bootstrap, "healthy": False, "error": "broker not running"}, {}
        else:
            kafka, topics = _kafka_health(state.bootstrap if state else None)
        kafka["external"] = False
        mode = state.mode if state else "stopped"
        storage = {"engine": "memory://" if mode == "ephemeral" else "s3://tansu/ on SeaweedFS"}
        if state is not None:
            kafka.update(pid=state.pids.get("tansu"), process_alive=component_alive(state, "tansu"))
            if state.seaweed_ports:
                storage.update(_storage_health(data_dir, state))
            kafka["healthy"] = bool(kafka["healthy"] and kafka["process_alive"])
        running = running_state(data_dir) is not None
        if state is not None:
            storage["startup_s"] = state.startup_s
    missing = [s.name for s in CATALOG if s.name not in topics]
    # e.g. auto-created by a producer before `up` (Tansu: 4 partitions); cannot be fixed in place.
    mismatched = {
        s.name: {"declared": s.partitions, "actual": topics[s.name]}
        for s in CATALOG
        if s.name in topics and topics[s.name] != s.partitions
    }
    return {
        "mode": mode,
        "running": running,
        "data_dir": str(data_dir),
        "kafka": kafka,
        "storage": storage,
        "clickhouse": ch,
        "schema_registry": {"url": settings.schema_registry_url},
        "topics": topics,
        "catalog_missing": missing if kafka["healthy"] else [s.name for s in CATALOG],
        "partition_mismatch": mismatched,
    }


def _storage_health(data_dir: Path, state: StackState) -> dict[str, Any]:
    endpoint = state.s3_endpoint
    out: dict[str, Any] = {
        "s3_endpoint": endpoint,
        "ports": state.seaweed_ports,
        "pid": state.pids.get("weed"),
        "process_alive": component_alive(state, "weed"),
    }
    try:
        ok = endpoint is not None and bucket_exists(endpoint, seaweed.BUCKET, seaweed.credentials(data_dir), STATUS_PROBE_S)
        out["healthy"] = bool(ok and out["process_alive"])
    except OSError as exc:
        out.update(healthy=False, error=str(exc))
    return out
