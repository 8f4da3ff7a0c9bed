"""The fast path for the event log: ClickHouse decodes the Avro and inserts the rows itself.

Decoding every record with fastavro and building rows in Python costs ~10-15 µs a record.
For ``csp.events`` (the bulk of the traffic) the projector instead hands a group of records
(one topic, one writer schema) to the embedded ClickHouse as two files in ``/dev/shm``:

* the values as they are, one block of an Avro object container file whose schema is
  the writer's with a first field of 5 bytes that reads the Confluent header (magic byte,
  schema id): nothing is copied or re-encoded;
* the source coordinates (partition, offset, Kafka time) of the same records, row by row,
  as ``RowBinary`` built with numpy.

``INSERT INTO events SELECT ... FROM file(avro) PASTE JOIN file(coordinates)`` joins them by
row number (one thread, so in file order); the column expressions below do what
:mod:`projections.tables`' getters do. ``instances`` gets each instance's last row
(highest seq, then offset) from a second ``INSERT ... SELECT ... LIMIT 1 BY`` over the same
files. No row comes back to Python, and the GIL is free while ClickHouse works.

Each insert is squashed into one block (``min_insert_block_size_*``), so it goes in whole or
not at all, under the caller's deduplication token: the Python path
(:func:`projections.sink.build_rows`) can redo a group that failed here under the same
token. That path stays the reference: a test checks both give the same rows.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from projections.tables import EVENTS, INSTANCES
from projections.txread import LogRecord
from schemas.codec import strip_time_logical_types

MAGIC = b"Obj\x01"
FRAME_FIELD = "_csp_frame"

# Value columns of `events` as ClickHouse expressions over the CspEvent fields (alias `a`).
_EVENT_COLUMNS = {
    "instance_id": "a.instance_id", "system": "a.system", "version": "toUInt32(a.version)", "seq": "toUInt64(a.seq)",
    "event": "a.event", "kind": "toString(a.kind)", "channel": "a.channel", "payload": "a.payload",
    "offer_id": "a.offer_id", "command_id": "a.command_id", "state_before": "a.state_before",
    "state_after": "a.state_after", "choice": "if(isNull(a.choice), '{}', toJSONString(a.choice))",
    "time": "fromUnixTimestamp64Milli(a.timestamp, 'UTC')", "command_offset": "a.command_offset",
}
# `instances` from the same fields: the values of each instance's last row.
_INSTANCE_COLUMNS = {
    "instance_id": "a.instance_id", "system": "a.system", "version": "toUInt32(a.version)", "seq": "toUInt64(a.seq)",
    "state": "a.state_after", "status": "'RUNNING'", "updated_at": "fromUnixTimestamp64Milli(a.timestamp, 'UTC')",
    "row_version": "toUInt64(a.seq) * 2",
}
_SOURCE = ("`partition`", "`offset`", "`kafka_time`")
_COORDS = np.dtype([("p", "<u2"), ("o", "<u8"), ("t", "<i8")])  # RowBinary of the structure below
_COORDS_STRUCTURE = "p UInt16, o UInt64, t Int64"
_SOURCE_EXPRS = ("c.p", "c.o", "fromUnixTimestamp64Milli(c.t, 'UTC')")
# one thread reads both files in order (PASTE JOIN pairs rows by position); the whole
# insert is one block, so one part, all or nothing
_SETTINGS = ("max_threads = 1, input_format_parallel_parsing = 0, "
             "min_insert_block_size_rows = 1000000000, min_insert_block_size_bytes = 1000000000000")

assert set(_EVENT_COLUMNS) | {"topic", *(s.strip("`") for s in _SOURCE)} == {c.name for c in EVENTS.columns}
assert set(_INSTANCE_COLUMNS) | {"topic", *(s.strip("`") for s in _SOURCE)} == {c.name for c in INSTANCES.columns}


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


def container(schema: Any, bodies: Sequence[bytes]) -> list[bytes]:
    """Pure: the pieces, in order, of an Avro object container file with one block holding
    ``bodies`` (encoded records); written with ``writelines``, the bodies are not copied
    into one buffer first."""
    sync = uuid.uuid4().bytes
    meta = {"avro.schema": json.dumps(schema).encode(), "avro.codec": b"null"}
    header = MAGIC + _zlong(len(meta)) + b"".join(_zbytes(k.encode()) + _zbytes(v) for k, v in meta.items())
    size = sum(map(len, bodies))
    return [header + b"\x00" + sync + _zlong(len(bodies)) + _zlong(size), *bodies, sync]


def framed(writer_schema: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: the writer's record schema (time logical types stripped) with a first field
    ``_frame`` of 5 bytes: a Confluent-framed value (magic byte, schema id) is then, as it
    is, an Avro encoding of it, so no value is copied to strip its header."""
    schema = dict(strip_time_logical_types(writer_schema))
    frame = {"name": FRAME_FIELD, "type": {"type": "fixed", "name": "CspConfluentFrame", "size": 5}}
    schema["fields"] = [frame, *schema["fields"]]
    return schema


def coordinates(records: Sequence[LogRecord]) -> bytes:
    """Pure: the records' (partition, offset, Kafka time in ms) as ``RowBinary``."""
    n = len(records)
    out = np.empty(n, dtype=_COORDS)
    for column, attr, dtype in (("p", "partition", np.uint16), ("o", "offset", np.uint64), ("t", "timestamp", np.int64)):
        out[column] = np.fromiter(map(attrgetter(attr), records), dtype, n)
    return out.tobytes()


