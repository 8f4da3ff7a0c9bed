from __future__ import annotations

import struct

import pytest

from schemas.codec import Codec
from schemas.errors import DecodeError, SchemaError
from schemas.registry import LocalRegistry
from schemas.samples import sample_record
from schemas.wire import frame, unframe


def _event_bytes(registry: LocalRegistry) -> bytes:
    return Codec(registry).encode("CspEvent", sample_record(registry.raw_schema("CspEvent")))


def test_header_is_magic_zero_and_big_endian_id(registry: LocalRegistry) -> None:
    data = _event_bytes(registry)
    assert data[0] == 0
    assert struct.unpack(">I", data[1:5])[0] == registry.id_for("CspEvent")


def test_frame_layout() -> None:
    assert frame(258, b"xy") == b"\x00\x00\x00\x01\x02xy"
    schema_id, body = unframe(b"\x00\x00\x00\x01\x02xy")
    assert (schema_id, bytes(body)) == (258, b"xy")
    with pytest.raises(ValueError):
        frame(2**32, b"")


def test_body_is_schemaless_avro(registry: LocalRegistry) -> None:
    codec = Codec(registry)
    rec = sample_record(registry.raw_schema("CspSnapshot"))
    body = codec.encode("CspSnapshot", rec)[5:]
    # instance_id is the first field: a zigzag varint length then UTF-8 bytes, no container header.
    first = rec["instance_id"].encode()
    assert body[0] == len(first) * 2 and body[1 : 1 + len(first)] == first


def test_bad_magic(registry: LocalRegistry) -> None:
    data = _event_bytes(registry)
    with pytest.raises(DecodeError, match="magic"):
        Codec(registry).decode(b"\x01" + data[1:])


@pytest.mark.parametrize("cut", [0, 1, 4])
def test_truncated_header(registry: LocalRegistry, cut: int) -> None:
    with pytest.raises(DecodeError, match="truncated"):
        Codec(registry).decode(_event_bytes(registry)[:cut])


def test_truncated_body(registry: LocalRegistry) -> None:
    data = _event_bytes(registry)
    with pytest.raises(DecodeError):
        Codec(registry).decode(data[: len(data) - 3])


def test_trailing_bytes(registry: LocalRegistry) -> None:
    with pytest.raises(DecodeError, match="trailing"):
        Codec(registry).decode(_event_bytes(registry) + b"\x00")


def test_unknown_id(registry: LocalRegistry) -> None:
    with pytest.raises(DecodeError, match="unknown schema id 999999"):
        Codec(registry).decode(frame(999_999, b"\x00"))


def test_garbage_body(registry: LocalRegistry) -> None:
    with pytest.raises(DecodeError):
        Codec(registry).decode(frame(registry.id_for("CspEvent"), b"\xff" * 12))


def test_expect_other_record_type(registry: LocalRegistry) -> None:
    with pytest.raises(DecodeError, match="expected a CspCommand"):
        Codec(registry).decode(_event_bytes(registry), expect="CspCommand")


def test_decode_errors_are_schema_errors() -> None:
    assert issubclass(DecodeError, SchemaError) and issubclass(SchemaError, ValueError)


def test_corrupted_bodies_raise_decode_error_or_decode(registry: LocalRegistry) -> None:
    import random

    rng = random.Random(7)
    codec = Codec(registry)
    for name in registry.names():
        data = bytearray(codec.encode(name, sample_record(registry.raw_schema(name))))
        for _ in range(200):
            bad = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                bad[rng.randrange(5, len(bad))] = rng.randrange(256)
            try:
                got_name, _ = codec.decode(bytes(bad))
            except DecodeError:
                continue
            assert got_name == name
