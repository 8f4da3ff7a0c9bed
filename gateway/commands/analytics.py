"""``csp sql`` and ``csp dashboard``: SQL analytics over the ClickHouse projections.

Both talk to ClickHouse over HTTP with clickhouse-connect: to the server of
``CSP_CLICKHOUSE_URL`` when it is ``http(s)://``, else to the running projector's
read-only endpoint (the projector owns the embedded chdb). Exit codes: 0 ok, 1 the query
failed in ClickHouse, 2 bad input (a write or DDL statement, an unknown format),
3 no ClickHouse to ask (no projector running, server unreachable).
"""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_OK, EXIT_QUERY, EXIT_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3
SPARK = "▁▂▃▄▅▆▇█"

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Stack data directory (default: CSP_DATA_DIR or .csp)", show_default=False),
]


class SqlFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def connect(data_dir: Path | None) -> Any:
    """A clickhouse-connect HTTP client on the platform's ClickHouse (exit 3 if none answers)."""
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from infra.clickhouse import parse_clickhouse_url
    from infra.projector import sql_endpoint
    from infra.settings import Settings

    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    try:
        if settings.clickhouse_url and parse_clickhouse_url(settings.clickhouse_url).kind == "http":
            return clickhouse_connect.get_client(dsn=settings.clickhouse_url, connect_timeout=5)
    except ValueError as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    except ClickHouseError as exc:
        raise _fail(f"ClickHouse at {settings.clickhouse_url} does not answer: {exc}", EXIT_UNAVAILABLE) from None
    data = settings.resolved_data_dir()
    endpoint = sql_endpoint(data)
    if endpoint is None:
        raise _fail(f"no projector is running for {data} (it serves the embedded ClickHouse): run `csp up`",
                    EXIT_UNAVAILABLE)
    url, password = endpoint
    host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
    try:
        return clickhouse_connect.get_client(host=host, port=int(port), username="csp", password=password,
                                             connect_timeout=5)
    except ClickHouseError as exc:
        raise _fail(f"the projector's SQL endpoint {url} does not answer: {exc}", EXIT_UNAVAILABLE) from None


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple, dict)):
        return json.loads(json.dumps(value, default=str))
    return value


def render(columns: list[str], rows: list[tuple[Any, ...]], fmt: SqlFormat) -> str:
    """Pure: the result as text in ``fmt``."""
    if fmt is SqlFormat.json:
        return json.dumps([{c: _cell(v) for c, v in zip(columns, row, strict=True)} for row in rows], indent=2)
    if fmt is SqlFormat.csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([json.dumps(_cell(v)) if isinstance(v, (list, tuple, dict)) else _cell(v) for v in row])
        return buf.getvalue().rstrip("\n")
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*(str(_cell(v)) if v is not None else "NULL" for v in row))
    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    console.print(table)
    console.print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}")
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue().rstrip("\n")


def sql(
    query: Annotated[str, typer.Argument(help="A read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)")],
    fmt: Annotated[SqlFormat, typer.Option("--format", help="Output format")] = SqlFormat.table,
    data_dir: DataDir = None,
) -> None:
    """Run read-only SQL on the projections (tables, views; see docs/projections.md)."""
    from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError

    from projections.sqlserver import QueryRefused, check_read_only

    try:
        check_read_only(query)
    except QueryRefused as exc:
        raise _fail(str(exc), EXIT_INPUT) from None
    client = connect(data_dir)
    try:
        result = client.query(query, settings={"readonly": 2})
    except DatabaseError as exc:
        raise _fail(str(exc).split(" (for url")[0], EXIT_QUERY) from None
    except ClickHouseError as exc:
        raise _fail(str(exc), EXIT_UNAVAILABLE) from None
    typer.echo(render(list(result.column_names), list(result.result_rows), fmt))


# --------------------------------------------------------------------------- dashboard

