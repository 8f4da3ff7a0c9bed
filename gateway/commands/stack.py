"""``csp up`` / ``down`` / ``status`` / ``topics``: the local stack and the topic catalog.

Exit codes: 0 success, 1 the stack/broker is unavailable or failed to start,
2 bad input (unknown topic, bad option), 3 ``status``: the stack is not running.
Heavy modules are imported inside the commands so that ``csp`` starts fast.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gateway.commands.output import Fmt, emit, fmt_of

if TYPE_CHECKING:
    from infra.settings import Settings
    from streams.catalog import TopicSpec

EXIT_OK, EXIT_UNAVAILABLE, EXIT_INPUT, EXIT_NOT_RUNNING = 0, 1, 2, 3

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Stack data directory (default: CSP_DATA_DIR or .csp)", show_default=False),
]


class Format(StrEnum):
    text = "text"
    json = "json"


FormatOpt = Annotated[Format, typer.Option("--format", help="Output format")]


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    from infra.settings import Settings

    kwargs: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    return Settings(**kwargs)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def up(
    data_dir: DataDir = None,
    ephemeral: Annotated[bool, typer.Option("--ephemeral", help="memory:// storage, nothing kept on disk")] = False,
    kafka_port: Annotated[int | None, typer.Option(help="Broker port (default: recorded one, else free)")] = None,
    s3_port: Annotated[int | None, typer.Option(help="SeaweedFS S3 port (default: recorded one, else free)")] = None,
    master_port: Annotated[int | None, typer.Option(help="SeaweedFS master port")] = None,
    volume_port: Annotated[int | None, typer.Option(help="SeaweedFS volume port")] = None,
    filer_port: Annotated[int | None, typer.Option(help="SeaweedFS filer port")] = None,
    fmt: FormatOpt = Format.text,
    projector: Annotated[bool, typer.Option("--projector/--no-projector",
                                            help="Also start the projector (ClickHouse projections, SQL endpoint)")] = True,
) -> None:
    """Start the local stack (SeaweedFS + Tansu + the projector) and create the catalog topics.

    With CSP_KAFKA_BOOTSTRAP set no broker starts: the topics are created on that Kafka.
    """
    import time

    from infra.stack import StackError, StackPorts, is_running, start_stack
    from infra.state import read_state
    from streams.admin import BrokerUnavailable

    settings = _settings(data_dir)
    seaweed = {k: v for k, v in {"s3": s3_port, "master": master_port, "volume": volume_port,
                                 "filer": filer_port}.items() if v}
    ports = StackPorts(kafka=kafka_port or settings.kafka_port, seaweed=seaweed)
    already = not settings.kafka_bootstrap and is_running(settings)
    t0 = time.monotonic()
    try:
        endpoints = start_stack(settings, ephemeral=ephemeral, ports=ports, with_projector=projector)
    except (StackError, BrokerUnavailable, RuntimeError, OSError) as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    elapsed = time.monotonic() - t0
    state = read_state(settings.resolved_data_dir()) if endpoints.local else None
    payload = {
        "kafka": {"bootstrap": endpoints.kafka_bootstrap, "external": not endpoints.local},
        "clickhouse": {"url": endpoints.clickhouse_url},
        "schema_registry": {"url": endpoints.schema_registry_url},
        "data_dir": str(settings.resolved_data_dir()),
        "mode": state.mode if state is not None else "external",
        "seconds": round(elapsed, 3),
        "already_running": already,
        "sql_url": _sql_url(settings) if endpoints.local else None,
    }
    if fmt is Format.json:
        typer.echo(json.dumps(payload, indent=2))
        return
    where = "external Kafka" if not endpoints.local else f"{payload['mode']} stack in {payload['data_dir']}"
    typer.echo(f"already up ({where})" if already else f"up ({where}) in {elapsed:.1f}s")
    typer.echo(f"  kafka      {endpoints.kafka_bootstrap}")
    typer.echo(f"  clickhouse {endpoints.clickhouse_url}")
    sql = _sql_url(settings) if endpoints.local else None
    if sql:
        typer.echo(f"  sql        {sql} (read-only; `csp sql`)")
    if endpoints.local:
        typer.echo(f"  export CSP_DATA_DIR={payload['data_dir']}")


def _sql_url(settings: Settings) -> str | None:
    from infra.projector import read_projector_state

    state = read_projector_state(settings.resolved_data_dir())
    return str(state["sql_url"]) if state and state.get("sql_url") else None


def down(
    data_dir: DataDir = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait after SIGTERM before SIGKILL")] = 30.0,
    fmt: Fmt = "text",
) -> None:
    """Stop the local stack (SIGTERM, wait, SIGKILL after --timeout); data and ports are kept."""
    from infra.stack import stop_stack

    fmt = fmt_of(fmt)
    settings = _settings(data_dir)
    if settings.kafka_bootstrap:
        if fmt != "text":
            emit(fmt, {"external": True, "kafka_bootstrap": settings.kafka_bootstrap, "stopped": []})
            return
        typer.echo(f"CSP_KAFKA_BOOTSTRAP={settings.kafka_bootstrap} is external: nothing to stop")
        return
    stopped = stop_stack(settings, timeout_s=timeout)
    if fmt != "text":
        emit(fmt, {"external": False, "kafka_bootstrap": None, "stopped": list(stopped)})
        return
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def status(data_dir: DataDir = None, fmt: FormatOpt = Format.text) -> None:
    """Health of each component, the topics and the addresses. Exit 3 if not running."""
    from infra.stack import stack_status

    report = stack_status(_settings(data_dir))
    if fmt is Format.json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_status(report)
    if not report["running"]:
        raise typer.Exit(EXIT_NOT_RUNNING)


def _health(flag: object) -> str:
    return "ok" if flag else "DOWN"


def _pid(component: dict[str, Any]) -> str:
    return f"  pid={component['pid']}" if component.get("pid") is not None else ""


def _print_status(report: dict[str, Any]) -> None:
    kafka, storage, ch = report["kafka"], report["storage"], report["clickhouse"]
    typer.echo(f"mode       {report['mode']} ({'running' if report['running'] else 'not running'})")
    typer.echo(f"data dir   {report['data_dir']}")
    typer.echo(f"kafka      {_health(kafka.get('healthy'))}  {kafka.get('bootstrap') or '-'}{_pid(kafka)}")
    if "s3_endpoint" in storage:
        typer.echo(f"seaweedfs  {_health(storage.get('healthy'))}  {storage['s3_endpoint']}{_pid(storage)}")
    else:
        typer.echo(f"storage    {storage.get('engine')}")
    typer.echo(f"clickhouse {_health(ch.get('healthy'))}  {ch['url']}{_clickhouse_detail(ch)}")
    topics = report["topics"]
    typer.echo(f"topics     {len(topics)} ({len(report['catalog_missing'])} catalog topics missing)")
    for name, counts in report.get("partition_mismatch", {}).items():
        typer.echo(f"  WARNING {name}: {counts['actual']} partitions, the catalog declares {counts['declared']}")
    for name, partitions in topics.items():
        typer.echo(f"  {name}  [{partitions}]")


def _clickhouse_detail(ch: dict[str, Any]) -> str:
    parts = []
    if ch.get("projector_pid"):
        parts.append(f"projector pid={ch['projector_pid']}")
    if ch.get("sql_url"):
        parts.append(f"sql {ch['sql_url']}")
    if ch.get("rows") is not None:
        parts.append(f"{ch['rows']} rows projected")
    if ch.get("audit") and ch["audit"] != "ok":
        parts.append(f"audit trail: {ch['audit']}")
    if ch.get("error"):
        parts.append(str(ch["error"]))
    return ("  " + ", ".join(parts)) if parts else ""


def _spec_row(spec: TopicSpec, live: dict[str, int] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": spec.name,
        "partitions": spec.partitions,
        "key": spec.key,
        "value_schema": spec.value_schema,
        "cleanup_policy": spec.cleanup_policy,
        "retention_ms": spec.retention_ms,
        "dead_letter": spec.dead_letter,
        "input": spec.input,
        "purpose": spec.purpose,
    }
    if live is not None:
        row["exists"] = spec.name in live
        row["live_partitions"] = live.get(spec.name)
    return row


def _live_topics(settings: Settings) -> dict[str, int] | None:
    from infra.stack import StackError, resolve_endpoints
    from streams.admin import BrokerUnavailable, list_topics

    try:
        return list_topics(resolve_endpoints(settings).kafka_bootstrap, timeout_s=5)
    except (StackError, BrokerUnavailable) as exc:
        typer.echo(f"note: not showing which topics exist: {exc}", err=True)
        return None


def topics(
    names: Annotated[list[str] | None, typer.Argument(help="Topics to describe (default: the whole catalog)")] = None,
    data_dir: DataDir = None,
    fmt: FormatOpt = Format.text,
    live: Annotated[bool, typer.Option("--live/--offline", help="Also ask the broker which exist")] = True,
) -> None:
    """List the topic catalog (name, partitions, key, schema, policy, retention, purpose)."""
    from streams.catalog import CATALOG, UnknownTopicError, spec_for

    try:
        specs = [spec_for(n) for n in names] if names else list(CATALOG)
    except (UnknownTopicError, ValueError) as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    present = _live_topics(_settings(data_dir)) if live else None
    rows = [_spec_row(s, present) for s in specs]
    if fmt is Format.json:
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        retention = "forever" if r["retention_ms"] < 0 else f"{r['retention_ms'] // 86_400_000}d"
        state = "" if present is None else ("  exists" if r["exists"] else "  MISSING")
        typer.echo(
            f"{r['name']:<{width}}  p={r['partitions']}  key={r['key']:<12} {r['value_schema']:<18} "
            f"{r['cleanup_policy']:<7} {retention:<7}{state}  {r['purpose']}"
        )


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("topics")(topics)
