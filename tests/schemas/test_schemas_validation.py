from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from schemas.codec import Codec
from schemas.errors import SchemaValidationError, UnknownSchemaError
from schemas.registry import LocalRegistry
from schemas.samples import sample_record
from schemas.validate import validate


def _event(registry: LocalRegistry, **changes: Any) -> dict[str, Any]:
    return dict(sample_record(registry.raw_schema("CspEvent")), **changes)


def _error(registry: LocalRegistry, name: str, rec: Any) -> SchemaValidationError:
    with pytest.raises(SchemaValidationError) as info:
        Codec(registry).encode(name, rec)
    return info.value


def test_wrong_type_names_field(registry: LocalRegistry) -> None:
    err = _error(registry, "CspEvent", _event(registry, seq="x"))
    assert str(err) == "CspEvent: field 'seq': expected long, got str 'x'"
    assert err.field == "seq" and err.record == "CspEvent"


def test_missing_field(registry: LocalRegistry) -> None:
    rec = _event(registry)
    del rec["command_id"]
    err = _error(registry, "CspEvent", rec)
    assert err.field == "command_id" and "missing" in str(err)


def test_bad_enum_symbol(registry: LocalRegistry) -> None:
    err = _error(registry, "CspEvent", _event(registry, kind="SEND"))
    assert err.field == "kind" and "EventKind" in str(err) and "'SEND'" in str(err)


def test_nested_record_field_path(registry: LocalRegistry) -> None:
    err = _error(registry, "CspEvent", _event(registry, choice={"seed": 1, "options": 2, "chosen": "a"}))
    assert err.field == "choice.chosen"
    err = _error(registry, "CspEvent", _event(registry, choice={"seed": 1, "options": 2}))
    assert err.field == "choice.chosen" and "missing" in str(err)


def test_array_item_path(registry: LocalRegistry) -> None:
    rec = sample_record(registry.raw_schema("CspRegistryRecord"))
    rec["channels"] = [rec["channels"][0], {"name": "c", "role": "SIDEWAYS", "fields": []}]
    err = _error(registry, "CspRegistryRecord", rec)
    assert err.field == "channels[1].role"
    assert _error(registry, "CspEvent", _event(registry, payload=["a", 3])).field == "payload[1]"


def test_map_value_path(registry: LocalRegistry) -> None:
    rec = sample_record(registry.raw_schema("QuantumResult"))
    rec["counts"] = {"00": 10, "11": "many"}
    assert _error(registry, "QuantumResult", rec).field == "counts['11']"


def test_unknown_field_rejected(registry: LocalRegistry) -> None:
    err = _error(registry, "CspEvent", _event(registry, sequence=3))
    assert err.field == "sequence" and "unknown field" in str(err)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", True),
        ("version", 2**31),
        ("seq", 2**63),
        ("seq", 1.0),
        ("event", b"bytes"),
        ("payload", "not-a-list"),
        ("instance_id", None),
        ("timestamp", dt.datetime(2026, 1, 1)),
    ],
)
def test_rejected_values(registry: LocalRegistry, field: str, value: Any) -> None:
    assert _error(registry, "CspEvent", _event(registry, **{field: value})).field == field


def test_not_a_mapping(registry: LocalRegistry) -> None:
    err = _error(registry, "CspEvent", ["x"])
    assert err.field == "" and str(err).startswith("CspEvent: record:")


def test_nullable_accepts_none_and_value(registry: LocalRegistry) -> None:
    codec = Codec(registry)
    codec.encode("CspEvent", _event(registry, channel=None, choice=None))
    codec.encode("CspEvent", _event(registry, channel="c"))


def test_unknown_record_name(registry: LocalRegistry) -> None:
    with pytest.raises(UnknownSchemaError):
        Codec(registry).encode("NoSuchRecord", {})


def test_multi_branch_union_message() -> None:
    schema = {
        "type": "record",
        "name": "U",
        "fields": [{"name": "v", "type": ["null", "int", "string"]}],
    }
    validate(schema, {"v": 3})
    validate(schema, {"v": "x"})
    with pytest.raises(SchemaValidationError, match=r"U: field 'v': expected one of \[null, int, string\]"):
        validate(schema, {"v": 1.5})


def test_recursive_record() -> None:
    schema = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "value", "type": "int"},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    validate(schema, {"value": 1, "next": {"value": 2, "next": None}})
    with pytest.raises(SchemaValidationError) as info:
        validate(schema, {"value": 1, "next": {"value": 2, "next": {"value": "x"}}})
    assert info.value.field == "next.next.value"


@pytest.mark.parametrize("name", LocalRegistry.load().names())
def test_every_field_of_every_schema_is_named_when_wrong(registry: LocalRegistry, name: str) -> None:
    codec = Codec(registry)
    good = sample_record(registry.raw_schema(name))
    codec.validate(name, good)
    for field in good:
        with pytest.raises(SchemaValidationError) as info:
            codec.encode(name, dict(good, **{field: object()}))
        assert info.value.field == field
        assert str(info.value).startswith(f"{name}: field '{field}': ")


def test_str_enum_members_are_accepted(registry: LocalRegistry) -> None:
    import enum

    class Kind(enum.StrEnum):
        inp = "INPUT"

    codec = Codec(registry)
    _, out = codec.decode(codec.encode("CspEvent", _event(registry, kind=Kind.inp)))
    assert out["kind"] == "INPUT"