DASHBOARD_QUERIES = {
    "throughput": "SELECT toStartOfInterval(time, INTERVAL 10 SECOND) AS t, count() AS n FROM events"
                  " WHERE time > now64(6) - INTERVAL 5 MINUTE GROUP BY t ORDER BY t",
    "totals": "SELECT (SELECT count() FROM events), (SELECT count() FROM refusals),"
              " (SELECT count() FROM dead_letters), (SELECT count() FROM channel_messages)",
    "refusals": "SELECT toStartOfInterval(time, INTERVAL 10 SECOND) AS t, count() AS n FROM refusals"
                " WHERE time > now64(6) - INTERVAL 5 MINUTE GROUP BY t ORDER BY t",
    "reasons": "SELECT system, reason, sum(refusals) AS n, max(refusal_rate) AS rate FROM v_refusal_rate"
               " GROUP BY system, reason ORDER BY n DESC LIMIT 5",
    "latency": "SELECT system, offers, p50_ms, p99_ms FROM v_offer_latency ORDER BY system",
    "active": "SELECT system, active, total FROM v_active_instances ORDER BY system",
    "dead": "SELECT source_topic, dead_letters, last_error FROM v_dead_letters_per_topic ORDER BY dead_letters DESC LIMIT 5",
}


def sparkline(values: list[float], width: int = 30) -> str:
    """Pure: the last ``width`` values as unicode bars scaled to their maximum."""
    vals = values[-width:]
    if not vals:
        return ""
    top = max(vals) or 1
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1)))] for v in vals)


def _buckets(rows: list[tuple[Any, ...]], now: datetime, span_s: int = 300, step_s: int = 10) -> list[float]:
    counts = {int(r[0].timestamp()) // step_s: float(r[1]) for r in rows}
    last = int(now.timestamp()) // step_s
    return [counts.get(b, 0.0) for b in range(last - span_s // step_s + 1, last + 1)]


def snapshot(client: Any) -> dict[str, list[tuple[Any, ...]]]:
    return {name: list(client.query(q, settings={"readonly": 2}).result_rows) for name, q in DASHBOARD_QUERIES.items()}


def frame(data: dict[str, list[tuple[Any, ...]]], now: datetime) -> Any:
    """Pure: the dashboard as a Rich renderable."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    ev = _buckets(data["throughput"], now)
    rf = _buckets(data["refusals"], now)
    events, refusals, dead, messages = data["totals"][0] if data["totals"] else (0, 0, 0, 0)
    head = Table.grid(padding=(0, 2))
    head.add_row("events/s (10 s)", f"{(ev[-2] if len(ev) > 1 else 0) / 10:.1f}", sparkline(ev), f"total {events}")
    head.add_row("refusals/s", f"{(rf[-2] if len(rf) > 1 else 0) / 10:.1f}", sparkline(rf), f"total {refusals}")
    head.add_row("channel messages", "", "", f"total {messages}")
    head.add_row("dead letters", "", "", f"total {dead}")

    def table(title: str, columns: list[str], rows: list[tuple[Any, ...]]) -> Panel:
        t = Table(*columns, expand=True)
        for row in rows:
            t.add_row(*("-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))[:60] for v in row))
        return Panel(t, title=title)

    return Group(
        Panel(head, title=f"Enhanced CSP — projections at {now:%H:%M:%S} UTC (last 5 min)"),
        table("offer → event latency (ms)", ["system", "offers", "p50", "p99"], data["latency"]),
        table("instances", ["system", "active", "total"], data["active"]),
        table("top refusals", ["system", "reason", "refusals", "rate"], data["reasons"]),
        table("dead letters per topic", ["source topic", "count", "last error"], data["dead"]),
    )


def dashboard(
    data_dir: DataDir = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit")] = False,
) -> None:
    """A live terminal view of throughput, refusals, latency, active instances and dead letters."""
    from datetime import UTC

    from clickhouse_connect.driver.exceptions import ClickHouseError
    from rich.console import Console
    from rich.live import Live

    client = connect(data_dir)
    console = Console()

    def render_now() -> Any:
        try:
            return frame(snapshot(client), datetime.now(UTC))
        except ClickHouseError as exc:
            raise _fail(str(exc).split(" (for url")[0], EXIT_UNAVAILABLE) from None

    if once or not console.is_terminal:
        console.print(render_now())
        return
    with Live(render_now(), console=console, refresh_per_second=4, screen=False) as live:
        try:
            while True:
                time.sleep(max(0.2, interval))
                live.update(render_now())
        except KeyboardInterrupt:
            return


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
    app.command("dashboard")(dashboard)
