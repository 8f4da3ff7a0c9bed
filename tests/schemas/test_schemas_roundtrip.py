from __future__ import annotations

import datetime as dt

import pytest

from schemas.codec import Codec
from schemas.records import RECORD_TOPICS, record_for_topic, subject_for
from schemas.registry import LocalRegistry
from schemas.samples import SAMPLE_TIMESTAMP_MS, sample_record

NAMES = LocalRegistry.load().names()

EXPECTED = {
    "CspRegistryRecord",
    "CspCommand",
    "CspEvent",
    "CspRefusal",
    "CspSnapshot",
    "ChannelMessage",
    "DeadLetter",
    "QuantumRequest",
    "QuantumResult",
    "LedgerTransaction",
    "LedgerAnchor",
    "AgentRequest",
    "AgentResponse",
    "AuditEntry",
}


def test_every_record_type_has_a_schema() -> None:
    assert set(NAMES) >= EXPECTED


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("nulls", [False, True])
def test_round_trip(registry: LocalRegistry, name: str, nulls: bool) -> None:
    codec = Codec(registry)
    rec = sample_record(registry.raw_schema(name), nulls=nulls)
    data = codec.encode(name, rec)
    assert codec.decode(data) == (name, rec)
    assert codec.decode(data, expect=name) == (name, rec)


def test_optional_fields_may_be_omitted(registry: LocalRegistry) -> None:
    codec = Codec(registry)
    rec = sample_record(registry.raw_schema("CspCommand"), nulls=True)
    for optional in ("system", "version", "event", "offer_id", "params"):
        del rec[optional]
    _, out = Codec(registry).decode(codec.encode("CspCommand", rec))
    assert out["system"] is None and out["offer_id"] is None and out["params"] == {}


def test_timestamp_accepts_aware_datetime_and_decodes_to_millis(registry: LocalRegistry) -> None:
    codec = Codec(registry)
    rec = sample_record(registry.raw_schema("CspEvent"))
    as_dt = dict(rec, timestamp=dt.datetime.fromtimestamp(SAMPLE_TIMESTAMP_MS / 1000, tz=dt.UTC))
    assert codec.encode("CspEvent", as_dt) == codec.encode("CspEvent", rec)
    assert codec.decode(codec.encode("CspEvent", as_dt))[1]["timestamp"] == SAMPLE_TIMESTAMP_MS


def test_datetimes_option_decodes_timestamps_as_aware_datetimes(registry: LocalRegistry) -> None:
    rec = sample_record(registry.raw_schema("CspEvent"))
    _, out = Codec(registry, datetimes=True).decode(Codec(registry).encode("CspEvent", rec))
    assert out["timestamp"] == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_csp_event_example(registry: LocalRegistry) -> None:
    codec = Codec(registry)
    event = {
        "instance_id": "i-1",
        "system": "vending",
        "version": 3,
        "seq": 12,
        "event": "coin.5",
        "kind": "INPUT",
        "channel": "coin",
        "payload": ["5"],
        "offer_id": "o-9",
        "command_id": "c-4",
        "state_before": 0,
        "state_after": 1,
        "choice": {"seed": 99, "options": 2, "chosen": 1},
        "timestamp": 1_767_225_600_123,
    }
    name, out = codec.decode(codec.encode("CspEvent", event))
    assert name == "CspEvent"
    assert {k: out[k] for k in event} == event
    assert all(out[k] is None or out[k] in ({}, []) for k in set(out) - set(event))  # optional extras


def test_topics_and_subjects() -> None:
    assert record_for_topic("csp.events") == "CspEvent"
    assert record_for_topic("csp.events.dlq") == "DeadLetter"
    assert record_for_topic("csp.channel.vending.coin") == "ChannelMessage"
    assert record_for_topic("nope") is None
    assert subject_for("CspEvent") == "csp.events-value"
    assert subject_for("DeadLetter") == "DeadLetter-value"
    assert set(RECORD_TOPICS) <= set(NAMES)
