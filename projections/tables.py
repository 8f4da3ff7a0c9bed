"""The projected tables: columns, ClickHouse types, Arrow types and how a record fills a row.

Pure: no I/O. Every table starts with the record's source coordinates
(``topic``, ``partition``, ``offset``) and its Kafka timestamp (``kafka_time``), so a row
can always be traced back to the log, and the sink can resume from the maximum offset
it holds. Times are ``DateTime64(6)`` (UTC), names ``LowCardinality(String)``, and
fields whose shape varies (maps, nested records) are ``JSON``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from projections.txread import LogRecord
from streams.catalog import CHANNEL_PREFIX, DLQ_SUFFIX

Getter = Callable[[LogRecord, Mapping[str, Any]], Any]

_STR = pa.string()
_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    name: str
    ch_type: str
    arrow: pa.DataType
    get: Getter


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    engine: str
    order_by: str
    # the Avro records this table holds (empty: any); a topic may carry several record types
    records: frozenset[str] = frozenset()

    def holds(self, record: str) -> bool:
        return not self.records or record in self.records

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow, nullable=c.ch_type.startswith(("Nullable", "LowCardinality(Nullable"))) for c in self.columns])

    def ddl(self, dedup_window: int) -> str:
        cols = ",\n  ".join(f"`{c.name}` {c.ch_type}" for c in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {cols},\n"
            f"  `projected_at` DateTime64(6, 'UTC') DEFAULT now64(6)\n)"
            f" ENGINE = {self.engine} ORDER BY ({self.order_by})"
            f" SETTINGS non_replicated_deduplication_window = {dedup_window}"
        )

    def row(self, rec: LogRecord, value: Mapping[str, Any]) -> tuple[Any, ...]:
        """The row of one record (raises on a field the record lacks)."""
        return tuple([c.get(rec, value) for c in self.columns])

    def to_arrow(self, rows: Sequence[tuple[Any, ...]]) -> pa.Table:
        """Rows (from :meth:`row`) as an Arrow table of this table's schema."""
        schema = self.arrow_schema()
        if not rows:
            return schema.empty_table()
        columns = list(zip(*rows, strict=True))
        arrays = [pa.array(col, type=c.arrow) for col, c in zip(columns, self.columns, strict=True)]
        for array, fld in zip(arrays, schema, strict=True):
            if array.null_count and not fld.nullable:  # ClickHouse refuses the whole insert
                raise ValueError(f"{self.name}.{fld.name} is null (the column is not Nullable)")
        return pa.Table.from_arrays(arrays, schema=schema)


def _us(ms: Any) -> int | None:
    return None if ms is None else int(ms) * 1000


