"""The audit trail's ClickHouse I/O: the ``audit_log`` and ``audit_checkpoints`` tables.

Every function takes a clickhouse-connect client (``http://`` server, the projector's
loopback SQL endpoint, or ``chdb:///path``); unqualified table names resolve in the
client's database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from projections.audit.log import (
    AUDIT_COLUMNS,
    AUDIT_DDL,
    AUDIT_TABLE,
    CHECKPOINT_COLUMNS,
    CHECKPOINT_TABLE,
    Checkpoint,
)

PAGE = 50_000
_BYTES = {"String": "bytes", "FixedString": "bytes"}
_ARROW_BINARY = {"output_format_arrow_string_as_string": 0}


def ensure_schema(client: Any) -> None:
    for ddl in AUDIT_DDL:
        client.command(ddl)


def insert_entries(client: Any, rows: list[dict[str, Any]], token: str | None = None) -> int:
    if not rows:
        return 0
    settings = {"insert_deduplication_token": token} if token else None
    summary = client.insert(
        AUDIT_TABLE, [[row[c] for c in AUDIT_COLUMNS] for row in rows],
        column_names=list(AUDIT_COLUMNS), settings=settings,
    )
    return int(summary.written_rows)


def insert_checkpoint(client: Any, cp: Checkpoint) -> None:
    row = cp.row()
    client.insert(CHECKPOINT_TABLE, [[row[c] for c in CHECKPOINT_COLUMNS]], column_names=list(CHECKPOINT_COLUMNS))


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root_hash: bytes
    origin: str
    key_name: str
    key_id: int
    note: str
    frontier: tuple[bytes, ...]
    created_at: datetime


def checkpoints(client: Any, *, limit: int | None = None, latest_first: bool = False) -> list[StoredCheckpoint]:
    order = "DESC" if latest_first else "ASC"
    sql = (
        f"SELECT {', '.join(CHECKPOINT_COLUMNS)} FROM {CHECKPOINT_TABLE} "
        f"ORDER BY tree_size {order}, created_at {order}"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    result = client.query(sql, query_formats={"FixedString": "bytes"})
    return [
        StoredCheckpoint(int(r[0]), bytes(r[1]), r[2], r[3], int(r[4]), r[5], tuple(bytes(h) for h in r[6]), r[7])
        for r in result.result_rows
    ]


def table_stats(client: Any) -> tuple[int, int]:
    """``(row count, max entry_index + 1)`` of ``audit_log``."""
    rows = client.query(f"SELECT count(), max(entry_index) + 1, count() > 0 FROM {AUDIT_TABLE}").result_rows
    count, top, nonempty = rows[0]
    return int(count), int(top) if nonempty else 0


def count_below(client: Any, size: int) -> int:
    return int(client.query(f"SELECT count() FROM {AUDIT_TABLE} WHERE entry_index < {int(size)}").result_rows[0][0])


def partition_offsets(client: Any) -> dict[tuple[str, int], int]:
    rows = client.query(
        f"SELECT source_topic, source_partition, max(source_offset) FROM {AUDIT_TABLE} "
        "GROUP BY source_topic, source_partition"
    ).result_rows
    return {(str(t), int(p)): int(o) for t, p, o in rows}


@dataclass(frozen=True)
class StoredEntry:
    entry_index: int
    source_topic: str
    source_partition: int
    source_offset: int
    canonical: bytes
    leaf_hash: bytes


def iter_entries(client: Any, start: int = 0, stop: int | None = None, page: int = PAGE) -> Iterator[StoredEntry]:
    """Every ``audit_log`` row with ``start <= entry_index < stop``, in index order
    (duplicates included), one page of index range at a time."""
    if stop is None:
        stop = table_stats(client)[1]
    lo = start
    while lo < stop:
        hi = min(lo + page, stop)
        table = client.query_arrow(
            f"SELECT entry_index, source_topic, source_partition, source_offset, canonical, leaf_hash "
            f"FROM {AUDIT_TABLE} WHERE entry_index >= {lo} AND entry_index < {hi} "
            "ORDER BY entry_index, appended_at",
            settings=_ARROW_BINARY,
        )
        if table.num_rows == 0:  # skip a hole (e.g. one forged row far beyond the end) at once
            nxt = client.query(
                f"SELECT min(entry_index), count() FROM {AUDIT_TABLE} WHERE entry_index >= {hi} "
                f"AND entry_index < {stop}").result_rows[0]
            if not nxt[1]:
                return
            lo = int(nxt[0])
            continue
        cols: list[list[Any]] = [table.column(i).to_pylist() for i in range(4)]
        cols += [_binary(table, 4), _binary(table, 5)]
        for idx, topic, part, off, canon, leaf in zip(*cols, strict=True):
            yield StoredEntry(
                int(idx), topic.decode() if isinstance(topic, bytes) else str(topic),
                int(part), int(off), bytes(canon), bytes(leaf),
            )
        lo = hi


def _binary(table: Any, i: int) -> list[bytes]:
    """Column ``i`` as bytes, whether the server sent String as Arrow binary or (unvalidated) utf8."""
    import pyarrow as pa

    col = table.column(i)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = col.cast(pa.binary())
    return [bytes(v) for v in col.to_pylist()]


def leaf_hashes(client: Any, size: int) -> list[bytes]:
    """The stored leaf hashes of entries ``0 .. size-1``, in order (one per index, checked)."""
    out: list[bytes] = []
    lo = 0
    while lo < size:
        hi = min(lo + 4 * PAGE, size)
        table = client.query_arrow(
            f"SELECT entry_index, any(leaf_hash) AS h, count() AS n FROM {AUDIT_TABLE} "
            f"WHERE entry_index >= {lo} AND entry_index < {hi} GROUP BY entry_index ORDER BY entry_index",
            settings=_ARROW_BINARY,
        )
        idx = table.column(0).to_pylist()
        counts = table.column(2).to_pylist()
        if idx != list(range(lo, hi)) or any(n != 1 for n in counts):
            raise LookupError(
                f"audit_log entries {lo}..{hi - 1} are not exactly one row per index; run `csp audit verify`"
            )
        out.extend(_binary(table, 1))
        lo = hi
    return out
