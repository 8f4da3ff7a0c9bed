"""Read-only SQL on ClickHouse (the projector's tables and views) for the analytics routes.

The target: ``ApiConfig.clickhouse_url``, else ``CSP_CLICKHOUSE_URL``, else the running
projector's SQL endpoint, else the embedded chdb default. When none answers, the routes
answer 503 problem+json naming the target and the error.
"""

from __future__ import annotations

import importlib
import re
import threading
from typing import Any

from gateway.api.problems import Problem
from infra.settings import Settings

READ_ONLY = re.compile(r"^\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.IGNORECASE)
MAX_ROWS = 10_000
GRANULARITY = {"minute": "toStartOfMinute", "hour": "toStartOfHour", "day": "toStartOfDay"}
PERIOD = re.compile(r"^(\d{1,4})([mhd])$")
UNIT = {"m": "MINUTE", "h": "HOUR", "d": "DAY"}


def check_read_only(sql: str) -> str:
    """The statement without a trailing ';' when it is one read-only statement; a 422 Problem otherwise."""
    text = sql.strip().rstrip(";").strip()
    if not READ_ONLY.match(text):
        raise Problem(422, "Invalid Request", "only read-only statements are allowed: SELECT, WITH, SHOW, "
                      "DESCRIBE, EXPLAIN or EXISTS", kind="sql-not-read-only")  # fmt: skip
    if ";" in _strip_literals(text):
        raise Problem(422, "Invalid Request", "one statement per request (found ';')", kind="sql-not-read-only")
    return text


def _strip_literals(sql: str) -> str:
    return re.sub(r"'(?:[^'\\]|\\.)*'", "''", sql)


def target_url(settings: Settings, configured: str | None) -> tuple[str, dict[str, Any]]:
    if configured:
        return configured, {}
    if settings.clickhouse_url:
        return settings.clickhouse_url, {}
    try:
        projector = importlib.import_module("infra.projector")
        found = projector.sql_endpoint(settings.resolved_data_dir())
    except (ImportError, AttributeError, OSError):
        found = None
    if found is not None:
        return str(found[0]), {"username": "csp", "password": str(found[1])}
    from infra.endpoints import clickhouse_url

    return clickhouse_url(settings), {}


class Analytics:
    def __init__(self, settings: Settings, configured: str | None) -> None:
        self.settings = settings
        self.configured = configured
        self._client: Any = None
        self._url = ""
        self._lock = threading.Lock()

    def client(self) -> Any:
        with self._lock:
            if self._client is not None:
                return self._client
            url, kwargs = target_url(self.settings, self.configured)
            self._url = url
            try:
                from infra.clickhouse import clickhouse_client

                client = clickhouse_client(url, **kwargs)
                client.query("SELECT 1")
            except Exception as exc:  # noqa: BLE001 - clickhouse-connect and chdb raise many kinds
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise Problem(503, "Service Unavailable", f"ClickHouse at {url} is not reachable: {first}",
                              kind="clickhouse-unavailable", extra={"clickhouse": url}) from None  # fmt: skip
            self._client = client
            return client

    def health(self) -> dict[str, Any]:
        try:
            self.client().query("SELECT 1")
            return {"status": "ok", "url": self._url}
        except Problem as p:
            return {"status": "unavailable", "url": self._url, "detail": p.detail}
        except Exception as exc:  # noqa: BLE001
            with self._lock:
                self._client = None
            return {"status": "unavailable", "url": self._url, "detail": str(exc).splitlines()[0]}

    def query(self, sql: str, parameters: dict[str, Any] | None = None, limit: int = MAX_ROWS) -> dict[str, Any]:
        client = self.client()
        try:
            settings = {"readonly": "1", "max_result_rows": str(limit), "result_overflow_mode": "break"} \
                if self._url.startswith("http") else {}  # fmt: skip
            res = client.query(sql, parameters=parameters or {}, settings=settings)
        except Exception as exc:  # noqa: BLE001
            msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise Problem(400, "Bad Request", f"the query failed: {msg}", kind="sql-error") from None
        rows = [list(r) for r in res.result_rows[:limit]]
        return {"columns": list(res.column_names), "rows": [[_json(v) for v in r] for r in rows],
                "rows_returned": len(rows), "truncated": len(res.result_rows) > limit}  # fmt: skip

    def performance(self, period: str, granularity: str) -> dict[str, Any]:
        m = PERIOD.match(period)
        if not m:
            raise Problem(422, "Invalid Request", f"period {period!r}: use <n>m, <n>h or <n>d, e.g. 1h",
                          kind="validation")  # fmt: skip
        if granularity not in GRANULARITY:
            raise Problem(422, "Invalid Request", f"granularity {granularity!r}: use {', '.join(GRANULARITY)}",
                          kind="validation")  # fmt: skip
        fn, span = GRANULARITY[granularity], f"INTERVAL {int(m.group(1))} {UNIT[m.group(2)]}"
        try:
            return self._performance(fn, span, period, granularity)
        except Problem as p:
            if p.kind != "sql-error":
                raise
            raise Problem(503, "Service Unavailable", f"the projector's tables are not queryable in {self._url}: "
                          f"{p.detail} (the ClickHouse projector fills them: `csp up` / `csp run` start it)",
                          kind="analytics-unavailable") from None  # fmt: skip

    def _performance(self, fn: str, span: str, period: str, granularity: str) -> dict[str, Any]:
        events = self.query(f"SELECT {fn}(time) AS bucket, count() AS events FROM events "
                            f"WHERE time >= now() - {span} GROUP BY bucket ORDER BY bucket")  # fmt: skip
        refusals = self.query(f"SELECT {fn}(time) AS bucket, count() AS refusals FROM refusals "
                              f"WHERE time >= now() - {span} GROUP BY bucket ORDER BY bucket")  # fmt: skip
        latency = self.query("SELECT * FROM v_offer_latency ORDER BY system")
        return {"period": period, "granularity": granularity, "events": events, "refusals": refusals,
                "latency": latency}  # fmt: skip


def _json(v: Any) -> Any:
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, list | tuple):
        return [_json(x) for x in v]
    return str(v)
