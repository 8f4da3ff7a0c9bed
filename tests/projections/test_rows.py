"""Rows of the projector (pure): each record type on a shared topic goes to its own table,
and a row ClickHouse would refuse becomes a dead letter instead of failing the batch."""

from __future__ import annotations

from projections.sink import build_rows, to_arrow_or_dead_letters
from projections.tables import DEPLOYMENTS, ROUTES
from projections.txread import LogRecord
from schemas.codec import Codec
from schemas.registry import LocalRegistry
from schemas.samples import sample_record


def test_registry_topic_routes_and_deployments_go_to_their_tables() -> None:
    registry = LocalRegistry.load()
    codec = Codec(registry)
    deployment = codec.encode("CspRegistryRecord", sample_record(registry.schema("CspRegistryRecord")))
    route = codec.encode("CspRoute", sample_record(registry.schema("CspRoute"), nulls=True))
    records = [LogRecord("csp.registry", 0, 0, b"k", deployment, 1_000), LogRecord("csp.registry", 0, 1, b"k", route, 2_000)]
    out = build_rows(records, codec)
    assert len(out[DEPLOYMENTS.name][1]) == 1 and len(out[ROUTES.name][1]) == 1
    assert "dead_letters" not in out
    for table, rows in out.values():
        arrow, bad = to_arrow_or_dead_letters(table, rows)
        assert not bad and arrow.num_rows == len(rows)


def test_a_null_in_a_non_nullable_column_is_a_dead_letter_not_a_failed_insert() -> None:
    registry = LocalRegistry.load()
    Codec(registry)
    value = sample_record(registry.schema("CspRegistryRecord"))
    row = DEPLOYMENTS.row(LogRecord("csp.registry", 0, 5, None, None, 1_000), {**value, "system": None})
    arrow, bad = to_arrow_or_dead_letters(DEPLOYMENTS, [row])
    assert arrow.num_rows == 0 and len(bad) == 1
    assert "deployments.system is null" in str(bad[0])
