import re

import pytest

from streams.catalog import (
    CATALOG,
    INSTANCE_PARTITIONS,
    UnknownTopicError,
    channel_topic,
    spec_for,
    with_dead_letters,
)

REQUIRED = {
    "csp.registry", "csp.commands", "csp.events", "csp.refusals", "csp.snapshots",
    "quantum.requests", "quantum.results", "ledger.transactions", "ledger.anchors",
    "agents.requests", "agents.responses", "audit.log",
}


def test_catalog_covers_every_platform_topic():
    names = [s.name for s in CATALOG]
    assert set(names) >= REQUIRED
    assert len(names) == len(set(names))


def test_every_input_topic_has_its_dead_letter_topic_in_the_catalog():
    by_name = {s.name: s for s in CATALOG}
    inputs = [s for s in CATALOG if s.input]
    assert {"csp.commands", "csp.registry", "quantum.requests", "agents.requests"} <= {s.name for s in inputs}
    for spec in inputs:
        assert spec.dead_letter == f"{spec.name}.dlq"
        dlq = by_name[spec.dead_letter]
        assert dlq.value_schema == "DeadLetter"
        assert not dlq.input and dlq.dead_letter is None
    for spec in CATALOG:
        if not spec.input:
            assert spec.dead_letter is None


def test_value_schemas_exist_and_names_are_legal():
    from pathlib import Path

    avro = Path(__file__).resolve().parents[2] / "schemas" / "avro"
    for spec in CATALOG:
        assert (avro / f"{spec.value_schema}.avsc").is_file(), spec
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,249}", spec.name)
        assert spec.partitions >= 1
        assert spec.cleanup_policy in ("delete", "compact")
        assert spec.retention_ms == -1 or spec.retention_ms > 0


def test_instance_keyed_topics_are_co_partitioned():
    keyed = [s for s in CATALOG if s.key == "instance_id"]
    assert {"csp.commands", "csp.events", "csp.refusals", "csp.snapshots"} <= {s.name for s in keyed}
    assert {s.partitions for s in keyed} == {INSTANCE_PARTITIONS}
    assert channel_topic("sys", "ch").partitions == INSTANCE_PARTITIONS


def test_snapshots_are_compacted():
    assert spec_for("csp.snapshots").cleanup_policy == "compact"


def test_channel_topics_by_pattern():
    spec = channel_topic("Vending_1", "coin-in")
    assert spec.name == "csp.channel.Vending_1.coin-in"
    assert spec.value_schema == "ChannelMessage"
    assert spec_for("csp.channel.Vending_1.coin-in") == spec
    dlq = spec_for("csp.channel.Vending_1.coin-in.dlq")
    assert dlq.value_schema == "DeadLetter"
    assert [s.name for s in with_dead_letters([spec])] == [spec.name, dlq.name]


@pytest.mark.parametrize("system,channel", [("a b", "c"), ("a", "c.d"), ("", "c"), ("a", "ü"), ("a", "x/y")])
def test_channel_topic_rejects_illegal_names(system, channel):
    with pytest.raises(ValueError, match="illegal"):
        channel_topic(system, channel)


@pytest.mark.parametrize("name", ["csp.nope", "csp.channel.only_one", "csp.channel.a.b.c", "", "audit.log.dlq"])
def test_unknown_topic_is_a_clear_error(name):
    with pytest.raises(UnknownTopicError) as info:
        spec_for(name)
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert f"unknown topic {name!r}" in message
    assert "csp topics" in message