def schema_id(value: bytes | None) -> int | None:
    """The Confluent schema id of a framed value, or None."""
    if value is None or len(value) < 5 or value[0] != 0:
        return None
    return int.from_bytes(value[1:5], "big")


def sql_string(text: str) -> str:
    """Pure: ``text`` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def statements(topic: str, avro: str, coords: str, token: str) -> dict[str, str]:
    """Pure: the ``INSERT ... SELECT`` of each table (``events``, ``instances``) over the files."""
    source = f"file({sql_string(avro)}, 'Avro') AS a PASTE JOIN file({sql_string(coords)}, 'RowBinary', '{_COORDS_STRUCTURE}') AS c"
    settings = f"SETTINGS insert_deduplication_token = {sql_string(token)}, {_SETTINGS}"
    names = ", ".join(("`topic`", *_SOURCE, *(f"`{n}`" for n in _EVENT_COLUMNS)))
    exprs = ", ".join((sql_string(topic), *_SOURCE_EXPRS, *_EVENT_COLUMNS.values()))
    events = f"INSERT INTO {EVENTS.name} ({names}) {settings} SELECT {exprs} FROM {source}"
    # the last row of each instance: highest seq, then the latest record (partition, offset);
    # a sort and LIMIT BY costs half an argMax over a tuple of the row
    names = ", ".join(("`topic`", *_SOURCE, *(f"`{n}`" for n in _INSTANCE_COLUMNS)))
    exprs = ", ".join((sql_string(topic), *_SOURCE_EXPRS, *_INSTANCE_COLUMNS.values()))
    instances = (f"INSERT INTO {INSTANCES.name} ({names}) {settings} SELECT {exprs} FROM {source}"
                 " ORDER BY a.instance_id, toUInt64(a.seq) DESC, c.p DESC, c.o DESC LIMIT 1 BY a.instance_id")
    return {EVENTS.name: events, INSTANCES.name: instances}


def insert_events(client: Any, records: Sequence[LogRecord], writer_schema: Mapping[str, Any], token: str) -> None:
    """Insert the ``events`` and ``instances`` rows of CspEvent ``records`` (one topic, one
    writer schema, none without a value) through the chdb ``client``, under ``token``.
    Raises if ClickHouse cannot read them; a table whose insert raised holds none of them."""
    topics = set(map(attrgetter("topic"), records))
    if len(topics) != 1:
        raise ValueError(f"one topic per group, got {sorted(topics)}")
    values: list[bytes] = list(map(_VALUE, records))
    if None in values:
        raise ValueError("a record without a value")
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    paths: list[str] = []
    try:
        for suffix, pieces in ((".avro", container(framed(writer_schema), values)), (".bin", [coordinates(records)])):
            fd, path = tempfile.mkstemp(prefix="csp-batch-", suffix=suffix, dir=shm)
            paths.append(path)
            with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
                fh.writelines(pieces)
        for sql in statements(topics.pop(), paths[0], paths[1], token).values():
            client.command(sql)
    finally:
        for path in paths:
            os.unlink(path)


@dataclass(frozen=True)
class Group:
    """Records the fast path takes: one topic, one CspEvent writer schema."""

    topic: str
    schema_id: int
    writer: Mapping[str, Any]
    records: list[LogRecord]


def split(batches: Sequence[Sequence[LogRecord]], is_events: Callable[[str], bool],
          writer_of: Callable[[int], tuple[str, Mapping[str, Any]]], fast_min: int) -> tuple[list[LogRecord], list[Group]]:
    """Pure (given ``writer_of``): of a round's ``batches`` (each of one topic-partition, in
    log order), the records the fast path takes, as groups of at least ``fast_min`` records
    of an events topic (``is_events``), one CspEvent writer schema and no headers; and the
    others, in log order. A function of the records only, so a round read again after a
    crash splits the same way."""
    by_key: dict[tuple[str, int], list[LogRecord]] = {}
    rest: list[LogRecord] = []
    for batch in batches:
        if not batch:
            continue
        topic = batch[0].topic
        if not is_events(topic):
            rest.extend(batch)
            continue
        frame = _one_frame(batch)
        if frame is not None:  # the usual case, checked at C speed: one schema, no headers
            by_key.setdefault((topic, frame), []).extend(batch)
            continue
        for rec in batch:
            v = rec.value
            if rec.headers or v is None or len(v) < 5 or v[0]:
                rest.append(rec)
            else:
                by_key.setdefault((topic, int.from_bytes(v[1:5], "big")), []).append(rec)
    groups: list[Group] = []
    moved = False
    for (topic, sid), recs in sorted(by_key.items()):
        try:
            name, writer = writer_of(sid)
        except Exception:  # noqa: BLE001 - an unknown schema id: the Python path dead-letters it
            name, writer = "", {}
        if name == "CspEvent" and len(recs) >= fast_min:
            groups.append(Group(topic, sid, writer, recs))
        else:
            rest.extend(recs)
            moved = True
    if moved:
        rest.sort(key=lambda r: (r.topic, r.partition, r.offset))  # back in log order
    return rest, groups


_VALUE, _HEADERS, _FRAME = attrgetter("value"), attrgetter("headers"), itemgetter(slice(0, 5))


def _one_frame(batch: Sequence[LogRecord]) -> int | None:
    """The schema id every record of ``batch`` is framed with, if they all are with the
    same one and none has headers; else None."""
    if any(map(_HEADERS, batch)):
        return None
    try:
        frames = set(map(_FRAME, map(_VALUE, batch)))
    except TypeError:  # a record without a value
        return None
    if len(frames) != 1:
        return None
    frame = frames.pop()
    return int.from_bytes(frame[1:], "big") if len(frame) == 5 and frame[0] == 0 else None
