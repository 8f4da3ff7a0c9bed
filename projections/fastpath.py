"""The fast path for the event log: ClickHouse decodes the Avro, the sink inserts Arrow.

Decoding every record with fastavro and building rows in Python costs ~10-15 µs a record.
For ``csp.events`` (the bulk of the traffic) the projector instead hands the batch's Avro
bodies to the embedded ClickHouse: it strips the 5-byte Confluent header of each record,
concatenates the bodies into one block of an Avro object container file (the writer's
schema in its header; nothing is re-encoded), and reads it back with
``SELECT ... FROM file(path, 'Avro')`` as an Arrow table, the column expressions below
doing what :mod:`projections.tables`' getters do. The source coordinates (topic,
partition, offset, Kafka time) are Arrow arrays built from the batch and joined by row
number. The result is inserted with Arrow like every other table.

It is used only when the sink is the embedded chdb (the file is local) and only for records
of one writer schema; anything it cannot handle goes the Python way
(:func:`projections.sink.build_rows`), which stays the reference: a test checks both give
the same rows.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from projections.tables import EVENTS, INSTANCES, Table
from projections.txread import LogRecord
from schemas.codec import strip_time_logical_types

MAGIC = b"Obj\x01"

# Value columns of each table as ClickHouse expressions over the CspEvent fields.
_EVENT_COLUMNS = {
    "instance_id": "instance_id", "system": "system", "version": "toUInt32(version)", "seq": "toUInt64(seq)",
    "event": "event", "kind": "toString(kind)", "channel": "channel", "payload": "payload",
    "offer_id": "offer_id", "command_id": "command_id", "state_before": "state_before",
    "state_after": "state_after", "choice": "if(isNull(choice), '{}', toJSONString(choice))",
    "time": "fromUnixTimestamp64Milli(timestamp, 'UTC')", "command_offset": "command_offset",
}
_SOURCE = ("topic", "partition", "offset", "kafka_time")
_SETTINGS = {"max_threads": 1, "input_format_parallel_parsing": 0}


def _zlong(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zbytes(b: bytes) -> bytes:
    return _zlong(len(b)) + b


def container(schema: Any, bodies: Sequence[bytes]) -> bytes:
    """Pure: an Avro object container file with one block holding ``bodies`` (encoded records)."""
    sync = uuid.uuid4().bytes
    meta = {"avro.schema": json.dumps(schema).encode(), "avro.codec": b"null"}
    header = MAGIC + _zlong(len(meta)) + b"".join(_zbytes(k.encode()) + _zbytes(v) for k, v in meta.items())
    block = b"".join(bodies)
    return header + b"\x00" + sync + _zlong(len(bodies)) + _zlong(len(block)) + block + sync


def schema_id(value: bytes | None) -> int | None:
    """The Confluent schema id of a framed value, or None."""
    if value is None or len(value) < 5 or value[0] != 0:
        return None
    return int.from_bytes(value[1:5], "big")


def _source(records: Sequence[LogRecord]) -> list[pa.Array]:
    return [
        pa.array([r.topic for r in records], pa.string()),
        pa.array([r.partition for r in records], pa.uint16()),
        pa.array([r.offset for r in records], pa.uint64()),
        pa.array([r.timestamp * 1000 for r in records], pa.timestamp("us", tz="UTC")),
    ]


def _finish(table: Table, decoded: pa.Table, source: list[pa.Array], rows: pa.Array) -> pa.Table:
    schema = table.arrow_schema()
    arrays: list[pa.Array] = []
    for field in schema:
        if field.name in _SOURCE:
            arr = pc.take(source[_SOURCE.index(field.name)], rows)
        else:
            arr = decoded.column(field.name)
        arrays.append(arr.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def decode_events(client: Any, records: Sequence[LogRecord], writer_schema: Any) -> dict[str, pa.Table]:
    """``events`` and ``instances`` Arrow tables of CspEvent ``records`` (one writer schema),
    decoded by the chdb ``client``. Raises if ClickHouse cannot read them."""
    schema = strip_time_logical_types(writer_schema)
    data = container(schema, [r.value[5:] for r in records if r.value is not None])
    fd, path = tempfile.mkstemp(prefix="csp-batch-", suffix=".avro", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        cols = ", ".join(f"{expr} AS `{name}`" for name, expr in _EVENT_COLUMNS.items())
        events = client.query_arrow(
            f"SELECT rowNumberInAllBlocks() AS _row, {cols} FROM file('{path}', 'Avro') ORDER BY _row",
            settings=_SETTINGS)
    finally:
        os.unlink(path)
    if events.num_rows != len(records):
        raise ValueError(f"ClickHouse read {events.num_rows} of {len(records)} records")
    source = _source(records)
    rows = pa.array(range(len(records)), pa.int64())
    last = _last_per_instance(events.column("instance_id"), events.column("seq"))
    latest = events.take(last)
    instances = pa.table({
        "instance_id": latest.column("instance_id"), "system": latest.column("system"),
        "version": latest.column("version"), "seq": latest.column("seq"), "state": latest.column("state_after"),
        "status": pa.array(["RUNNING"] * len(last), pa.string()), "updated_at": latest.column("time"),
        "row_version": pc.multiply(pc.cast(latest.column("seq"), pa.uint64()), 2),
    })
    return {
        EVENTS.name: _finish(EVENTS, events, source, rows),
        INSTANCES.name: _finish(INSTANCES, instances, source, last),
    }


def _last_per_instance(instance_ids: Any, seqs: Any) -> pa.Array:
    """Row numbers of each instance's last row by (seq, row): what ReplacingMergeTree keeps."""
    n = len(instance_ids)
    key = pc.add(pc.multiply(pc.cast(seqs, pa.int64()), n), pa.array(range(n), pa.int64()))
    grouped = pa.table({"i": instance_ids, "k": key}).group_by("i", use_threads=False).aggregate([("k", "max")])
    k_max = grouped.column("k_max")
    rows = pc.subtract(k_max, pc.multiply(pc.divide(k_max, n), n))  # integer division: k mod n
    return pc.take(rows, pc.sort_indices(rows))
