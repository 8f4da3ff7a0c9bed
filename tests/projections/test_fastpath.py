"""The fast path's split (pure), the committed-only filter's pass-through, and the fast path's
fallback and tokens against the embedded ClickHouse: what ClickHouse cannot read goes the
Python way, and a round written twice still counts once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from projection_helpers import codec, sample

from infra.clickhouse import clickhouse_client
from projections.fastpath import split
from projections.projector import Projector
from projections.sink import Plan
from projections.txread import BatchView, LogRecord, TxnFilter


def _rec(offset: int, value: bytes | None, topic: str = "ns.csp.events", partition: int = 0,
         headers: tuple[tuple[str, bytes], ...] = ()) -> LogRecord:
    return LogRecord(topic, partition, offset, b"k", value, 1_767_225_600_000 + offset, headers)


def _writer(sid: int) -> tuple[str, dict[str, Any]]:
    return ("CspEvent" if sid == 7 else "CspRefusal"), {"type": "record", "name": "x", "fields": []}


def _framed(sid: int, body: bytes = b"\x02") -> bytes:
    return b"\x00" + sid.to_bytes(4, "big") + body


def test_split_takes_whole_batches_of_one_schema_and_leaves_the_rest_in_log_order() -> None:
    events = [_rec(o, _framed(7)) for o in range(10)]
    mixed = [_rec(o, _framed(7), partition=1) for o in range(5)]
    mixed[2] = _rec(2, _framed(7), partition=1, headers=(("h", b"v"),))
    mixed[3] = _rec(3, _framed(9), partition=1)  # another schema: too few for a group of its own
    other = [_rec(o, _framed(7), topic="ns.csp.refusals", partition=0) for o in range(3)]
    rest, groups = split([events, mixed, other], lambda t: t.endswith("csp.events"), _writer, fast_min=4)
    assert [(g.topic, g.schema_id, [(r.partition, r.offset) for r in g.records]) for g in groups] == [
        ("ns.csp.events", 7, [(0, o) for o in range(10)] + [(1, 0), (1, 1), (1, 4)])]
    assert [(r.topic, r.partition, r.offset) for r in rest] == [
        ("ns.csp.events", 1, 2), ("ns.csp.events", 1, 3), *(("ns.csp.refusals", 0, o) for o in range(3))]


def test_split_leaves_small_groups_and_unknown_schemas_to_python() -> None:
    small = [_rec(o, _framed(7)) for o in range(3)]
    unknown = [_rec(o, _framed(5), partition=1) for o in range(10)]

    def writer(sid: int) -> tuple[str, dict[str, Any]]:
        if sid == 5:
            raise KeyError(sid)
        return _writer(sid)

    rest, groups = split([small, unknown], lambda t: True, writer, fast_min=4)
    assert groups == [] and len(rest) == 13


def test_a_non_transactional_batch_passes_straight_through_unless_a_transaction_is_open() -> None:
    filt = TxnFilter(stable=3)
    first = [_rec(o, b"v") for o in range(0, 6)]
    assert filt.feed(BatchView(0, 6, -1, False, None, first)) == first[3:]
    assert filt.stable == 6
    txn = [_rec(o, b"v") for o in range(6, 8)]
    assert filt.feed(BatchView(6, 8, 42, True, None, txn)) == []
    later = [_rec(o, b"v") for o in range(8, 10)]
    assert filt.feed(BatchView(8, 10, -1, False, None, later)) == []  # behind the open transaction
    assert filt.stable == 6
    assert filt.feed(BatchView(10, 11, 42, True, False, [])) == txn + later  # COMMIT
    assert filt.stable == 11


@pytest.fixture(scope="module")
def client(chdb_url: str) -> Iterator[Any]:
    c = clickhouse_client(chdb_url)
    yield c
    c.close()


def _count(client: Any, table: str, topic: str) -> int:
    return int(client.query(f"SELECT count() FROM {table} WHERE topic = '{topic}'").result_rows[0][0])


def _events(ns: str, n: int) -> list[LogRecord]:
    c = codec()
    return [_rec(o, c.encode("CspEvent", sample(c, "CspEvent", instance_id=f"{ns}-{o % 5}", seq=o + 1, system="sys")),
                 topic=f"{ns}.csp.events") for o in range(n)]


def test_a_group_clickhouse_cannot_read_goes_the_python_way_once(client: Any) -> None:
    ns = "fpbad"
    recs = _events(ns, 100)
    good = recs[40].value
    assert good is not None
    recs[40] = recs[40]._replace(value=good[:5] + b"\xff" * 12)  # a valid frame, an unreadable body
    projector = Projector("127.0.0.1:1", client, codec(), ns, audit=False)
    plan = Plan(f"{ns}.csp.events", 0, 0, 99, False)
    for recovering in (False, False, True):  # the round, a retry, a replay after a crash
        projector.sink.write(plan, recs, recovering=recovering)
    assert projector.sink.fast_records == 0
    assert _count(client, "events", f"{ns}.csp.events") == 99
    assert _count(client, "dead_letters", f"{ns}.csp.events") == 1
    assert _count(client, "instances", f"{ns}.csp.events") == 5


def test_a_round_with_fast_and_python_events_inserts_both_once(client: Any) -> None:
    ns = "fpmix"
    recs = _events(ns, 100)
    recs[10] = recs[10]._replace(headers=(("trace", b"x"),))  # records with headers go the Python way
    projector = Projector("127.0.0.1:1", client, codec(), ns, audit=False)
    plan = Plan(f"{ns}.csp.events", 0, 0, 99, False)
    for recovering in (False, False, True):
        projector.sink.write(plan, recs, recovering=recovering)
    assert projector.sink.fast_records == 3 * 99
    assert _count(client, "events", f"{ns}.csp.events") == 100
    assert _count(client, "dead_letters", f"{ns}.csp.events") == 0
