"""CSP_CLICKHOUSE_URL: an http(s):// ClickHouse server or ``chdb:///abs/path`` (embedded).

Both go through clickhouse-connect, so local and external setups share one code path.
chdb allows a single process per path: open the client in the one process that owns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ClickHouseTarget:
    kind: Literal["chdb", "http"]
    url: str
    path: str | None = None  # chdb only


def parse_clickhouse_url(url: str) -> ClickHouseTarget:
    """Validate ``url``; raises ValueError with a clear message otherwise."""
    if url.startswith("chdb://"):
        path = url[len("chdb://"):]
        if not path.startswith("/") or path == "/":
            raise ValueError(
                f"CSP_CLICKHOUSE_URL {url!r}: an embedded chdb URL needs an absolute path, e.g. chdb:///abs/path"
            )
        return ClickHouseTarget("chdb", url, path)
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.hostname:
        return ClickHouseTarget("http", url)
    raise ValueError(
        f"CSP_CLICKHOUSE_URL {url!r}: expected http(s)://host:port[/database] or chdb:///abs/path"
    )


def clickhouse_client(url: str, **kwargs: Any) -> Any:
    """A clickhouse-connect client for either kind of URL."""
    import clickhouse_connect

    target = parse_clickhouse_url(url)
    if target.kind == "chdb":
        assert target.path is not None
        from pathlib import Path

        Path(target.path).mkdir(parents=True, exist_ok=True)
    return clickhouse_connect.get_client(dsn=target.url, **kwargs)