def _json(value: Any) -> str:
    if not value:
        return "{}" if value is None or isinstance(value, Mapping) else json.dumps({"value": value})
    return json.dumps(value if isinstance(value, Mapping) else {"value": value}, default=_jsonable, sort_keys=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def f(name: str, default: Any = None) -> Getter:
    return lambda _r, v: v.get(name, default)


def _s(name: str) -> Getter:
    return lambda _r, v: "" if v.get(name) is None else str(v.get(name))


def _t(name: str) -> Getter:
    return lambda _r, v: _us(v.get(name))


def _whole(_r: LogRecord, v: Mapping[str, Any]) -> str:
    return _json(v)


def _j(*names: str) -> Getter:
    if len(names) == 1:
        name = names[0]
        return lambda _r, v: _json(v.get(name))
    return lambda _r, v: _json({n: v.get(n) for n in names})


_SOURCE = (
    Column("topic", "LowCardinality(String)", _STR, lambda r, _v: r.topic),
    Column("partition", "UInt16", pa.uint16(), lambda r, _v: r.partition),
    Column("offset", "UInt64", pa.uint64(), lambda r, _v: r.offset),
    Column("kafka_time", "DateTime64(6, 'UTC')", _TS, lambda r, _v: r.timestamp * 1000),
)


def _table(name: str, cols: Sequence[Column], order_by: str, engine: str = "MergeTree",
           records: Sequence[str] = ()) -> Table:
    return Table(name, _SOURCE + tuple(cols), engine, order_by, frozenset(records))


LC = "LowCardinality(String)"
LCN = "LowCardinality(Nullable(String))"
TIME = "DateTime64(6, 'UTC')"
NSTR = "Nullable(String)"

EVENTS = _table("events", [
    Column("instance_id", "String", _STR, f("instance_id")),
    Column("system", LC, _STR, f("system")),
    Column("version", "UInt32", pa.uint32(), f("version")),
    Column("seq", "UInt64", pa.uint64(), f("seq")),
    Column("event", "String", _STR, f("event")),
    Column("kind", LC, _STR, f("kind")),
    Column("channel", LCN, _STR, f("channel")),
    Column("payload", "Array(String)", pa.list_(_STR), f("payload", [])),
    Column("offer_id", NSTR, _STR, f("offer_id")),
    Column("command_id", "String", _STR, f("command_id")),
    Column("state_before", "Int32", pa.int32(), f("state_before")),
    Column("state_after", "Int32", pa.int32(), f("state_after")),
    Column("choice", "JSON", _STR, _j("choice")),
    Column("time", TIME, _TS, _t("timestamp")),
    Column("command_offset", "Nullable(Int64)", pa.int64(), f("command_offset")),
], "system, instance_id, seq, topic, partition, offset")

REFUSALS = _table("refusals", [
    Column("instance_id", "String", _STR, f("instance_id")),
    Column("system", LC, _STR, _s("system")),
    Column("version", "UInt32", pa.uint32(), lambda _r, v: v.get("version") or 0),
    Column("command_id", "String", _STR, f("command_id")),
    Column("offer_id", NSTR, _STR, f("offer_id")),
    Column("event", "String", _STR, _s("event")),
    Column("reason", LC, _STR, f("reason")),
    Column("message", "String", _STR, f("message")),
    Column("acceptable", "Array(String)", pa.list_(_STR), f("acceptable", [])),
    Column("state", "Nullable(Int32)", pa.int32(), f("state")),
    Column("time", TIME, _TS, _t("timestamp")),
], "system, reason, time, topic, partition, offset")

CHANNEL_MESSAGES = _table("channel_messages", [
    Column("instance_id", "String", _STR, f("instance_id")),
    Column("system", LC, _STR, f("system")),
    Column("channel", LC, _STR, f("channel")),
    Column("event", "String", _STR, f("event")),
    Column("values", "Array(String)", pa.list_(_STR), f("values", [])),
    Column("seq", "UInt64", pa.uint64(), f("seq")),
    Column("time", TIME, _TS, _t("timestamp")),
], "system, channel, time, topic, partition, offset")

# Current state of each instance: the row with the highest `row_version` wins. Snapshots
# (which carry the status) outrank the event with the same seq.
INSTANCES = _table("instances", [
    Column("instance_id", "String", _STR, f("instance_id")),
    Column("system", LC, _STR, f("system")),
    Column("version", "UInt32", pa.uint32(), f("version")),
    Column("seq", "UInt64", pa.uint64(), f("seq")),
    Column("state", "Int32", pa.int32(), lambda _r, v: v.get("state", v.get("state_after"))),
    Column("status", LC, _STR, lambda _r, v: v.get("status") or "RUNNING"),
    Column("updated_at", TIME, _TS, _t("timestamp")),
    Column("row_version", "UInt64", pa.uint64(), lambda _r, v: int(v["seq"]) * 2 + (1 if "status" in v else 0)),
], "instance_id", engine="ReplacingMergeTree(row_version)")

DEPLOYMENTS = _table("deployments", [
    Column("system", LC, _STR, f("system")),
    Column("version", "UInt32", pa.uint32(), f("version")),
    Column("process", "String", _STR, f("process")),
    Column("file_name", "String", _STR, f("file_name")),
    Column("source_hash", "String", _STR, f("source_hash")),
    Column("source", "String", _STR, f("source")),
    Column("channels", "JSON", _STR, lambda _r, v: _json({"channels": v.get("channels", [])})),
    Column("assertions", "JSON", _STR, lambda _r, v: _json({"assertions": v.get("assertions", [])})),
    Column("deployed_at", TIME, _TS, _t("deployed_at")),
], "system, version, topic, partition, offset", records=("CspRegistryRecord",))

# Links, service bindings and undeployments (CspRoute records, also on csp.registry).
ROUTES = _table("routes", [
    Column("route_id", "String", _STR, f("route_id")),
    Column("kind", LC, _STR, f("kind")),
    Column("src_system", LC, _STR, f("src_system")),
    Column("src_channel", "String", _STR, f("src_channel")),
    Column("dst_system", LCN, _STR, f("dst_system")),
    Column("dst_channel", NSTR, _STR, f("dst_channel")),
    Column("service", LCN, _STR, f("service")),
    Column("reply_channel", NSTR, _STR, f("reply_channel")),
    Column("removed", "Bool", pa.bool_(), f("removed")),
    Column("created_at", TIME, _TS, _t("created_at")),
], "route_id, topic, partition, offset", records=("CspRoute",))

COMMANDS = _table("commands", [
    Column("command_id", "String", _STR, f("command_id")),
    Column("instance_id", "String", _STR, f("instance_id")),
    Column("kind", LC, _STR, f("kind")),
    Column("system", LCN, _STR, f("system")),
    Column("version", "Nullable(UInt32)", pa.uint32(), f("version")),
    Column("event", NSTR, _STR, f("event")),
    Column("offer_id", NSTR, _STR, f("offer_id")),
    Column("params", "JSON", _STR, _j("params")),
    Column("issued_at", TIME, _TS, _t("issued_at")),
], "instance_id, issued_at, topic, partition, offset")

# One row per command that asked for its completion (the SDK's waited-for commands).
COMPLETIONS = _table("completions", [
    Column("command_id", "String", _STR, f("command_id")),
    Column("instance_id", "String", _STR, f("instance_id")),
    Column("command_partition", "Int32", pa.int32(), f("command_partition")),
    Column("command_offset", "Int64", pa.int64(), f("command_offset")),
    Column("outcome", LC, _STR, f("outcome")),
    Column("events", "Int32", pa.int32(), f("events")),
    Column("last_seq", "Nullable(Int64)", pa.int64(), f("last_seq")),
    Column("snapshot", "Bool", pa.bool_(), f("snapshot")),
    Column("reason", LCN, _STR, f("reason")),
    Column("time", TIME, _TS, _t("timestamp")),
], "instance_id, command_id, topic, partition, offset")

DEAD_LETTERS = _table("dead_letters", [
    Column("source_topic", LC, _STR, f("source_topic")),
    Column("source_partition", "Int32", pa.int32(), f("source_partition")),
    Column("source_offset", "Int64", pa.int64(), f("source_offset")),
    Column("processor", LC, _STR, f("processor")),
    Column("error", "String", _STR, f("error")),
    Column("error_type", LCN, _STR, f("error_type")),
    Column("attempts", "Int32", pa.int32(), f("attempts", 0)),
    Column("key", NSTR, _STR, lambda _r, v: None if v.get("key") is None else bytes(v["key"]).hex()),
    Column("value", NSTR, _STR, lambda _r, v: None if v.get("value") is None else bytes(v["value"]).hex()),
    Column("headers", "JSON", _STR, _j("headers")),
    Column("time", TIME, _TS, _t("timestamp")),
], "source_topic, time, topic, partition, offset")

QUANTUM = _table("quantum_results", [
    Column("record", LC, _STR, lambda r, _v: "result" if r.topic == "quantum.results" else "request"),
    Column("request_id", "String", _STR, f("request_id")),
    Column("instance_id", NSTR, _STR, f("instance_id")),
    Column("status", LC, _STR, lambda _r, v: v.get("status") or "REQUESTED"),
    Column("backend", LC, _STR, f("backend")),
    Column("num_qubits", "Nullable(Int32)", pa.int32(), f("num_qubits")),
    Column("shots", "Int32", pa.int32(), f("shots", 0)),
    Column("counts", "JSON", _STR, _j("counts")),
    Column("duration_ms", "Nullable(Int64)", pa.int64(), f("duration_ms")),
    Column("error", NSTR, _STR, f("error")),
    Column("detail", "JSON", _STR, _whole),  # the whole record: its shape grows across versions
    Column("time", TIME, _TS, lambda _r, v: _us(v.get("completed_at", v.get("requested_at")))),
], "request_id, topic, partition, offset")

_LEDGER_RECORDS = {"ledger.anchors": "anchor", "ledger.receipts": "receipt", "ledger.journal": "intent"}


def _ledger_record(topic: str) -> str:
    for suffix, name in _LEDGER_RECORDS.items():
        if topic.endswith(suffix):
            return name
    return "transaction"


def _opt_str(*names: str) -> Getter:
    def get(_r: LogRecord, v: Mapping[str, Any]) -> str | None:
        for n in names:
            if v.get(n) is not None:
                return str(v[n])
        return None
    return get


# Ledger records change shape across schema versions: a few columns to filter on, the whole
# record in `detail`.
LEDGER = _table("ledger_transactions", [
    Column("record", LC, _STR, lambda r, _v: _ledger_record(r.topic)),
    Column("chain_id", LCN, _STR, _opt_str("chain_id", "chain")),
    Column("id", "String", _STR, lambda _r, v: str(v.get("tx_id") or v.get("anchor_id") or "")),
    Column("seq", "Nullable(Int64)", pa.int64(), lambda _r, v: v.get("seq", v.get("block_number"))),
    Column("hash", NSTR, _STR, _opt_str("tx_hash", "anchor_hash")),
    Column("status", LCN, _STR, _opt_str("status", "kind")),
    Column("instance_id", NSTR, _STR, _opt_str("instance_id")),
    Column("detail", "JSON", _STR, _whole),
    Column("time", TIME, _TS, _t("timestamp")),
], "record, id, topic, partition, offset")

AGENT_CALLS = _table("agent_calls", [
    Column("record", LC, _STR, lambda r, _v: "response" if r.topic == "agents.responses" else "request"),
    Column("request_id", "String", _STR, f("request_id")),
    Column("instance_id", NSTR, _STR, f("instance_id")),
    Column("agent", LCN, _STR, f("agent")),
    Column("model", LC, _STR, f("model")),
    Column("status", LC, _STR, lambda _r, v: v.get("status") or "REQUESTED"),
    Column("latency_ms", "Nullable(Int64)", pa.int64(), f("latency_ms")),
    Column("content", NSTR, _STR, f("content")),
    Column("error", NSTR, _STR, f("error")),
    Column("detail", "JSON", _STR, _whole),
    Column("time", TIME, _TS, lambda _r, v: _us(v.get("timestamp", v.get("requested_at")))),
], "request_id, topic, partition, offset")

TABLES: tuple[Table, ...] = (
    EVENTS, REFUSALS, CHANNEL_MESSAGES, INSTANCES, DEPLOYMENTS, ROUTES, COMMANDS, COMPLETIONS, DEAD_LETTERS,
    QUANTUM, LEDGER, AGENT_CALLS,
)

_FIXED: dict[str, tuple[Table, ...]] = {
    "csp.events": (EVENTS, INSTANCES),
    "csp.snapshots": (INSTANCES,),
    "csp.refusals": (REFUSALS,),
    "csp.registry": (DEPLOYMENTS, ROUTES),
    "csp.commands": (COMMANDS,),
    "csp.completions": (COMPLETIONS,),
    "quantum.requests": (QUANTUM,),
    "quantum.results": (QUANTUM,),
    "ledger.transactions": (LEDGER,),
    "ledger.anchors": (LEDGER,),
    "ledger.receipts": (LEDGER,),
    "ledger.journal": (LEDGER,),
    "agents.requests": (AGENT_CALLS,),
    "agents.responses": (AGENT_CALLS,),
}


def tables_for(topic: str) -> tuple[Table, ...]:
    """The tables a topic's records go to (empty: none)."""
    if topic.endswith(DLQ_SUFFIX):
        return (DEAD_LETTERS,)
    if topic.startswith(CHANNEL_PREFIX):
        return (CHANNEL_MESSAGES,)
    return _FIXED.get(topic, ())
