"""The Confluent wire format frame: magic byte 0, 4-byte big-endian schema id, Avro body."""

from __future__ import annotations

import struct

from schemas.errors import DecodeError

MAGIC = 0
HEADER = struct.Struct(">bI")
HEADER_SIZE = HEADER.size


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix ``body`` with the Confluent header for ``schema_id``."""
    if not 0 <= schema_id <= 0xFFFFFFFF:
        raise ValueError(f"schema id {schema_id} does not fit in 4 bytes")
    return HEADER.pack(MAGIC, schema_id) + body


def unframe(data: bytes | bytearray | memoryview) -> tuple[int, memoryview]:
    """Split a framed message into (schema id, Avro body); :class:`DecodeError` if not framed."""
    view = memoryview(data)
    if len(view) < HEADER_SIZE:
        raise DecodeError(f"truncated message: {len(view)} bytes, the header alone needs {HEADER_SIZE}")
    magic, schema_id = HEADER.unpack_from(view)
    if magic != MAGIC:
        raise DecodeError(f"bad magic byte {magic & 0xFF:#04x}: not Confluent-framed Avro (expected 0x00)")
    return int(schema_id), view[HEADER_SIZE:]
