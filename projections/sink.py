"""The ClickHouse side of the projector: DDL, resume points, exactly-once batch inserts.

Exactly-once into the sink follows ClickHouse's own Kafka connector:

1. A batch is a range ``first..last`` of one topic-partition's offsets, all decided
   (committed or aborted, see :mod:`projections.txread`). Its rows are a pure function
   of the range, so the batch can be rebuilt identically after a crash.
2. Before inserting, the plan ``(topic, partition, first, last, done=0)`` is written to
   ``projector_batches``.
3. Each table gets one Arrow insert with ``insert_deduplication_token =
   "topic:partition:first-last"``; the tables keep the last ``DEDUP_WINDOW`` tokens
   (``non_replicated_deduplication_window``), so inserting the same batch again is a no-op.
4. Every record of the batch (projected or not, the ``audit.log`` topic's included) is
   appended to the audit trail and its rows inserted, then ``done=1`` is written: the
   batch's commit. The audit log skips records at or below the last offset it holds for
   their topic-partition, so a rebuilt batch adds no entry twice.

At start the projector reads, for each topic-partition, its last plan in
``projector_batches`` (what the sink holds, not a consumer group's offset): if it is not
done, the same range is rebuilt and inserted again (the tokens drop what already made
it), then reading goes on after ``last``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import pyarrow as pa

from projections.audit_sink import AuditSink
from projections.ddl import SCHEMA_VERSION, statements
from projections.fastpath import Group, insert_events, split, sql_string
from projections.tables import DEAD_LETTERS, EVENTS, INSTANCES, Table, tables_for
from projections.txread import LogRecord
from schemas.codec import Codec
from streams.engine import MARKER_HEADER

PROCESSOR = "projector"
_META = "topic, partition, first_offset, last_offset, rows, done, round"
_FAST_TABLES = frozenset({EVENTS.name, INSTANCES.name})  # the tables the fast path fills


@dataclass(frozen=True)
class Plan:
    topic: str
    partition: int
    first: int
    last: int
    done: bool
    round: str = ""  # the token of the round (the batches inserted together) it belongs to

    @property
    def token(self) -> str:
        return batch_token(self.topic, self.partition, self.first, self.last)


def round_token(plans: Sequence[Plan]) -> str:
    """The insert token of batches written together: their tokens, sorted, joined by ``|``."""
    return "|".join(sorted(p.token for p in plans))


def batch_token(topic: str, partition: int, first: int, last: int) -> str:
    return f"{topic}:{partition}:{first}-{last}"


def logical_topic(topic: str, namespace: str) -> str:
    """``ns.csp.events`` -> ``csp.events`` (the catalog name that picks the tables)."""
    prefix = f"{namespace}." if namespace else ""
    return topic[len(prefix):] if prefix and topic.startswith(prefix) else topic


def _dead_letter_value(rec: LogRecord, error: Exception) -> dict[str, Any]:
    return {
        "source_topic": rec.topic, "source_partition": rec.partition, "source_offset": rec.offset,
        "processor": PROCESSOR, "error": f"{rec.topic}[{rec.partition}]@{rec.offset}: {error}",
        "error_type": type(error).__name__, "attempts": 1, "key": rec.key, "value": rec.value,
        "headers": {k: v.decode("utf-8", "replace") for k, v in rec.headers}, "timestamp": rec.timestamp,
    }


Rows = list[tuple[Any, ...]]


def build_rows(records: Sequence[LogRecord], codec: Codec, namespace: str = "") -> dict[str, tuple[Table, Rows]]:
    """Pure: table name -> (table, rows) for a batch. A record that cannot be decoded or
    does not fit its table becomes a ``dead_letters`` row naming the error."""
    out: dict[str, tuple[Table, Rows]] = {}
    latest: dict[str, tuple[int, tuple[Any, ...]]] = {}  # instances: one row per instance per batch
    for rec in records:
        tables = tables_for(logical_topic(rec.topic, namespace))
        if not tables or (rec.headers and any(k == MARKER_HEADER for k, _v in rec.headers)):
            continue  # fences of streams.reader carry no data
        try:
            if rec.value is None:
                raise ValueError("record has no value")
            name, value = codec.decode(rec.value)
            rows = [(table, table.row(rec, value)) for table in tables if table.holds(name)]
        except Exception as exc:  # noqa: BLE001 - any bad record is a dead letter, never lost
            rows = [(DEAD_LETTERS, DEAD_LETTERS.row(rec, _dead_letter_value(rec, exc)))]
        for table, row in rows:
            if table is INSTANCES:
                # what ReplacingMergeTree keeps anyway: the highest row_version of each instance
                key, version = row[_INSTANCE_ID], row[_ROW_VERSION]
                if key not in latest or version >= latest[key][0]:
                    latest[key] = (version, row)
            else:
                out.setdefault(table.name, (table, []))[1].append(row)
    if latest:
        out[INSTANCES.name] = (INSTANCES, [row for _v, row in latest.values()])
    return out


_NAMES = [c.name for c in INSTANCES.columns]
_INSTANCE_ID, _ROW_VERSION = _NAMES.index("instance_id"), _NAMES.index("row_version")


def to_arrow_or_dead_letters(table: Table, rows: Rows) -> tuple[Any, Rows]:
    """The Arrow table of ``rows``; rows Arrow refuses (a type that does not fit) come back
    as dead-letter rows instead of failing the batch."""
    try:
        return table.to_arrow(rows), []
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        good, bad = [], []
        names = [c.name for c in table.columns]
        for row in rows:
            try:
                table.to_arrow([row])
                good.append(row)
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                rec = dict(zip(names, row, strict=True))
                src = LogRecord(rec["topic"], rec["partition"], rec["offset"], None, None, rec["kafka_time"] // 1000)
                bad.append(DEAD_LETTERS.row(src, _dead_letter_value(src, exc)))
        return table.to_arrow(good), bad


@dataclass
class Sink:
    """Writes batches into ClickHouse through one clickhouse-connect client."""

    client: Any
    codec: Codec
    namespace: str = ""
    audit: AuditSink | None = None
    extra_ddl: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rows_written: int = 0
    # test hook: called after a batch's inserts, before its commit (done=1)
    before_commit: Any = None
    # a chdb client that decodes csp.events batches (projections.fastpath); None: Python only
    decoder: Any = None
    fast_min: int = 64
    fast_records: int = 0  # records decoded by ClickHouse so far

    def apply_ddl(self) -> None:
        with self.lock:
            for stmt in statements(self.extra_ddl):
                self.client.command(stmt)
            have = self.client.query("SELECT count() FROM schema_migrations WHERE version = {v:UInt32}",
                                     parameters={"v": SCHEMA_VERSION}).result_rows[0][0]
            if not have:
                self.client.insert("schema_migrations", [[SCHEMA_VERSION]], column_names=["version"])

    def plans(self) -> dict[tuple[str, int], Plan]:
        """The last plan of every topic-partition the sink holds."""
        with self.lock:
            rows = self.client.query(
                "SELECT topic, partition, argMax(first_offset, (last_offset, done)),"
                " max(last_offset), argMax(done, (last_offset, done)), argMax(round, (last_offset, done))"
                " FROM projector_batches GROUP BY topic, partition"
            ).result_rows
        return {(t, int(p)): Plan(t, int(p), int(f), int(last), bool(d), str(r)) for t, p, f, last, d, r in rows}

    def write(self, plan: Plan, records: Sequence[LogRecord], *, recovering: bool = False) -> int:
        """Insert one batch exactly once; returns the number of projected rows."""
        return self.write_many([(plan, records, recovering)])

    def write_many(self, batches: Sequence[tuple[Plan, Sequence[LogRecord], bool]]) -> int:
        """Insert a round of batches (one per topic-partition) exactly once: one insert of
        their plans, the inserts of each table under the round's token, one insert of their
        commits. Returns the number of projected rows (for records ClickHouse decodes, the
        ``events`` rows: it computes their ``instances`` rows itself)."""
        ordered = sorted(batches, key=lambda b: (b[0].topic, b[0].partition))
        token = round_token([plan for plan, _r, _x in ordered])
        records = list(chain.from_iterable(recs for _plan, recs, _x in ordered))
        recovering = any(x for _p, _r, x in ordered)
        with self.lock:
            slow, groups = self._split([recs for _plan, recs, _x in ordered])
            tables = build_rows(slow, self.codec, self.namespace)
            counts: dict[tuple[str, int], int] = {}
            for plan, recs, _x in ordered:
                counts[(plan.topic, plan.partition)] = counts.get((plan.topic, plan.partition), 0) + len(recs)
            plans = [[p.topic, p.partition, p.first, p.last, counts.get((p.topic, p.partition), 0)] for p, *_x in ordered]
            self._bookkeeping(plans, 0, token)
            total = self._insert(records, recovering, tables, token)
            total += self._insert_fast(groups, token, shared=bool(len(groups) > 1 or _FAST_TABLES & tables.keys()))
            if self.before_commit is not None:
                for plan, *_rest in ordered:
                    self.before_commit(plan)
            self._bookkeeping(plans, 1, token)
            self.rows_written += total
        return total

    def _bookkeeping(self, plans: Sequence[Sequence[Any]], done: int, token: str) -> None:
        """One insert of the round's plans (``done = 0``) or commits (``done = 1``): a
        statement with its VALUES, no data file (a few ms less per round on chdb)."""
        values = ", ".join(f"({sql_string(t)}, {int(p)}, {int(f)}, {int(last)}, {int(n)}, {done}, {sql_string(token)})"
                           for t, p, f, last, n in plans)
        self.client.command(f"INSERT INTO projector_batches ({_META}) VALUES {values}")

    def _split(self, batches: Sequence[Sequence[LogRecord]]) -> tuple[list[LogRecord], list[Group]]:
        if self.decoder is None:
            return list(chain.from_iterable(batches)), []
        return split(batches, lambda t: logical_topic(t, self.namespace) == "csp.events",
                     self.codec.registry.raw_by_id, self.fast_min)

    def _insert_fast(self, groups: Sequence[Group], token: str, *, shared: bool) -> int:
        """Insert each group through ClickHouse's decoder. Under the round's token when it
        is the only source of ``events`` and ``instances`` rows in the round, else under a
        token of its own (``shared``); a group ClickHouse cannot read goes the Python way
        under the same token (so a repeat of either kind drops the other)."""
        total = 0
        for group in groups:
            own = f"{token}#{group.topic}#{group.schema_id}" if shared else token
            try:
                insert_events(self.decoder, group.records, group.writer, own)
                self.fast_records += len(group.records)
                total += len(group.records)
            except Exception:  # noqa: BLE001 - the Python path decodes them (and dead-letters bad ones)
                tables = build_rows(group.records, self.codec, self.namespace)
                dead = tables.pop(DEAD_LETTERS.name, None)
                total += self._insert([], False, tables, own)
                if dead is not None:
                    total += self._insert([], False, {DEAD_LETTERS.name: dead}, own + "#dead")
        return total

    def _insert(self, records: Sequence[LogRecord], recovering: bool,
                tables: dict[str, tuple[Table, Rows]], token: str) -> int:
        """Insert ``tables``' rows under ``token`` (rows Arrow refuses as dead letters) and
        append ``records`` to the audit trail. Returns the number of rows inserted."""
        rejected: Rows = []
        total = 0
        for table, rows in tables.values():
            if table is DEAD_LETTERS:
                continue
            arrow, bad = to_arrow_or_dead_letters(table, rows)
            rejected += bad
            if arrow.num_rows:
                self.client.insert_arrow(table.name, arrow, settings={"insert_deduplication_token": token})
                total += arrow.num_rows
        dead = (tables[DEAD_LETTERS.name][1] if DEAD_LETTERS.name in tables else []) + rejected
        if dead:
            self.client.insert_arrow(DEAD_LETTERS.name, DEAD_LETTERS.to_arrow(dead),
                                     settings={"insert_deduplication_token": token})
            total += len(dead)
        if self.audit is not None and records:
            entries = self.audit.entries(records)
            written = self.audit.insert(entries, token)
            if recovering and written == 0 and entries:
                self.audit.reopen()  # the entries were in already: forget the second append
        return total
